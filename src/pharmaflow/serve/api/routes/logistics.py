"""Routes of distribution and patients: shipments, cold chain, recall traces, feedback.

A shipment's timeline, the excursion list and survey comments are row-level (scope `rows`);
delivery performance and the feedback analytics are aggregates (every reading role). A lot or
batch trace is needed by analysts (recalls, where the goods went) and by plant QA (what a
rejected batch reached), so either `rows` or `quality` opens it. Traces carry pseudonymous
`patient_key`s only. The answers come from the query layer (serve/query/logistics.py,
feedback.py, recall.py); this module only validates, authorises and documents them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from pharmaflow.serve.api import params
from pharmaflow.serve.api.auth import (
    AUTH_RESPONSES,
    ErrorDetail,
    require,
)
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.query import feedback, logistics, recall
from pharmaflow.serve.query.base import Filters, Page
from pharmaflow.serve.security.roles import Scope

router = APIRouter(prefix="/v1", tags=["logistics"])

ServicesDep = Annotated[Services, Depends(get_services)]
FiltersDep = Annotated[Filters, Depends(params.filters)]
PageDep = Annotated[Page, Depends(params.page)]
ShipmentId = Annotated[str, params.path_id("Shipment id, e.g. SHP-261103-000457.")]
LotNumber = Annotated[str, params.path_id("Lot number as printed on the pack, e.g. L261101-2-01.")]
BatchId = Annotated[str, params.path_id("Manufacturing batch id, e.g. BT-PL02-261101-01.")]
Period = Annotated[
    Literal["day", "week", "month"],
    Query(description="Bucket of the series: UTC day, ISO week (from Monday) or month."),
]


ROWS = [Depends(require(Scope.rows))]
AGGREGATES = [Depends(require(Scope.aggregates))]
TRACE = [Depends(require(Scope.rows, Scope.quality, what="read lot traces"))]


def _not_found(what: str) -> dict[int | str, dict[str, Any]]:
    return {**AUTH_RESPONSES, 404: {"model": ErrorDetail, "description": f"No such {what}."}}


FeedbackFiltersDep = Annotated[Filters, Depends(params.pharmacy_filters)]


# shipments


class Shipment(BaseModel):
    shipment_id: str
    has_created_event: bool = Field(description="False while its created event has not arrived.")
    origin_facility_id: str | None = Field(description="Facility the goods left from.")
    origin_facility_type: str | None = Field(description="PLANT, DC or PHARMACY.")
    destination_facility_id: str | None = Field(description="None when it goes to a patient.")
    destination_type: str | None = Field(description="DC, PHARMACY or PATIENT.")
    order_id: str | None = Field(description="The pharmacy order a shipment to a patient carries.")
    carrier_id: str | None
    carrier_name: str | None
    service_level: str | None = Field(description="SAME_DAY, OVERNIGHT, TWO_DAY, GROUND, ...")
    cold_chain: bool | None = Field(description="A 2-8 C shipment with a temperature logger.")
    n_lots: int = Field(description="Distinct lots in the shipment.")
    created_at: datetime | None
    picked_up_at: datetime | None = Field(description="First PICKED_UP scan.")
    promised_delivery_time: datetime | None
    delivered_at: datetime | None = Field(description="First delivery.")
    last_delivered_at: datetime | None = Field(description="Latest delivery (a re-delivery).")
    transit_hours: float | None = Field(description="Pick-up (else creation) to delivery.")
    on_time: bool | None = Field(description="Delivered at or before the promise.")
    current_status: str | None = Field(description="Stage of the latest event.")
    status_changed_at: datetime | None
    scans: int
    exceptions: int
    temperature_readings: int = Field(description="Logger readings.")
    temperature_out_of_spec: int = Field(description="Readings outside the spec band.")
    min_celsius: float | None
    max_celsius: float | None
    excursion_minutes: float | None = Field(
        description="Minutes out of spec (largest over its loggers); None without readings."
    )
    time_in_spec_pct: float | None = Field(description="Time-weighted compliance, percent.")


class Scan(BaseModel):
    at: datetime = Field(description="Event time (UTC).")
    status: str = Field(description="PICKED_UP, IN_TRANSIT, AT_FACILITY or OUT_FOR_DELIVERY.")
    facility_id: str | None = Field(description="Where it was scanned, when known.")
    event_id: str


class ShipmentException(BaseModel):
    at: datetime
    exception_code: str = Field(description="DELAY, DAMAGED, LOST or TEMP_EXCURSION.")
    detail: str | None = Field(description="The carrier's text, scrubbed of PHI by ingest.")
    event_id: str


class Delivery(BaseModel):
    at: datetime
    event_id: str


class TemperaturePoint(BaseModel):
    at: datetime = Field(description="Time of the first reading of the point.")
    until: datetime = Field(description="Time of its last reading (= at for one reading).")
    celsius: float = Field(description="Mean of the point's readings.")
    min_celsius: float
    max_celsius: float
    readings: int = Field(description="Readings folded into the point.")
    out_of_spec: int = Field(description="Of those, readings outside the spec band.")


class Temperatures(BaseModel):
    readings: int = Field(description="Logger readings of the shipment.")
    downsampled: bool = Field(
        description="True when readings were folded into fewer points (each keeps min/max)."
    )
    spec_min: float | None = Field(description="Lower limit of the band, Celsius.")
    spec_max: float | None = Field(description="Upper limit of the band, Celsius.")
    points: list[TemperaturePoint] = Field(
        description=f"In time order, at most {logistics.MAX_POINTS}."
    )


class LiveColdChain(BaseModel):
    carrier_id: str | None
    cold_chain: bool
    minutes_out_of_range: float = Field(description="Minutes out of spec so far (speed layer).")
    in_excursion: bool = Field(description="Its latest reading is outside the band.")
    last_celsius: float | None
    spec_min: float | None
    spec_max: float | None
    last_reading_at: datetime | None
    delivered: bool


class ShipmentTimeline(BaseModel):
    shipment_id: str
    shipment: Shipment | None = Field(
        description="gold.fact_shipment's row (None: created after the last build)."
    )
    scans: list[Scan] = Field(description="Carrier scans in event-time order.")
    exceptions: list[ShipmentException] = Field(description="Carrier exceptions in order.")
    deliveries: list[Delivery] = Field(description="Delivery events (re-deliveries too).")
    temperatures: Temperatures = Field(description="The logger's readings, bounded.")
    live: LiveColdChain | None = Field(
        description="The speed layer's cold-chain state (None: not tracked or not running)."
    )
    as_of: datetime = Field(description="When the served warehouse build ended.")


class Excursion(BaseModel):
    shipment_id: str
    carrier_id: str | None
    service_level: str | None
    cold_chain: bool | None
    origin_facility_id: str | None
    destination_facility_id: str | None
    destination_type: str | None
    created_at: datetime | None = Field(description="The date filters apply to this time.")
    delivered_at: datetime | None
    current_status: str | None
    excursion_minutes: float = Field(description="Minutes out of spec (logger-measured).")
    temperature_readings: int
    temperature_out_of_spec: int
    min_celsius: float | None
    max_celsius: float | None
    time_in_spec_pct: float | None
    exceptions_temp_excursion: int = Field(
        description="TEMP_EXCURSION exceptions the carrier sent."
    )


class ExcursionPage(BaseModel):
    items: list[Excursion]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    as_of: datetime


@router.get(
    "/shipments/excursions",
    response_model=ExcursionPage,
    dependencies=ROWS,
    responses=AUTH_RESPONSES,
    summary="Cold-chain shipments with a temperature excursion, longest first",
)
def shipment_excursions(
    services: ServicesDep, filters: FiltersDep, page: PageDep
) -> dict[str, Any]:
    return logistics.excursions(services.queries, filters, page)


@router.get(
    "/shipments/{shipment_id}/timeline",
    response_model=ShipmentTimeline,
    dependencies=ROWS,
    responses=_not_found("shipment"),
    summary="Where a shipment is: scans, temperatures, exceptions, delivery, live cold chain",
)
def shipment_timeline(shipment_id: ShipmentId, services: ServicesDep) -> dict[str, Any]:
    found = logistics.shipment_timeline(services.queries, shipment_id)
    if found is None:
        raise HTTPException(404, f"no shipment {shipment_id} in the warehouse or the speed layer")
    return found


# delivery performance


class PerformanceRow(BaseModel):
    period: date = Field(description="First day of the period (of delivered_at).")
    carrier_id: str | None = Field(None, description="When grouped by carrier.")
    carrier_name: str | None = Field(None, description="When grouped by carrier.")
    service_level: str | None = Field(None, description="When grouped by service level.")
    shipments: int = Field(description="Shipments delivered in the period.")
    on_time: int = Field(description="Delivered at or before the promise.")
    late: int = Field(description="Delivered after the promise.")
    with_promise: int = Field(description="Delivered shipments with a promised time.")
    on_time_pct: float | None = Field(description="100 x on_time / with_promise.")
    avg_transit_hours: float | None = Field(description="Mean pick-up-to-delivery hours.")
    with_exception: int = Field(description="Delivered shipments with a carrier exception.")


class DeliveryPerformance(BaseModel):
    period: str
    group_by: list[str] = Field(description="The grouping columns of the rows.")
    items: list[PerformanceRow]
    as_of: datetime


GROUPINGS: dict[str, tuple[str, ...]] = {
    "both": ("carrier", "service_level"),
    "carrier": ("carrier",),
    "service_level": ("service_level",),
    "none": (),
}


@router.get(
    "/analytics/delivery-performance",
    response_model=DeliveryPerformance,
    dependencies=AGGREGATES,
    responses=AUTH_RESPONSES,
    summary="On-time rate, deliveries, late ones and transit hours by carrier, service, period",
)
def delivery_performance(
    services: ServicesDep,
    filters: FiltersDep,
    period: Period = "week",
    group_by: Annotated[
        Literal["both", "carrier", "service_level", "none"],
        Query(description="Rows per carrier, per service level, per both, or per period only."),
    ] = "both",
) -> dict[str, Any]:
    return logistics.delivery_performance(services.queries, filters, GROUPINGS[group_by], period)


# recall


class BatchOutcome(BaseModel):
    batch_id: str
    lot_number: str | None
    ndc: str | None
    site_id: str | None = Field(description="The plant that made it.")
    final_status: str | None = Field(description="The batch's latest status.")
    quality_flag: str = Field(description="RELEASABLE, REVIEW, REJECTED or IN_PROCESS.")
    lab_pass_rate: float | None
    lab_tests: int
    lab_tests_failed: int
    open_deviations: int
    completed_at: datetime | None


class TraceShipment(BaseModel):
    lot_number: str
    shipment_id: str
    leg: str = Field(description="PLANT_TO_DC, DC_TO_PHARMACY, PHARMACY_TO_PATIENT, ...")
    origin_facility_id: str | None
    origin_facility_type: str | None
    destination_facility_id: str | None = Field(description="None for a patient.")
    destination_facility_type: str | None
    carrier_id: str | None
    cold_chain: bool | None
    order_id: str | None = Field(description="The order a shipment to a patient carries.")
    patient_key: str | None = Field(description="Pseudonymous patient token (never an identity).")
    created_at: datetime = Field(description="When the lot entered the shipment.")
    delivered_at: datetime | None


class TraceOrder(BaseModel):
    lot_number: str
    order_id: str
    patient_key: str | None = Field(description="Pseudonymous patient token (never an identity).")
    pharmacy_id: str | None = Field(description="The dispensing pharmacy.")
    quantity: int | None = Field(description="Units dispensed from the lot.")
    filled_at: datetime
    shipment_id: str | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    is_current_fill: bool = Field(description="False when the order was re-filled since.")


class TraceCounts(BaseModel):
    lots: int
    batches: int
    shipments: int = Field(description="Distinct shipments (every leg).")
    shipments_by_leg: dict[str, int]
    orders: int
    orders_without_patient: int
    units_dispensed: int
    patients: int = Field(description="Distinct patient keys to contact.")


class GraphNode(BaseModel):
    id: str = Field(description="Typed id: batch:, lot:, facility: or orders:<pharmacy>.")
    kind: Literal["batch", "lot", "facility", "orders"]
    label: str
    facility_type: str | None = None


class GraphEdge(BaseModel):
    source: str
    target: str
    kind: str = Field(
        description="MADE (batch to lot), FROM (lot to where it left from), a leg "
        "(PLANT_TO_DC, DC_TO_PHARMACY, ...), or TO_PATIENTS (a pharmacy's dispensed orders "
        "and shipments to patients)."
    )
    shipments: int
    orders: int
    value: int = Field(description="A width for a picture: what the edge carried.")


class Graph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class RecallTrace(BaseModel):
    query: Literal["lot", "batch"]
    key: str = Field(description="The lot number or batch id asked for.")
    lots: list[str]
    batches: list[BatchOutcome] = Field(description="The batch(es) and their QA outcome.")
    shipments: list[TraceShipment] = Field(description="Every shipment leg that carried a lot.")
    orders: list[TraceOrder] = Field(description="Every order dispensed from a lot.")
    patient_keys: list[str] = Field(description="Distinct pseudonymous patients reached.")
    counts: TraceCounts
    graph: Graph = Field(description="The genealogy as nodes and weighted edges.")
    as_of: datetime
    snapshot: str = Field(description="The warehouse snapshot the trace was read from.")


@router.get(
    "/lots/{lot}/trace",
    response_model=RecallTrace,
    dependencies=TRACE,
    responses=_not_found("lot"),
    summary="Recall trace of a lot: batch, shipments by leg, orders, patient keys, genealogy",
)
def lot_trace(lot: LotNumber, services: ServicesDep) -> dict[str, Any]:
    found = recall.lot_trace(services.queries, lot)
    if found is None:
        raise HTTPException(404, f"no lot {lot} in the warehouse: no batch, shipment or order")
    return found


@router.get(
    "/batches/{batch_id}/trace",
    response_model=RecallTrace,
    dependencies=TRACE,
    responses=_not_found("batch"),
    summary="Recall trace of the lot(s) a batch made",
)
def batch_trace(batch_id: BatchId, services: ServicesDep) -> dict[str, Any]:
    found = recall.batch_trace(services.queries, batch_id)
    if found is None:
        raise HTTPException(404, f"no batch {batch_id} in the warehouse")
    return found


# patient feedback


class NpsPoint(BaseModel):
    surveys: int
    responses: int = Field(description="Surveys with an NPS answer.")
    promoters: int = Field(description="Answers 9-10.")
    passives: int = Field(description="Answers 7-8.")
    detractors: int = Field(description="Answers 0-6.")
    promoter_pct: float | None
    detractor_pct: float | None
    nps: float | None = Field(description="% promoters - % detractors, -100 to 100.")
    avg_rating: float | None = Field(description="Mean 1-5 star rating.")


class NpsPeriod(NpsPoint):
    period: date = Field(description="First day of the period (of submitted_at).")


class RatingCount(BaseModel):
    rating: int = Field(description="Stars, 1-5.")
    surveys: int
    share_pct: float | None = Field(description="Share of the rated surveys, percent.")


class FeedbackAnalytics(BaseModel):
    period: str
    trend: list[NpsPeriod] = Field(description="NPS per period.")
    overall: NpsPoint = Field(description="The same over the whole filtered range.")
    ratings: list[RatingCount] = Field(description="Surveys per star rating.")
    as_of: datetime


@router.get(
    "/analytics/feedback",
    response_model=FeedbackAnalytics,
    dependencies=AGGREGATES,
    responses=AUTH_RESPONSES,
    summary="Patient feedback: NPS trend, overall NPS and the rating distribution",
)
def feedback_analytics(
    services: ServicesDep, filters: FeedbackFiltersDep, period: Period = "week"
) -> dict[str, Any]:
    trend = feedback.nps_trend(services.queries, filters, period)
    return {
        "period": period,
        "trend": trend["items"],
        "overall": trend["overall"],
        "ratings": feedback.rating_distribution(services.queries, filters),
        "as_of": trend["as_of"],
    }


class Comment(BaseModel):
    survey_id: str
    submitted_at: datetime
    rating: int | None
    nps: int | None
    nps_category: str | None = Field(description="PROMOTER, PASSIVE or DETRACTOR.")
    pharmacy_id: str | None
    order_id: str
    comment: str = Field(description="As ingest stored it: names, phones, e-mails scrubbed.")
    sentiment_label: str | None = Field(
        None, description="POSITIVE, NEUTRAL or NEGATIVE (the sentiment model); None until scored."
    )
    sentiment_score: float | None = Field(None, description="VADER compound score, -1..1.")


class CommentPage(BaseModel):
    items: list[Comment]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    as_of: datetime


@router.get(
    "/feedback/comments",
    response_model=CommentPage,
    dependencies=ROWS,
    responses=AUTH_RESPONSES,
    summary="Survey comments, scrubbed of PHI, newest first",
)
def feedback_comments(
    services: ServicesDep,
    filters: FeedbackFiltersDep,
    page: PageDep,
    category: Annotated[
        Literal["PROMOTER", "PASSIVE", "DETRACTOR"] | None,
        Query(description="Only comments of this NPS category."),
    ] = None,
    sentiment: Annotated[
        Literal["POSITIVE", "NEUTRAL", "NEGATIVE"] | None,
        Query(description="Only comments of this sentiment (as the sentiment model scored it)."),
    ] = None,
) -> dict[str, Any]:
    return feedback.comments(services.queries, filters, page, category, sentiment)
