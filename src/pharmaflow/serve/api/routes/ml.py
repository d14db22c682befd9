"""Model routes: shipment delay risk, demand forecasts, price elasticities, score versions.

Delay risk lists shipments (row-level, scope `rows`); forecasts, elasticities and the model
versions are aggregates (every reading role). The answers come from the query layer
(serve/query/ml.py) over the gold score tables `pharmaflow score` writes; before the first
scoring they are empty lists.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from pharmaflow.serve.api import params
from pharmaflow.serve.api.auth import AUTH_RESPONSES, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.query import ml
from pharmaflow.serve.query.base import Filters, Page
from pharmaflow.serve.security.roles import Scope

router = APIRouter(prefix="/v1/ml", tags=["ml"], responses=AUTH_RESPONSES)

ServicesDep = Annotated[Services, Depends(get_services)]
PageDep = Annotated[Page, Depends(params.page)]
ROWS = [Depends(require(Scope.rows))]
AGGREGATES = [Depends(require(Scope.aggregates))]


def risk_filters(
    date_from: params.DateFrom = None,
    date_to: params.DateTo = None,
    carrier_id: params.CarrierId = None,
) -> Filters:
    """Dates (of shipment creation) and carrier."""
    return params.filters(date_from=date_from, date_to=date_to, carrier_id=carrier_id)


class ShipmentRisk(BaseModel):
    shipment_id: str
    created_at: datetime | None
    carrier_id: str | None
    service_level: str | None
    origin_facility_id: str | None
    destination_type: str | None = Field(description="DC, PHARMACY or PATIENT.")
    current_status: str | None
    promised_delivery_time: datetime | None
    delivered_at: datetime | None
    delay_probability: float = Field(description="Predicted chance of a late delivery, 0..1.")
    predicted_late: bool | None = Field(description="At or above the model's threshold.")
    model_version: str | None


class ShipmentRiskPage(BaseModel):
    items: list[ShipmentRisk]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    as_of: datetime


@router.get(
    "/delay-risk",
    response_model=ShipmentRiskPage,
    dependencies=ROWS,
    summary="Shipments most likely to arrive late, riskiest first",
)
def delay_risk(
    services: ServicesDep,
    filters: Annotated[Filters, Depends(risk_filters)],
    page: PageDep,
    min_probability: Annotated[
        float | None,
        Query(
            ge=0,
            le=1,
            description="Only shipments at least this likely to be late (default: the ones the "
            "model predicts late, at its own threshold).",
        ),
    ] = None,
    open_only: Annotated[
        bool, Query(description="Only shipments not delivered yet (the ones to act on).")
    ] = True,
) -> dict[str, Any]:
    return ml.delay_risk(services.queries, filters, page, min_probability, open_only)


class ForecastPoint(BaseModel):
    target_date: date
    horizon_days: int = Field(description="Days between the forecast's origin and this day.")
    forecast_units: float
    series: int = Field(description="Pharmacy x product series summed into this point.")
    origin_date: date = Field(description="The newest sales day the forecast used.")
    model_version: str | None


class Forecast(BaseModel):
    items: list[ForecastPoint]
    as_of: datetime


@router.get(
    "/demand-forecast",
    response_model=Forecast,
    dependencies=AGGREGATES,
    summary="Forecast units per day ahead (all pharmacies and products, or one of each)",
)
def demand_forecast(
    services: ServicesDep,
    filters: Annotated[Filters, Depends(params.pharmacy_filters)],
    ndc: Annotated[
        str | None, Query(max_length=20, description="Only this product (NDC), e.g. 00002-1433-80.")
    ] = None,
) -> dict[str, Any]:
    return ml.demand_forecast(services.queries, filters, ndc)


class Elasticity(BaseModel):
    ndc: str
    product_name: str | None
    elasticity: float = Field(description="% change in units per % change in price.")
    ci_low: float | None
    ci_high: float | None
    method: str | None
    model_version: str | None


class Elasticities(BaseModel):
    items: list[Elasticity]
    as_of: datetime


@router.get(
    "/price-elasticity",
    response_model=Elasticities,
    dependencies=AGGREGATES,
    summary="Estimated price elasticity per product, seasonal confounding removed",
)
def price_elasticity(services: ServicesDep) -> dict[str, Any]:
    return ml.elasticities(services.queries)


class ModelScores(BaseModel):
    scores_table: str
    model_name: str
    model_version: str
    rows: int
    scored_at: datetime


class Models(BaseModel):
    items: list[ModelScores]
    as_of: datetime


@router.get(
    "/models",
    response_model=Models,
    dependencies=AGGREGATES,
    summary="Which model version wrote each score table, and when",
)
def models(services: ServicesDep) -> dict[str, Any]:
    return ml.models(services.queries)
