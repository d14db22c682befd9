"""The plant side: batches, their sensors and lab results, pass rates, yield, utilisation.

What plant QA reads (the batch record an inspector asks for, and the trends behind the batch
quality and production pages), from gold's manufacturing facts and, for a batch's raw sensor
and lab data, the silver tables gold summarises. A batch's detail adds the speed layer's live
state (sensors in a run of out-of-spec readings, lab failures) so a batch still running or
failing since the last build shows what is happening now.

Date filters apply to the time that makes a row belong to a period: a batch's start (lists),
its completion (pass rates, yields), a failure's time; utilisation overlaps each run with the
period. The site filter is the batch's plant. Every query is bounded (LIMIT) and keyed in the
cache by its name plus the shape of its WHERE clause (two filter shapes can bind equal
parameters to different SQL).
"""

from __future__ import annotations

from typing import Any

from pharmaflow.serve.query import compliance
from pharmaflow.serve.query.base import Filters, Page, QueryContext

# Points per sensor a trend returns at most: enough for a chart's width, bounded per batch.
SENSOR_TREND_POINTS = 240
MAX_TREND_ROWS = 5000
MAX_FAILURES = 500

BATCH_SQL = (
    "select b.batch_id, b.lot_number, b.ndc, p.product_name, p.strength, p.dosage_form, "
    "b.site_id, f.facility_name as site_name, b.site_region, "
    "b.equipment_id, e.equipment_name, e.equipment_type, b.operator_id, "
    "b.final_status, b.quality_flag, b.status_changed_at, b.started_at, b.completed_at, "
    "round(b.batch_size_kg, 3) as batch_size_kg, round(b.actual_yield_kg, 3) as actual_yield_kg, "
    "b.yield_pct, b.yield_set_aside, b.lab_tests, b.lab_tests_passed, b.lab_tests_failed, "
    "b.lab_tests_conditional, b.lab_pass_rate, b.sensor_readings, b.sensor_out_of_spec, "
    "b.temperature_compliance_pct, b.deviations, b.open_deviations, b.open_critical_deviations "
    "from gold.fact_batch_production as b "
    "left join gold.dim_product as p on p.product_sk = b.product_sk "
    "left join gold.dim_facility as f on f.facility_sk = b.site_sk "
    "left join gold.dim_equipment as e on e.equipment_id = b.equipment_id "
    "where b.batch_id = ? limit 1"
)
BATCH_IDS_SQL = (
    "select batch_id from gold.fact_batch_production where true{where} "
    "order by started_at desc nulls last, batch_id limit ?"
)
BATCH_KNOWN_SQL = "select batch_id from gold.fact_batch_production where batch_id = ? limit 1"
SENSOR_SUMMARY_SQL = (
    "select sensor_id, sensor_type, equipment_id, unit, count(*) as readings, "
    "count(*) filter (where value < spec_min or value > spec_max) as out_of_spec, "
    "round(min(value), 3) as min_value, round(max(value), 3) as max_value, "
    "round(avg(value), 3) as avg_value, min(spec_min) as spec_min, max(spec_max) as spec_max, "
    "min(event_time) as first_at, max(event_time) as last_at "
    "from silver.manufacturing_sensor_reading where batch_id = ? "
    "group by sensor_id, sensor_type, equipment_id, unit "
    "order by sensor_type, sensor_id limit 200"
)
LAB_RESULTS_SQL = (
    "select test_id, test_name, outcome, round(result, 4) as result, unit, spec_min, spec_max, "
    "event_time as tested_at, analyst_id "
    "from silver.manufacturing_lab_result where batch_id = ? "
    "order by event_time, test_id, event_id limit 500"
)
BATCH_COLUMNS = (
    "select batch_id, lot_number, ndc, site_id, equipment_id, final_status, quality_flag, "
    "started_at, completed_at, yield_pct, lab_tests, lab_pass_rate, sensor_readings, "
    "sensor_out_of_spec, deviations, open_deviations "
    "from gold.fact_batch_production where true{where}"
)
# Finished = latest status COMPLETED or FAILED, by the day it finished: kpi_quality's definition
# of batch_pass_rate, per day and site.
PASS_RATE_SQL = (
    "select cast(completed_at as date) as day, site_id, "
    "count(*) as batches_finished, "
    "count(*) filter (where quality_flag = 'RELEASABLE') as released, "
    "count(*) filter (where quality_flag = 'REJECTED') as rejected, "
    "count(*) filter (where quality_flag = 'REVIEW') as review, "
    "round(count(*) filter (where quality_flag = 'RELEASABLE') / count(*), 4) "
    "as batch_pass_rate, "
    "coalesce(sum(lab_tests), 0) as lab_tests, "
    "coalesce(sum(lab_tests_passed), 0) as lab_tests_passed, "
    "round(sum(lab_tests_passed) / nullif(sum(lab_tests), 0), 4) as lab_pass_rate "
    "from gold.fact_batch_production "
    "where final_status in ('COMPLETED', 'FAILED') and completed_at is not null{where} "
    "group by all order by day, site_id limit 5000"
)
# A failure is a batch whose run FAILED, or a lab result FAIL (of any batch).
FAILURES_SQL = (
    "select * from ("
    "select b.completed_at as failed_at, b.batch_id, b.site_id, b.equipment_id, b.quality_flag, "
    "'BATCH_FAILED' as kind, cast(null as varchar) as test_id, "
    "cast(null as varchar) as test_name, cast(null as double) as result, "
    "cast(null as varchar) as unit, cast(null as double) as spec_min, "
    "cast(null as double) as spec_max "
    "from gold.fact_batch_production as b where b.final_status = 'FAILED' "
    "union all "
    "select l.event_time, l.batch_id, b.site_id, b.equipment_id, b.quality_flag, 'LAB_FAIL', "
    "l.test_id, l.test_name, round(l.result, 4), l.unit, l.spec_min, l.spec_max "
    "from silver.manufacturing_lab_result as l "
    "left join gold.fact_batch_production as b on b.batch_id = l.batch_id "
    "where l.outcome = 'FAIL'"
    ") as failures where true{where} "
    "order by failed_at desc nulls last, batch_id, test_id nulls first limit ?"
)
YIELD_SQL = (
    "select b.equipment_id, e.equipment_name, e.equipment_type, b.site_id, "
    "count(*) as batches, round(avg(b.yield_pct), 2) as avg_yield_pct, "
    "min(b.yield_pct) as min_yield_pct, max(b.yield_pct) as max_yield_pct, "
    "round(sum(b.actual_yield_kg), 1) as yield_kg "
    "from gold.fact_batch_production as b "
    "left join gold.dim_equipment as e on e.equipment_id = b.equipment_id "
    "where b.yield_pct is not null and not coalesce(b.yield_set_aside, false) "
    "and b.equipment_id is not null{where} "
    "group by all order by b.site_id, b.equipment_id limit 1000"
)
# kpi_quality's utilisation over a chosen period: the observed window (first batch start to the
# latest batch status event, over all batches) cut to the filters' dates; a run occupies its
# equipment from started_at to completed_at, or to the window's end while not completed.
UTILISATION_SQL = (
    "with observed as ("
    "select min(started_at) as observed_from, max(status_changed_at) as observed_to "
    "from gold.fact_batch_production), "
    "period as ("
    "select observed_to, greatest(observed_from, coalesce(cast(? as timestamp), observed_from)) "
    "as p0, least(observed_to, coalesce(cast(? as timestamp), observed_to)) as p1 "
    "from observed), "
    "runs as ("
    "select b.equipment_id, greatest(b.started_at, period.p0) as s, "
    "least(coalesce(b.completed_at, period.observed_to), period.p1) as e "
    "from gold.fact_batch_production as b cross join period "
    "where b.started_at is not null and b.equipment_id is not null), "
    "busy as ("
    "select equipment_id, count(*) filter (where e >= s) as batches, "
    "sum(case when e > s then (epoch(e) - epoch(s)) / 3600.0 else 0 end) as busy_hours "
    "from runs group by equipment_id), "
    "equipment as ("
    "select equipment_id, site_id, equipment_name, equipment_type from gold.dim_equipment "
    "union all "
    "select distinct equipment_id, site_id, cast(null as varchar), cast(null as varchar) "
    "from gold.fact_batch_production where equipment_id is not null "
    "and equipment_id not in (select equipment_id from gold.dim_equipment)) "
    "select eq.equipment_id, eq.site_id, eq.equipment_name, eq.equipment_type, "
    "coalesce(busy.batches, 0) as batches, "
    "round(coalesce(busy.busy_hours, 0), 2) as busy_hours, "
    "period.p0 as period_from, period.p1 as period_to, "
    "round(greatest((epoch(period.p1) - epoch(period.p0)) / 3600.0, 0), 2) as period_hours, "
    "round(coalesce(busy.busy_hours, 0) "
    "/ nullif((epoch(period.p1) - epoch(period.p0)) / 3600.0, 0), 4) as utilisation "
    "from equipment as eq left join busy on busy.equipment_id = eq.equipment_id "
    "cross join period where true{where} "
    "order by eq.site_id, eq.equipment_id limit 1000"
)
# Time buckets per sensor: the sensor's span cut into `points` equal slices; a slice holds the
# mean, min and max of its readings (a sensor with fewer readings gets one point per reading
# unless two fall in one slice). Bounded: at most `points` rows per sensor.
SENSOR_TREND_SQL = (
    "with readings as ("
    "select sensor_id, sensor_type, unit, event_time, value, spec_min, spec_max, "
    "epoch(event_time) as t, min(epoch(event_time)) over w as t0, "
    "max(epoch(event_time)) over w as t1 "
    "from silver.manufacturing_sensor_reading where batch_id = ?{where} "
    "window w as (partition by sensor_id)), "
    "bucketed as ("
    "select *, least(cast(? as integer) - 1, "
    "cast(floor((t - t0) / greatest(t1 - t0, 0.001) * cast(? as integer)) as integer)) "
    "as bucket from readings) "
    "select sensor_id, sensor_type, any_value(unit) as unit, bucket, "
    "min(event_time) as at, max(event_time) as until, count(*) as readings, "
    "round(avg(value), 3) as value, round(min(value), 3) as min_value, "
    "round(max(value), 3) as max_value, "
    "count(*) filter (where value < spec_min or value > spec_max) as out_of_spec, "
    "min(spec_min) as spec_min, max(spec_max) as spec_max "
    "from bucketed group by sensor_id, sensor_type, bucket "
    f"order by sensor_type, sensor_id, bucket limit {MAX_TREND_ROWS}"
)


