"""Order routes: one order's timeline and the orders stuck in a stage now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from pharmaflow.serve.api import params
from pharmaflow.serve.api.auth import AUTH_RESPONSES, ErrorDetail, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.query import orders
from pharmaflow.serve.query.base import Filters, Page
from pharmaflow.serve.security.roles import Scope

router = APIRouter(prefix="/v1", tags=["orders"], responses=AUTH_RESPONSES)


class OrderEvent(BaseModel):
    at: datetime = Field(description="Event time (UTC).")
    stage: str = Field(description="placed, insurance_validated, filled, shipped, ...")
    event_id: str
    details: dict[str, Any] = Field(
        description="What the event says: insurance status and reject code, lot, shipment "
        "and carrier, cancel reason (only the fields the event has)."
    )


class LiveOrder(BaseModel):
    order_id: str
    pharmacy_id: str
    stage: str = Field(description="The stage the order is in now (speed layer).")
    entered_at: datetime
    waiting_hours: float = Field(description="Stream clock minus the time it entered the stage.")
    stuck_after_hours: float | None = Field(description="The stage's stuck threshold.")
    stuck: bool
    insurance_status: str | None


class OrderTimeline(BaseModel):
    order_id: str
    order: dict[str, Any] | None = Field(
        description="gold.fact_order_lifecycle's row (None: placed after the last build). "
        "patient_key is pseudonymous."
    )
    events: list[OrderEvent] = Field(description="The warehouse's events, in event-time order.")
    live: LiveOrder | None = Field(description="The speed layer's state (None: not waiting).")
    as_of: datetime = Field(description="When the served warehouse build ended.")


class StuckOrders(BaseModel):
    items: list[LiveOrder]
    next_cursor: str | None
    clock: datetime | None = Field(description="The speed layer's stream clock.")
    running: bool = Field(description="False when the speed layer has never run.")


@router.get(
    "/orders/stuck",
    response_model=StuckOrders,
    dependencies=[Depends(require(Scope.rows))],
    summary="Orders waiting in a stage longer than its threshold, longest first",
)
def stuck_orders(
    services: Annotated[Services, Depends(get_services)],
    filters: Annotated[Filters, Depends(params.filters)],
    page: Annotated[Page, Depends(params.page)],
    stage: Annotated[
        Literal["placed", "insurance_validated", "filled", "shipped"] | None, Query()
    ] = None,
) -> dict[str, Any]:
    return orders.stuck(services.queries, filters, page, stage)


@router.get(
    "/orders/{order_id}/timeline",
    response_model=OrderTimeline,
    responses={404: {"model": ErrorDetail, "description": "Neither layer knows the order."}},
    dependencies=[Depends(require(Scope.rows))],
    summary="Where an order is: its events and its live stage",
)
def order_timeline(
    order_id: Annotated[str, params.path_id("Pharmacy order id, e.g. ORD-000123.")],
    services: Annotated[Services, Depends(get_services)],
) -> dict[str, Any]:
    found = orders.timeline(services.queries, order_id)
    if found is None:
        raise HTTPException(404, f"no order {order_id} in the warehouse or the speed layer")
    return found
