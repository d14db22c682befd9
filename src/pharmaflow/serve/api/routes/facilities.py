"""Facility routes: the facilities, and one facility's metrics over a period."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from pharmaflow.serve.api import params
from pharmaflow.serve.api.auth import AUTH_RESPONSES, ErrorDetail, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.query import facilities
from pharmaflow.serve.query.base import Filters
from pharmaflow.serve.security.roles import Scope

router = APIRouter(
    prefix="/v1",
    tags=["facilities"],
    dependencies=[Depends(require(Scope.aggregates))],
    responses=AUTH_RESPONSES,
)


class Facility(BaseModel):
    facility_id: str
    facility_type: str = Field(description="PLANT, DC or PHARMACY.")
    facility_name: str | None
    region: str | None
    state: str | None
    timezone: str | None


class OrderMetrics(BaseModel):
    orders_placed: int
    orders_delivered: int
    orders_cancelled: int
    avg_hours_to_deliver: float | None
    rejection_rate_pct: float | None = Field(description="Latest insurance answer REJECTED, %.")


class BatchMetrics(BaseModel):
    batches: int
    batches_releasable: int
    batches_rejected: int
    avg_yield_pct: float | None
    lab_pass_rate: float | None
    open_deviations: int


class ShippingMetrics(BaseModel):
    shipments_sent: int
    shipments_delivered: int
    on_time_pct: float | None


class FacilityMetrics(BaseModel):
    facility: Facility
    orders: OrderMetrics | None = Field(None, description="A pharmacy's orders.")
    batches: BatchMetrics | None = Field(None, description="A plant's batches.")
    shipping: ShippingMetrics = Field(description="Shipments that left the facility.")
    as_of: datetime = Field(description="When the served warehouse build ended.")


@router.get("/facilities", response_model=list[Facility], summary="Plants, DCs and pharmacies")
def list_facilities(
    services: Annotated[Services, Depends(get_services)],
    facility_type: Annotated[Literal["PLANT", "DC", "PHARMACY"] | None, Query()] = None,
) -> list[dict[str, Any]]:
    return facilities.facilities(services.queries, facility_type)


@router.get(
    "/facilities/{facility_id}/metrics",
    response_model=FacilityMetrics,
    responses={404: {"model": ErrorDetail, "description": "No such facility."}},
    summary="A facility's orders, batches and shipments over the filtered dates",
)
def facility_metrics(
    facility_id: Annotated[str, params.path_id("Facility id, e.g. PH-001 or PLT-01.")],
    services: Annotated[Services, Depends(get_services)],
    filters: Annotated[Filters, Depends(params.filters)],
) -> dict[str, Any]:
    found = facilities.facility_metrics(services.queries, facility_id, filters)
    if found is None:
        raise HTTPException(404, f"no facility {facility_id} in the warehouse")
    return found