def batch_detail(ctx: QueryContext, batch_id: str) -> dict[str, Any] | None:
    """A batch's record: its status and summary (gold.fact_batch_production with dim_product,
    dim_facility, dim_equipment), a summary per sensor (silver.manufacturing_sensor_reading),
    each lab result (silver.manufacturing_lab_result), its deviations (gold.fact_deviation with
    the silver deviation events' texts), and the speed layer's live sensor runs and lab
    failures for it. None when neither the warehouse nor the speed layer knows the batch."""
    with ctx.reading() as q:
        batch = q.one("batch", BATCH_SQL, [batch_id])
        if batch is not None:
            sensors = q.rows("batch_sensors", SENSOR_SUMMARY_SQL, [batch_id])
            labs = q.rows("batch_labs", LAB_RESULTS_SQL, [batch_id])
            devs = compliance.batch_deviations(q, batch_id)
        as_of = q.info.built_at
    live = _live_state(ctx, batch_id)
    if batch is None:
        if live is None or not (live["sensors"] or live["lab_failures"]):
            return None
        # Started after the last build: only the speed layer has seen it so far.
        return {
            "batch_id": batch_id,
            "in_warehouse": False,
            "status": None,
            "sensors": [],
            "lab_results": [],
            "deviations": [],
            "live": live,
            "as_of": as_of,
        }
    return {
        "batch_id": batch_id,
        "in_warehouse": True,
        "status": batch,
        "sensors": sensors,
        "lab_results": labs,
        "deviations": devs,
        "live": live,
        "as_of": as_of,
    }


