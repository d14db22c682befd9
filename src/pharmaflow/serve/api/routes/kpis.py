"""KPI routes: daily and finer time series (gold, then live at the watermark), and live windows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from pharmaflow.serve.api import params
from pharmaflow.serve.api.auth import AUTH_RESPONSES, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.query import kpis
from pharmaflow.serve.query.base import Filters
from pharmaflow.serve.security.roles import Scope

router = APIRouter(
    prefix="/v1",
    tags=["kpis"],
    dependencies=[Depends(require(Scope.aggregates))],
    responses=AUTH_RESPONSES,
)

MetricName = Literal[tuple(kpis.METRICS)]  # type: ignore[valid-type]


class SeriesPoint(BaseModel):
    start: datetime = Field(description="Start of the bucket (UTC).")
    value: float
    source: Literal["gold", "live"] = Field(
        description="gold: counted by the last build; live: by the speed layer (after the "
        "watermark)."
    )
    final: bool = Field(description="False while a live bucket can still change.")


class Seam(BaseModel):
    snapshot: str | None = Field(
        description="The warehouse snapshot the gold points come from (None: nothing built "
        "yet, every point is live)."
    )
    watermark: datetime | None = Field(
        description="Buckets before it are gold's, from it on live (the start of the interval "
        "holding the newest event time the build saw)."
    )
    newest_gold_event: datetime | None
    live_clock: datetime | None = Field(description="The speed layer's stream clock.")


class Series(Seam):
    metric: str
    interval: str
    points: list[SeriesPoint]


class DailyRow(BaseModel):
    day: date
    source: Literal["gold", "live"]
    orders_placed: float = 0
    orders_delivered: float = 0
    orders_cancelled: float = 0
    insurance_approved: float = 0
    insurance_rejected: float = 0
    insurance_prior_auth: float = 0
    shipments_created: float = 0
    shipment_exceptions: float = 0
    rejection_rate: float | None = Field(description="Rejected / all insurance answers.")


class Daily(Seam):
    days: list[DailyRow]


class LiveValue(BaseModel):
    kpi: str
    start: datetime
    value: float
    final: bool


class LateEvents(BaseModel):
    event_type: str
    late: int = Field(description="Events that arrived after their window was final.")


class Realtime(BaseModel):
    running: bool = Field(description="False when the speed layer has never run.")
    clock: datetime | None
    width_s: int
    kpis: list[LiveValue]
    late: list[LateEvents] = []


@router.get("/kpis/daily", response_model=Daily, summary="Order and shipping KPIs per UTC day")
def daily(
    services: Annotated[Services, Depends(get_services)],
    filters: Annotated[Filters, Depends(params.filters)],
) -> dict[str, Any]:
    return kpis.daily(services.queries, filters)


@router.get(
    "/kpis/timeseries",
    response_model=Series,
    summary="One KPI per 5 minutes, hour or day: gold up to the watermark, live after",
)
def timeseries(
    services: Annotated[Services, Depends(get_services)],
    filters: Annotated[Filters, Depends(params.filters)],
    metric: Annotated[MetricName, Query(description="The KPI counted.")] = "orders_placed",
    interval: Annotated[Literal["5m", "hour", "day"], Query()] = "hour",
) -> dict[str, Any]:
    return kpis.series(services.queries, metric, interval, filters)


@router.get(
    "/kpis/realtime",
    response_model=Realtime,
    summary="The speed layer's latest windows per KPI",
    responses={422: {"description": "A width the speed layer does not keep, or bad filters."}},
)
def realtime(
    services: Annotated[Services, Depends(get_services)],
    filters: Annotated[Filters, Depends(params.filters)],
    width_s: Annotated[int | None, Query(ge=1, le=86_400, description="Window width.")] = None,
    last: Annotated[int, Query(ge=1, le=288, description="How many recent windows.")] = 12,
) -> dict[str, Any]:
    widths = services.queries.realtime_config.windows_s
    if width_s is not None and width_s not in widths:
        msg = f"width_s must be one of the speed layer's window widths {list(widths)}"
        raise HTTPException(422, [{"loc": ["query", "width_s"], "msg": msg, "type": "value_error"}])
    return kpis.realtime(services.queries, width_s, last, filters)
