"""KPI time series as one picture of past and present: gold up to its watermark, live after.

A KPI series is counted from the batch layer (silver's deduplicated events in the published
snapshot) for the periods the last build covers, and from the speed layer's tumbling windows
after that, every point tagged with its `source`. Each metric is defined the same way in both
layers (the speed layer's KPI and label beside the silver table and condition below), so the
two halves are the same count and can be laid end to end.

The seam is one instant, the **watermark** W: the start of the interval holding the newest
event time in the snapshot's silver events (of the tables the metrics read). A bucket starting
before W is counted from gold only; a bucket starting at or after W from the speed layer only.
Every bucket has exactly one source, so nothing is counted twice; the speed layer counts every
event after W (it reads the same topics and keeps windows for `realtime_retention_s`), so
nothing falls in between. Buckets without events are zeros, not holes, up to the live clock.

What the seam does not promise: an event that arrives after the build with an event time
before W is in neither half until the next build (the speed layer has it, but W's left side
is gold's); an event the batch layer sets aside (silver._rejected) is counted live but not in
gold. Both are visible: the response carries the watermark and the live clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.snapshot import WindowValue
from pharmaflow.serve.query.base import Filters, QueryContext, SnapshotQuery
from pharmaflow.serve.snapshots import NotBuilt


@dataclass(frozen=True)
class Metric:
    """One countable KPI: silver `table` rows where `condition` (batch layer), and the speed
    layer's `kpi` windows with `label` (None: any label). `by`: which filter applies and how
    (`pharmacy` direct column, `pharmacy_of_order` through the order's pharmacy, `carrier`,
    `carrier_of_shipment`, `site_of_batch`), matching the speed layer's window entity."""

    table: str
    kpi: str
    label: str | None = None
    condition: str = ""
    by: str | None = None
    description: str = ""


METRICS: dict[str, Metric] = {
    "orders_placed": Metric(
        "silver.pharmacy_order_placed", "order_stage_entered", "placed", by="pharmacy",
        description="Order placed events.",
    ),
    "orders_insurance_validated": Metric(
        "silver.pharmacy_order_insurance_validated", "order_stage_entered",
        "insurance_validated", by="pharmacy_of_order",
        description="Insurance validation events (every answer).",
    ),
    "orders_filled": Metric(
        "silver.pharmacy_order_filled", "order_stage_entered", "filled", by="pharmacy_of_order",
        description="Order fill events.",
    ),
    "orders_shipped": Metric(
        "silver.pharmacy_order_shipped", "order_stage_entered", "shipped",
        by="pharmacy_of_order", description="Order shipped events.",
    ),
    "orders_delivered": Metric(
        "silver.pharmacy_order_delivered", "order_stage_entered", "delivered",
        by="pharmacy_of_order", description="Order delivered events.",
    ),
    "orders_cancelled": Metric(
        "silver.pharmacy_order_cancelled", "order_stage_entered", "cancelled",
        by="pharmacy_of_order", description="Order cancelled events.",
    ),
    "insurance_approved": Metric(
        "silver.pharmacy_order_insurance_validated", "insurance_decisions", "APPROVED",
        "status = 'APPROVED'", "pharmacy_of_order", "Insurance answers APPROVED.",
    ),
    "insurance_rejected": Metric(
        "silver.pharmacy_order_insurance_validated", "insurance_decisions", "REJECTED",
        "status = 'REJECTED'", "pharmacy_of_order", "Insurance answers REJECTED.",
    ),
    "insurance_prior_auth": Metric(
        "silver.pharmacy_order_insurance_validated", "insurance_decisions",
        "PRIOR_AUTH_REQUIRED", "status = 'PRIOR_AUTH_REQUIRED'", "pharmacy_of_order",
        "Insurance answers PRIOR_AUTH_REQUIRED.",
    ),
    "shipments_created": Metric(
        "silver.logistics_shipment_created", "shipments_created", by="carrier",
        description="Shipments created (every leg).",
    ),
    "shipment_exceptions": Metric(
        "silver.logistics_shipment_exception", "shipment_exceptions", by="carrier_of_shipment",
        description="Carrier exceptions (all codes).",
    ),
    "lab_results": Metric(
        "silver.manufacturing_lab_result", "lab_results", description="Lab results."
    ),
    "lab_failures": Metric(
        "silver.manufacturing_lab_result", "lab_results", "FAIL", "outcome = 'FAIL'",
        description="Lab results with outcome FAIL.",
    ),
}  # fmt: skip

INTERVALS = {"5m": 300, "hour": 3600, "day": 86_400}
_TABLES = sorted({m.table for m in METRICS.values()})
WATERMARK_SQL = (
    "select max(t) as watermark from ("
    + " union all ".join(f"select max(event_time) as t from {table}" for table in _TABLES)
    + ")"
)
# How each filter reaches a metric's rows (the speed layer's window entity is the same id).
_FILTER_JOIN = {
    "pharmacy_of_order": (
        " join gold.fact_order_lifecycle o using (order_id)",
        "o.pharmacy_id",
        "pharmacy",
    ),
    "carrier_of_shipment": (
        " join gold.fact_shipment s using (shipment_id)",
        "s.carrier_id",
        "carrier",
    ),
    "pharmacy": ("", "e.pharmacy_id", "pharmacy"),
    "carrier": ("", "e.carrier_id", "carrier"),
}