def batch_known(ctx: QueryContext, batch_id: str) -> bool:
    """Whether the warehouse has the batch (gold.fact_batch_production)."""
    with ctx.reading() as q:
        return q.one("batch_known", BATCH_KNOWN_SQL, [batch_id]) is not None


def _live_state(ctx: QueryContext, batch_id: str) -> dict[str, Any] | None:
    """The speed layer's state of one batch (None when the speed layer has never run)."""
    snap = ctx.live()
    if snap is None:
        return None
    sensors = [
        {
            "sensor_id": s.sensor_id,
            "sensor_type": s.sensor_type,
            "equipment_id": s.equipment_id,
            "consecutive_out_of_spec": s.consecutive_out_of_spec,
            "last_value": s.last_value,
            "spec_min": s.spec_min,
            "spec_max": s.spec_max,
            "last_at": s.last_at,
        }
        for s in snap.sensors
        if s.batch_id == batch_id
    ]
    failures = [
        {"test_id": f.test_id, "test_name": f.test_name, "at": f.at}
        for f in snap.lab_failures
        if f.batch_id == batch_id
    ]
    sensors.sort(key=lambda s: (s["sensor_type"], s["sensor_id"]))
    failures.sort(key=lambda f: (f["at"], f["test_id"]))
    return {"clock": snap.clock, "sensors": sensors, "lab_failures": failures}


