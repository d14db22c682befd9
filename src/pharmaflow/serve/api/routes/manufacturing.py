"""Routes of the plant side: batch records, sensor trends, deviations, quality analytics.

Batch records and deviations are quality records (scope `quality`: qa, privacy_officer); the
analytics over them are aggregates (every reading role). The answers come from the query
layer (serve/query/manufacturing.py, compliance.py); this module only validates, authorises
and documents them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from pharmaflow.serve.api import params
from pharmaflow.serve.api.auth import AUTH_RESPONSES, ErrorDetail, require
from pharmaflow.serve.api.services import Services, get_services
from pharmaflow.serve.query import compliance, manufacturing
from pharmaflow.serve.query.base import Filters, Page
from pharmaflow.serve.security.roles import Scope

router = APIRouter(prefix="/v1", tags=["manufacturing"])

QUALITY = [Depends(require(Scope.quality))]
AGGREGATES = [Depends(require(Scope.aggregates))]
NOT_FOUND = {404: {"model": ErrorDetail, "description": "No such batch."}}

QualityFlag = Literal["RELEASABLE", "REVIEW", "REJECTED", "IN_PROCESS"]
SensorType = Literal["TEMPERATURE", "HUMIDITY", "PRESSURE", "VIBRATION"]
ServicesDep = Annotated[Services, Depends(get_services)]
BatchId = Annotated[str, params.path_id("Manufacturing batch id, e.g. BT-PL01-261102-03.")]


def site_filters(
    date_from: params.DateFrom = None,
    date_to: params.DateTo = None,
    site_id: params.SiteId = None,
) -> Filters:
    """The filters plant routes take: dates and site (pharmacy and carrier do not apply)."""
    return params.filters(date_from=date_from, date_to=date_to, site_id=site_id)


SiteFilters = Annotated[Filters, Depends(site_filters)]
PageParams = Annotated[Page, Depends(params.page)]


# batch records


class BatchStatus(BaseModel):
    batch_id: str = Field(description="Manufacturing batch id.")
    lot_number: str | None = Field(description="Lot the batch produces.")
    ndc: str | None = Field(description="Product NDC (5-4-2).")
    product_name: str | None = Field(description="Product name (version valid at the start).")
    strength: str | None = Field(description="Strength as labelled.")
    dosage_form: str | None = Field(description="Dosage form.")
    site_id: str | None = Field(description="Plant (facility id).")
    site_name: str | None = Field(description="Plant name when the batch started.")
    site_region: str | None = Field(description="Plant region when the batch started.")
    equipment_id: str | None = Field(description="Main equipment of the latest status event.")
    equipment_name: str | None = Field(description="Equipment name.")
    equipment_type: str | None = Field(description="Equipment type (BIOREACTOR, ...).")
    operator_id: str | None = Field(description="Operator on the latest status event.")
    final_status: str | None = Field(
        description="Latest status: QUEUED, IN_PROGRESS, COMPLETED, FAILED or ON_HOLD."
    )
    quality_flag: str = Field(
        description="QA disposition: RELEASABLE, REVIEW, REJECTED or IN_PROCESS."
    )
    status_changed_at: datetime | None = Field(description="When the latest status was set.")
    started_at: datetime | None = Field(description="First IN_PROGRESS, UTC.")
    completed_at: datetime | None = Field(description="Latest COMPLETED or FAILED, UTC.")
    batch_size_kg: float | None = Field(description="Planned batch size, kg.")
    actual_yield_kg: float | None = Field(description="Actual yield, kg (on COMPLETED).")
    yield_pct: float | None = Field(description="100 x actual / planned kg.")
    yield_set_aside: bool | None = Field(
        description="The yield was implausible (above 110 %) and set aside."
    )
    lab_tests: int = Field(description="Lab results.")
    lab_tests_passed: int = Field(description="Lab results PASS.")
    lab_tests_failed: int = Field(description="Lab results FAIL.")
    lab_tests_conditional: int = Field(description="Lab results CONDITIONAL.")
    lab_pass_rate: float | None = Field(description="PASS / all lab results, 0 to 1.")
    sensor_readings: int = Field(description="Equipment sensor readings.")
    sensor_out_of_spec: int = Field(description="Readings outside [spec_min, spec_max].")
    temperature_compliance_pct: float | None = Field(
        description="TEMPERATURE readings within spec, %."
    )
    deviations: int = Field(description="Deviations opened against the batch.")
    open_deviations: int = Field(description="Of those, still open.")
    open_critical_deviations: int = Field(description="Of the open ones, CRITICAL.")


class SensorSummary(BaseModel):
    sensor_id: str = Field(description="Sensor id.")
    sensor_type: str = Field(description="TEMPERATURE, HUMIDITY, PRESSURE or VIBRATION.")
    equipment_id: str | None = Field(description="Equipment the sensor is on.")
    unit: str | None = Field(description="Unit of the values and spec limits.")
    readings: int = Field(description="Readings during the batch.")
    out_of_spec: int = Field(description="Readings below spec_min or above spec_max.")
    min_value: float | None = Field(description="Lowest reading.")
    max_value: float | None = Field(description="Highest reading.")
    avg_value: float | None = Field(description="Mean reading.")
    spec_min: float | None = Field(description="Lower spec limit (lowest seen).")
    spec_max: float | None = Field(description="Upper spec limit (highest seen).")
    first_at: datetime | None = Field(description="First reading, UTC.")
    last_at: datetime | None = Field(description="Last reading, UTC.")


class LabResult(BaseModel):
    test_id: str = Field(description="Lab test id.")
    test_name: str | None = Field(description="Test (Assay, Dissolution, ...).")
    outcome: str = Field(description="PASS, FAIL or CONDITIONAL.")
    result: float | None = Field(description="Measured result, in `unit`.")
    unit: str | None = Field(description="Unit of the result and spec limits.")
    spec_min: float | None = Field(description="Lower spec limit.")
    spec_max: float | None = Field(description="Upper spec limit.")
    tested_at: datetime = Field(description="When the LIMS reported the result, UTC.")
    analyst_id: str | None = Field(description="Analyst (employee id).")


class Deviation(BaseModel):
    deviation_id: str = Field(description="Deviation id.")
    batch_id: str = Field(description="Batch the deviation was opened against.")
    site_id: str | None = Field(description="The batch's plant.")
    severity: str = Field(description="MINOR, MAJOR, CRITICAL (UNKNOWN: opening not seen).")
    category: str | None = Field(description="Category as QMS reports it (EQUIPMENT, ...).")
    opened_at: datetime | None = Field(description="First opened event, UTC.")
    closed_at: datetime | None = Field(description="Latest closed event, UTC; null while open.")
    is_open: bool = Field(description="No closure has arrived.")
    investigation_days: float | None = Field(description="Closed - opened, days.")
    age_days: float | None = Field(
        description="Open ones: days open, to the warehouse's newest manufacturing event."
    )
    capa_id: str | None = Field(description="CAPA the closure raised, if any.")
    has_capa: bool = Field(description="The closure raised a CAPA.")
    description: str | None = Field(description="What happened (scrubbed of PHI by ingest).")
    resolution: str | None = Field(description="Root cause and action (scrubbed of PHI).")


class LiveSensor(BaseModel):
    sensor_id: str = Field(description="Sensor id.")
    sensor_type: str = Field(description="Sensor type.")
    equipment_id: str = Field(description="Equipment the sensor is on.")
    consecutive_out_of_spec: int = Field(
        description="Out-of-spec readings in a row up to the latest one (0: in spec now)."
    )
    last_value: float | None = Field(description="Latest reading.")
    spec_min: float | None = Field(description="Lower spec limit.")
    spec_max: float | None = Field(description="Upper spec limit.")
    last_at: datetime | None = Field(description="When the latest reading was taken, UTC.")


class LiveLabFailure(BaseModel):
    test_id: str = Field(description="Lab test id.")
    test_name: str = Field(description="Test name.")
    at: datetime = Field(description="When the FAIL result arrived, UTC.")


class LiveBatch(BaseModel):
    clock: datetime | None = Field(description="The speed layer's stream clock.")
    sensors: list[LiveSensor] = Field(description="The batch's sensors as the stream sees them.")
    lab_failures: list[LiveLabFailure] = Field(description="FAIL results the stream has seen.")


class BatchDetail(BaseModel):
    batch_id: str = Field(description="Manufacturing batch id.")
    in_warehouse: bool = Field(
        description="False for a batch only the speed layer has seen (since the last build)."
    )
    status: BatchStatus | None = Field(description="Status and summary (null: not built yet).")
    sensors: list[SensorSummary] = Field(description="Per sensor: readings against spec.")
    lab_results: list[LabResult] = Field(description="Every lab result, oldest first.")
    deviations: list[Deviation] = Field(description="Deviations opened against the batch.")
    live: LiveBatch | None = Field(description="Speed-layer state (null: not running).")
    as_of: datetime = Field(description="When the served warehouse build ended.")


@router.get(
    "/batches/{batch_id}",
    response_model=BatchDetail,
    dependencies=QUALITY,
    responses={**AUTH_RESPONSES, **NOT_FOUND},
    summary="A batch's record: status, sensors, lab results, deviations, quality flag",
)
def batch(batch_id: BatchId, services: ServicesDep) -> dict[str, Any]:
    found = manufacturing.batch_detail(services.queries, batch_id)
    if found is None:
        raise HTTPException(404, _unknown_batch(services, batch_id))
    return found


def _unknown_batch(services: Services, batch_id: str) -> str:
    built = services.queries.info().built_at
    return f"no batch {batch_id} in the warehouse (built {built:%Y-%m-%d %H:%M} UTC)"


class BatchItem(BaseModel):
    batch_id: str = Field(description="Manufacturing batch id.")
    lot_number: str | None = Field(description="Lot the batch produces.")
    ndc: str | None = Field(description="Product NDC.")
    site_id: str | None = Field(description="Plant.")
    equipment_id: str | None = Field(description="Main equipment.")
    final_status: str | None = Field(description="Latest status.")
    quality_flag: str = Field(description="QA disposition.")
    started_at: datetime | None = Field(description="First IN_PROGRESS, UTC.")
    completed_at: datetime | None = Field(description="Latest COMPLETED or FAILED, UTC.")
    yield_pct: float | None = Field(description="100 x actual / planned kg.")
    lab_tests: int = Field(description="Lab results.")
    lab_pass_rate: float | None = Field(description="PASS / all lab results.")
    sensor_readings: int = Field(description="Sensor readings.")
    sensor_out_of_spec: int = Field(description="Out-of-spec sensor readings.")
    deviations: int = Field(description="Deviations opened against it.")
    open_deviations: int = Field(description="Of those, still open.")


class BatchPage(BaseModel):
    items: list[BatchItem] = Field(description="Batches in batch_id order.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


@router.get(
    "/batches",
    response_model=BatchPage,
    dependencies=QUALITY,
    responses=AUTH_RESPONSES,
    summary="Batches started in the period at the site, a page at a time",
)
def batches(
    services: ServicesDep,
    filters: SiteFilters,
    page: PageParams,
    quality_flag: Annotated[
        QualityFlag | None, Query(description="Only batches with this QA disposition.")
    ] = None,
) -> dict[str, Any]:
    return manufacturing.batches(services.queries, filters, page, quality_flag)


class SensorPoint(BaseModel):
    sensor_id: str = Field(description="Sensor id.")
    sensor_type: str = Field(description="Sensor type.")
    unit: str | None = Field(description="Unit of the values and spec limits.")
    bucket: int = Field(description="Time bucket number within the sensor's span (0 first).")
    at: datetime = Field(description="First reading in the bucket, UTC.")
    until: datetime = Field(description="Last reading in the bucket, UTC.")
    readings: int = Field(description="Readings in the bucket.")
    value: float = Field(description="Mean reading in the bucket.")
    min_value: float = Field(description="Lowest reading in the bucket.")
    max_value: float = Field(description="Highest reading in the bucket.")
    out_of_spec: int = Field(description="Readings in the bucket outside the spec band.")
    spec_min: float | None = Field(description="Lower edge of the spec band.")
    spec_max: float | None = Field(description="Upper edge of the spec band.")


class SensorTrend(BaseModel):
    batch_id: str = Field(description="Manufacturing batch id.")
    sensor_type: str | None = Field(description="The sensor type asked for (null: all).")
    max_points_per_sensor: int = Field(description="Readings are bucketed to at most this.")
    points: list[SensorPoint] = Field(description="Per sensor, in time order.")


@router.get(
    "/batches/{batch_id}/sensors",
    response_model=SensorTrend,
    dependencies=QUALITY,
    responses={**AUTH_RESPONSES, **NOT_FOUND},
    summary="A batch's sensor readings over time against the spec band (downsampled)",
)
def batch_sensors(
    batch_id: BatchId,
    services: ServicesDep,
    sensor_type: Annotated[SensorType | None, Query(description="Only this sensor type.")] = None,
) -> dict[str, Any]:
    points = manufacturing.sensor_trend(services.queries, batch_id, sensor_type)
    if not points and not manufacturing.batch_known(services.queries, batch_id):
        raise HTTPException(404, _unknown_batch(services, batch_id))
    return {
        "batch_id": batch_id,
        "sensor_type": sensor_type,
        "max_points_per_sensor": manufacturing.SENSOR_TREND_POINTS,
        "points": points,
    }


# deviations


class DeviationPage(BaseModel):
    items: list[Deviation] = Field(description="Deviations in deviation_id order.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


@router.get(
    "/deviations",
    response_model=DeviationPage,
    dependencies=QUALITY,
    responses=AUTH_RESPONSES,
    summary="Quality deviations opened in the period at the site, a page at a time",
)
def deviations(
    services: ServicesDep,
    filters: SiteFilters,
    page: PageParams,
    open_only: Annotated[bool, Query(description="Only deviations still open.")] = False,
) -> dict[str, Any]:
    return compliance.deviations(services.queries, filters, page, open_only)


# analytics


class PassRateDay(BaseModel):
    day: date = Field(description="UTC day the batches finished.")
    site_id: str | None = Field(description="Plant.")
    batches_finished: int = Field(description="Batches whose latest status is COMPLETED/FAILED.")
    released: int = Field(description="Of those, RELEASABLE.")
    rejected: int = Field(description="Of those, REJECTED.")
    review: int = Field(description="Of those, needing QA review.")
    batch_pass_rate: float = Field(description="released / batches_finished (kpi_quality's).")
    lab_tests: int = Field(description="Lab results of those batches.")
    lab_tests_passed: int = Field(description="Of those, PASS.")
    lab_pass_rate: float | None = Field(description="PASS / all lab results.")


class BatchQuality(BaseModel):
    trend: list[PassRateDay] = Field(description="Per day and site, oldest first.")
    as_of: datetime = Field(description="When the served warehouse build ended.")


@router.get(
    "/analytics/batch-quality",
    response_model=BatchQuality,
    dependencies=AGGREGATES,
    responses=AUTH_RESPONSES,
    summary="Batch pass-rate trend per day and site",
)
def batch_quality(services: ServicesDep, filters: SiteFilters) -> dict[str, Any]:
    trend = manufacturing.pass_rate_trend(services.queries, filters)
    return {"trend": trend, "as_of": services.queries.info().built_at}


class SeverityCount(BaseModel):
    severity: str = Field(description="MINOR, MAJOR, CRITICAL or UNKNOWN.")
    deviations: int = Field(description="Deviations opened in the period.")
    open: int = Field(description="Of those, still open.")
    closed: int = Field(description="Of those, closed.")
    oldest_open_days: float | None = Field(description="Age of the oldest open one, days.")


class AgeCount(BaseModel):
    severity: str = Field(description="Severity.")
    age_bucket: str = Field(description="0-7, 7-30, 30-90 or 90+ days open.")
    open: int = Field(description="Open deviations of that severity and age.")


class OpenDeviations(BaseModel):
    as_of: datetime | None = Field(description="What ages count to: newest manufacturing event.")
    total: int = Field(description="Deviations opened in the period.")
    open: int = Field(description="Of those, still open.")
    by_severity: list[SeverityCount] = Field(description="Per severity.")
    by_age: list[AgeCount] = Field(description="Open ones per severity and age bucket.")


class InvestigationStats(BaseModel):
    severity: str = Field(description="Severity, or ALL.")
    closed: int = Field(description="Deviations closed in the period.")
    mean_days: float | None = Field(description="Mean investigation time, days.")
    p50_days: float | None = Field(description="Median investigation time, days.")
    p90_days: float | None = Field(description="90th percentile, days.")
    min_days: float | None = Field(description="Shortest, days.")
    max_days: float | None = Field(description="Longest, days.")


class InvestigationBucket(BaseModel):
    severity: str = Field(description="Severity.")
    bucket: str = Field(description="Investigation time range (<1 day ... 30+ days).")
    deviations: int = Field(description="Closed deviations whose investigation took that long.")


class InvestigationTimes(BaseModel):
    by_severity: list[InvestigationStats] = Field(description="ALL first, then per severity.")
    distribution: list[InvestigationBucket] = Field(description="Per severity and duration.")


class DeviationAnalytics(BaseModel):
    open: OpenDeviations = Field(description="Deviations opened in the period, open by age.")
    investigation: InvestigationTimes = Field(description="Deviations closed in the period.")


@router.get(
    "/analytics/deviations",
    response_model=DeviationAnalytics,
    dependencies=AGGREGATES,
    responses=AUTH_RESPONSES,
    summary="Open deviations by severity and age; investigation times of closed ones",
)
def deviation_analytics(services: ServicesDep, filters: SiteFilters) -> dict[str, Any]:
    return {
        "open": compliance.open_deviations(services.queries, filters),
        "investigation": compliance.investigation_times(services.queries, filters),
    }