def watermark(q: SnapshotQuery) -> datetime | None:
    """The newest event time among the silver events the metrics count (None: no events)."""
    row = q.one("kpi_watermark", WATERMARK_SQL)
    return None if row is None else row["watermark"]


def floor_to(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def series(ctx: QueryContext, metric: str, interval: str, filters: Filters) -> dict[str, Any]:
    """One metric's buckets from gold before the watermark and live after it (module doc).
    Returns {metric, interval, watermark, live_clock, points: [{start, value, source, final}]}
    with `source` 'gold' or 'live' (`final`: the live window can no longer change)."""
    with _gold_or_nothing(ctx) as q:
        return _series(ctx, q, metric, interval, filters)


@contextmanager
def _gold_or_nothing(ctx: QueryContext) -> Iterator[SnapshotQuery | None]:
    """The pinned snapshot, or None before the first build (every point is then live)."""
    stack = ExitStack()
    try:
        q: SnapshotQuery | None = stack.enter_context(ctx.reading())
    except NotBuilt:
        q = None
    with stack:
        yield q


Windows = Callable[[str, int, datetime | None], list[WindowValue]]


def _series(
    ctx: QueryContext,
    q: SnapshotQuery | None,
    metric: str,
    interval: str,
    filters: Filters,
    windows: Windows | None = None,
) -> dict[str, Any]:
    m = METRICS.get(metric)
    seconds = INTERVALS.get(interval)
    if m is None or seconds is None:  # the API validates both; this guards other callers
        raise PharmaflowError(f"unknown metric {metric!r} or interval {interval!r}")
    newest = None if q is None else watermark(q)
    seam = None if newest is None else floor_to(newest, seconds)
    gold = {} if q is None else _gold_counts(q, metric, m, seconds, seam, filters)
    snapshot_id = None if q is None else q.info.id
    live, live_final, clock = _live_counts(
        ctx, windows or ctx.live_windows, m, seconds, seam, filters
    )
    return {
        "metric": metric,
        "interval": interval,
        "snapshot": snapshot_id,
        "watermark": seam,
        "newest_gold_event": newest,
        "live_clock": clock,
        "points": _points(gold, live, live_final, seconds, seam, clock, filters),
    }


def _gold_counts(
    q: SnapshotQuery,
    name: str,
    m: Metric,
    seconds: int,
    seam: datetime | None,
    filters: Filters,
) -> dict[datetime, float]:
    if seam is None:
        return {}
    join, column, kind = _FILTER_JOIN.get(m.by or "", ("", None, None))
    value = filters.pharmacy_id if kind == "pharmacy" else filters.carrier_id
    where, params = filters.where(time="e.event_time")
    conditions = [f"e.event_time < ?{where}"]
    args: list[Any] = [seam.replace(tzinfo=None), *params]
    if m.condition:
        conditions.append(f"e.{m.condition}")
    if column is not None and value is not None:
        conditions.append(f"{column} = ?")
        args.append(value)
    sql = (
        f"select time_bucket(interval '{seconds} seconds', e.event_time) as bucket, "
        f"count(*) as n from {m.table} e{join} where {' and '.join(conditions)} group by 1"
    )
    return {r["bucket"]: float(r["n"]) for r in q.rows(f"kpi_gold:{name}", sql, args)}


def _live_counts(
    ctx: QueryContext,
    windows: Windows,
    m: Metric,
    seconds: int,
    seam: datetime | None,
    filters: Filters,
) -> tuple[dict[datetime, float], dict[datetime, bool], datetime | None]:
    """Live buckets at or after the seam, from the widest window width that divides the
    interval; per bucket, whether every window in it is final."""
    clock = ctx.live_clock()
    if clock is None:
        return {}, {}, None
    widths = [w for w in ctx.realtime_config.windows_s if seconds % w == 0]
    if not widths:
        raise PharmaflowError(
            f"the speed layer keeps no window width dividing {seconds} s "
            f"(PHARMAFLOW_REALTIME_WINDOWS={list(ctx.realtime_config.windows_s)})"
        )
    _join, _column, kind = _FILTER_JOIN.get(m.by or "", ("", None, None))
    entity = filters.pharmacy_id if kind == "pharmacy" else filters.carrier_id
    start, end = filters.time_range()
    since = seam if start is None or (seam is not None and seam > start) else start
    counts: dict[datetime, float] = defaultdict(float)
    final: dict[datetime, bool] = {}
    for w in windows(m.kpi, max(widths), since):
        if m.label is not None and w.label != m.label:
            continue
        if kind is not None and entity is not None and w.entity != entity:
            continue
        if end is not None and w.start >= end:
            continue
        bucket = floor_to(w.start, seconds)
        counts[bucket] += w.value
        final[bucket] = final.get(bucket, True) and w.final
    return dict(counts), final, clock


def _points(
    gold: dict[datetime, float],
    live: dict[datetime, float],
    live_final: dict[datetime, bool],
    seconds: int,
    seam: datetime | None,
    clock: datetime | None,
    filters: Filters,
) -> list[dict[str, Any]]:
    """Every bucket from the first counted one to the last (the live clock's when the speed
    layer runs), zeros included; before the seam from gold, from it on live."""
    starts = [*gold, *live]
    if clock is not None:
        starts.append(floor_to(clock, seconds))
    if seam is not None and clock is not None:
        starts.append(seam)
    if not starts:
        return []
    first, last = min(starts), max(starts)
    start, end = filters.time_range()
    if start is not None:
        first = max(first, floor_to(start, seconds))
    if end is not None:
        last = min(last, floor_to(end - timedelta(microseconds=1), seconds))
    points = []
    step = timedelta(seconds=seconds)
    at = first
    while at <= last:
        if seam is not None and at < seam:
            points.append(
                {"start": at, "value": gold.get(at, 0.0), "source": "gold", "final": True}
            )
        else:
            points.append(
                {
                    "start": at,
                    "value": live.get(at, 0.0),
                    "source": "live",
                    "final": live_final.get(at, False),
                }
            )
        at += step
    return points


def daily(ctx: QueryContext, filters: Filters) -> dict[str, Any]:
    """The order and shipping KPIs per UTC day, each day from one source (see `series`):
    placed, delivered, cancelled, insurance answers and the rejection rate, shipments and
    exceptions."""
    names = (
        "orders_placed",
        "orders_delivered",
        "orders_cancelled",
        "insurance_approved",
        "insurance_rejected",
        "insurance_prior_auth",
        "shipments_created",
        "shipment_exceptions",
    )
    by_day: dict[datetime, dict[str, Any]] = {}
    head: dict[str, Any] = {}
    fetched: dict[tuple[str, int, datetime | None], list[WindowValue]] = {}

    def windows(kpi: str, width: int, since: datetime | None) -> list[WindowValue]:
        """Each KPI's windows read once for all the metrics counted from it."""
        key = (kpi, width, since)
        if key not in fetched:
            fetched[key] = ctx.live_windows(kpi, width, since)
        return fetched[key]

    with _gold_or_nothing(ctx) as q:  # one snapshot for every metric of the answer
        for name in names:
            s = _series(ctx, q, name, "day", filters, windows)
            keys = ("snapshot", "watermark", "newest_gold_event", "live_clock")
            head = {k: s[k] for k in keys}
            for p in s["points"]:
                row = by_day.setdefault(
                    p["start"], {"day": p["start"].date(), "source": p["source"]}
                )
                row[name] = p["value"]
    rows = [by_day[d] for d in sorted(by_day)]
    for row in rows:
        answers = sum(row.get(k, 0.0) for k in names if k.startswith("insurance_"))
        rejected = row.get("insurance_rejected", 0.0)
        row["rejection_rate"] = round(rejected / answers, 4) if answers else None
    return {**head, "days": rows}


def realtime(ctx: QueryContext, width_s: int | None, last: int, filters: Filters) -> dict[str, Any]:
    """The speed layer now: per KPI, the totals of its `last` most recent windows of `width_s`
    (default: the narrowest width kept), each tagged final or open; plus the stream clock and
    the late-event counts. Filters by pharmacy or carrier apply to the KPIs keyed by them."""
    live = ctx.live()
    config = ctx.realtime_config
    width = width_s or min(config.windows_s)
    if width not in config.windows_s:
        raise PharmaflowError(
            f"the speed layer keeps windows of {list(config.windows_s)} s, not {width} s"
        )
    if live is None or live.clock is None:
        return {"running": live is not None, "clock": None, "width_s": width, "kpis": []}
    since = floor_to(live.clock, width) - timedelta(seconds=width * (last - 1))
    totals: dict[tuple[str, datetime], list[Any]] = {}
    by_entity = {"order_stage_entered", "insurance_decisions"}
    by_carrier = {"shipments_created", "shipment_exceptions"}
    for kpi in sorted({m.kpi for m in METRICS.values()} | {"events"}):
        for w in ctx.live_windows(kpi, width, since):
            if kpi in by_entity and filters.pharmacy_id not in (None, w.entity):
                continue
            if kpi in by_carrier and filters.carrier_id not in (None, w.entity):
                continue
            entry = totals.setdefault((kpi, w.start), [0.0, True])
            entry[0] += w.value
            entry[1] = entry[1] and w.final
    kpis = [
        {"kpi": kpi, "start": start, "value": value, "final": final}
        for (kpi, start), (value, final) in sorted(totals.items())
    ]
    late = [{"event_type": c.event_type, "late": c.count} for c in live.late]
    return {"running": True, "clock": live.clock, "width_s": width, "kpis": kpis, "late": late}