def batches(
    ctx: QueryContext, filters: Filters, page: Page, quality_flag: str | None = None
) -> dict[str, Any]:
    """Batches started in the filters' dates at the filters' site, optionally of one QA
    disposition, in batch_id order, a page at a time (gold.fact_batch_production)."""
    where, params = filters.where(time="started_at", site="site_id")
    if quality_flag is not None:
        where += " and quality_flag = ?"
        params.append(quality_flag)
    with ctx.reading() as q:
        return q.page(
            f"batches{where}",
            BATCH_COLUMNS.format(where=where),
            params,
            ["batch_id"],
            compliance.id_page(page),
        )


def pass_rate_trend(ctx: QueryContext, filters: Filters) -> list[dict[str, Any]]:
    """Per day finished and site: batches finished (latest status COMPLETED or FAILED),
    released (RELEASABLE), rejected and in review, the batch pass rate (released / finished, as
    gold.kpi_quality) and the lab pass rate of their results (gold.fact_batch_production)."""
    where, params = filters.where(time="completed_at", site="site_id")
    with ctx.reading() as q:
        return q.rows(f"pass_rate{where}", PASS_RATE_SQL.format(where=where), params)


def recent_failures(ctx: QueryContext, filters: Filters, limit: int = 50) -> list[dict[str, Any]]:
    """The newest failures, newest first: batches whose run FAILED (gold.fact_batch_production)
    and lab results FAIL (silver.manufacturing_lab_result), each with its batch's site,
    equipment and QA disposition and, for a lab failure, the value against its spec."""
    limit = max(1, min(int(limit), MAX_FAILURES))
    where, params = filters.where(time="failed_at", site="site_id")
    with ctx.reading() as q:
        rows = q.rows(f"failures{where}", FAILURES_SQL.format(where=where), [*params, limit])
    return [{**row, "detail": _failure_detail(row)} for row in rows]


def _failure_detail(row: dict[str, Any]) -> str:
    if row["kind"] == "BATCH_FAILED":
        return f"batch run failed on {row['equipment_id'] or 'unknown equipment'}"
    unit = f" {row['unit']}" if row["unit"] else ""
    return (
        f"{row['test_name']}: {row['result']}{unit} "
        f"(spec {_limit(row['spec_min'])} to {_limit(row['spec_max'])})"
    )


def _limit(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def yield_by_equipment(ctx: QueryContext, filters: Filters) -> list[dict[str, Any]]:
    """Per piece of equipment: batches completed in the period with a yield (implausible yields
    set aside excluded, as gold.kpi_quality), their mean / min / max yield % and kg made
    (gold.fact_batch_production, gold.dim_equipment)."""
    where, params = filters.where(time="b.completed_at", site="b.site_id")
    with ctx.reading() as q:
        return q.rows(f"yield{where}", YIELD_SQL.format(where=where), params)


def equipment_utilisation(ctx: QueryContext, filters: Filters) -> list[dict[str, Any]]:
    """Per piece of equipment: batches running in the period, the hours they ran in it, the
    period's hours and the share busy (gold.fact_batch_production, gold.dim_equipment). The
    period is the filters' dates cut to what the warehouse observed (first batch start to
    the latest status event): without filters the hours are gold.kpi_quality's."""
    start, end = filters.time_range()
    where, params = filters.where(site="eq.site_id")
    args = [
        None if start is None else start.replace(tzinfo=None),
        None if end is None else end.replace(tzinfo=None),
        *params,
    ]
    with ctx.reading() as q:
        return q.rows(f"utilisation{where}", UTILISATION_SQL.format(where=where), args)


def sensor_trend(
    ctx: QueryContext, batch_id: str, sensor_type: str | None = None
) -> list[dict[str, Any]]:
    """A batch's sensor readings over time, per sensor, with the spec band (spec_min /
    spec_max) of each point (silver.manufacturing_sensor_reading). Downsampled in time buckets
    to at most SENSOR_TREND_POINTS points per sensor: each point is a bucket's mean, with its
    min, max, reading count and out-of-spec count. Empty for an unknown batch."""
    where, params = "", [batch_id]
    if sensor_type is not None:
        where = " and sensor_type = ?"
        params.append(sensor_type)
    params += [SENSOR_TREND_POINTS, SENSOR_TREND_POINTS]
    with ctx.reading() as q:
        return q.rows(f"sensor_trend{where}", SENSOR_TREND_SQL.format(where=where), params)


def batch_ids(ctx: QueryContext, filters: Filters, limit: int = 500) -> list[str]:
    """Batch ids the filters select, newest start first, for a page's batch picker
    (gold.fact_batch_production)."""
    where, params = filters.where(time="started_at", site="site_id")
    limit = max(1, min(int(limit), 500))
    sql = BATCH_IDS_SQL.format(where=where)
    with ctx.reading() as q:
        return [r["batch_id"] for r in q.rows(f"batch_ids{where}", sql, [*params, limit])]
