"""Logistics and cold chain: one shipment's timeline, delivery performance, excursions.

History is gold (gold.fact_shipment: one row per shipment leg, with its delivery, on-time
verdict and logger summary) and silver (each scan, exception, delivery and logger reading,
deduplicated); the present is the speed layer's keyed cold-chain state (realtime
`ShipmentState`: minutes out of range, in excursion now), which also knows shipments created
after the last build. A timeline shows both.

Temperature series are bounded in SQL: a logger reading every few minutes makes hundreds of
points per shipment, so readings are folded into at most `MAX_POINTS` equal-count buckets,
each keeping its min and max, so a short excursion still shows on the chart.

Filters on shipments: dates on the shipment's time (delivered_at for delivery performance,
created_at for excursions), carrier on carrier_id, site on the origin (shipments leaving the
plant), pharmacy on either end (shipments to the pharmacy and from it to patients).
"""

from __future__ import annotations

from typing import Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.snapshot import ShipmentState
from pharmaflow.serve.query.base import Filters, Page, QueryContext, SnapshotQuery

# At most this many points per temperature series (each a bucket of readings).
MAX_POINTS = 240
# Bounds of the lists of one shipment (a shipment has a handful of scans and exceptions).
MAX_EVENTS = 500

PERIODS = ("day", "week", "month")
GROUPS = {"carrier": "carrier_id", "service_level": "service_level"}

SHIPMENT_SQL = (
    "select s.shipment_id, s.has_created_event, s.origin_facility_id, s.origin_facility_type, "
    "s.destination_facility_id, s.destination_type, s.order_id, s.carrier_id, "
    "c.carrier_name, s.service_level, s.cold_chain, s.n_lots, s.created_at, s.picked_up_at, "
    "s.promised_delivery_time, s.delivered_at, s.last_delivered_at, s.transit_hours, "
    "s.on_time, s.current_status, s.status_changed_at, s.scans, s.exceptions, "
    "s.temperature_readings, s.temperature_out_of_spec, s.min_celsius, s.max_celsius, "
    "s.excursion_minutes, s.time_in_spec_pct "
    "from gold.fact_shipment s "
    "left join gold.dim_carrier c on c.carrier_id = s.carrier_id and c.is_current "
    "where s.shipment_id = ?"
)
SCANS_SQL = (
    'select event_time as "at", status, facility_id, event_id '
    "from silver.logistics_shipment_scanned where shipment_id = ? "
    f"order by event_time, event_id limit {MAX_EVENTS}"
)
EXCEPTIONS_SQL = (
    'select event_time as "at", exception_code, detail, event_id '
    "from silver.logistics_shipment_exception where shipment_id = ? "
    f"order by event_time, event_id limit {MAX_EVENTS}"
)
DELIVERIES_SQL = (
    'select event_time as "at", event_id '
    "from silver.logistics_shipment_delivered where shipment_id = ? "
    f"order by event_time, event_id limit {MAX_EVENTS}"
)
# Readings in time order folded into at most ? equal-count buckets (ntile: one reading each
# when there are fewer): the bucket's first and last time, mean, min and max, and how many
# were out of spec.
TEMPERATURE_SQL = """
with r as (
    select event_time, celsius, spec_min, spec_max,
           ntile(?) over (order by event_time, event_id) as bucket
    from silver.logistics_temperature_reading where shipment_id = ?
)
select min(event_time) as "at", max(event_time) as until,
       round(avg(celsius), 2) as celsius, min(celsius) as min_celsius,
       max(celsius) as max_celsius, count(*) as readings,
       count(*) filter (where celsius < spec_min or celsius > spec_max) as out_of_spec,
       min(spec_min) as spec_min, max(spec_max) as spec_max
from r group by bucket order by "at"
"""
PERFORMANCE_SQL = """
select cast(date_trunc(?, s.delivered_at) as date) as period{select}, count(*) as shipments,
       count(*) filter (where s.on_time) as on_time,
       count(*) filter (where not s.on_time) as late,
       count(s.on_time) as with_promise,
       round(100.0 * count(*) filter (where s.on_time) / nullif(count(s.on_time), 0), 2)
           as on_time_pct,
       round(avg(s.transit_hours), 2) as avg_transit_hours,
       count(*) filter (where s.exceptions > 0) as with_exception
from gold.fact_shipment s{join}
where s.delivered_at is not null{where}
group by all order by all limit 5000
"""
CARRIER_JOIN = " left join gold.dim_carrier c on c.carrier_id = s.carrier_id and c.is_current"
EXCURSIONS_SQL = (
    "select s.shipment_id, s.carrier_id, s.service_level, s.cold_chain, "
    "s.origin_facility_id, s.destination_facility_id, s.destination_type, s.created_at, "
    "s.delivered_at, s.current_status, s.excursion_minutes, s.temperature_readings, "
    "s.temperature_out_of_spec, s.min_celsius, s.max_celsius, s.time_in_spec_pct, "
    "s.exceptions_temp_excursion, cast(-s.excursion_minutes as double) as sort_minutes "
    "from gold.fact_shipment s where s.excursion_minutes > 0{where}"
)


def _shipment_filters(filters: Filters, time: str) -> tuple[str, list[Any]]:
    """Conditions on `gold.fact_shipment s` (see the module docstring)."""
    where, params = filters.where(time=time, carrier="s.carrier_id", site="s.origin_facility_id")
    if filters.pharmacy_id is not None:
        where += " and ? in (s.origin_facility_id, s.destination_facility_id)"
        params.append(filters.pharmacy_id)
    return where, params


def shipment_timeline(ctx: QueryContext, shipment_id: str) -> dict[str, Any] | None:
    """The shipment's facts (gold.fact_shipment, dim_carrier), its scans, exceptions and
    deliveries in time order (silver.logistics_shipment_scanned / _exception / _delivered),
    its logger readings, bounded (silver.logistics_temperature_reading), and its live
    cold-chain state (speed layer). None when neither layer knows the shipment."""
    with ctx.reading() as q:
        shipment = q.one("logistics.shipment", SHIPMENT_SQL, [shipment_id])
        if shipment is not None:
            scans = q.rows("logistics.scans", SCANS_SQL, [shipment_id])
            exceptions = q.rows("logistics.exceptions", EXCEPTIONS_SQL, [shipment_id])
            deliveries = q.rows("logistics.deliveries", DELIVERIES_SQL, [shipment_id])
            temperatures = _temperatures(q, shipment_id, MAX_POINTS)
        else:
            scans, exceptions, deliveries, temperatures = [], [], [], _temperatures(None, "", 0)
        as_of = q.info.built_at
    live = live_shipment(ctx, shipment_id)
    if shipment is None and live is None:
        return None
    return {
        "shipment_id": shipment_id,
        "shipment": shipment,
        "scans": scans,
        "exceptions": exceptions,
        "deliveries": deliveries,
        "temperatures": temperatures,
        "live": live,
        "as_of": as_of,
    }


def temperature_trace(
    ctx: QueryContext, shipment_id: str, max_points: int = MAX_POINTS
) -> dict[str, Any] | None:
    """A shipment's logger readings for a chart against its spec band (at most `max_points`
    buckets; silver.logistics_temperature_reading), with the logger summary of
    gold.fact_shipment. None for a shipment the warehouse does not know."""
    with ctx.reading() as q:
        shipment = q.one("logistics.shipment", SHIPMENT_SQL, [shipment_id])
        if shipment is None:
            return None
        out = _temperatures(q, shipment_id, max_points)
    out.update(
        shipment_id=shipment_id,
        cold_chain=shipment["cold_chain"],
        carrier_id=shipment["carrier_id"],
        excursion_minutes=shipment["excursion_minutes"],
        time_in_spec_pct=shipment["time_in_spec_pct"],
    )
    return out


def _temperatures(q: SnapshotQuery | None, shipment_id: str, max_points: int) -> dict[str, Any]:
    """Readings as at most `max_points` buckets, and the spec band they were read against."""
    if q is None:
        rows: list[dict[str, Any]] = []
    else:
        points = max(1, min(int(max_points), MAX_POINTS))
        rows = q.rows("logistics.temperatures", TEMPERATURE_SQL, [points, shipment_id])
    total = sum(r["readings"] for r in rows)
    lows = [r["spec_min"] for r in rows if r["spec_min"] is not None]
    highs = [r["spec_max"] for r in rows if r["spec_max"] is not None]
    return {
        "readings": total,
        "downsampled": len(rows) < total,
        "spec_min": min(lows) if lows else None,
        "spec_max": max(highs) if highs else None,
        "points": [
            {k: r[k] for k in ("at", "until", "celsius", "min_celsius", "max_celsius")}
            | {"readings": r["readings"], "out_of_spec": r["out_of_spec"]}
            for r in rows
        ],
    }


def live_shipment(ctx: QueryContext, shipment_id: str) -> dict[str, Any] | None:
    """The speed layer's cold-chain state of one shipment (None: not tracked, or not running)."""
    snapshot = ctx.live()
    if snapshot is None:
        return None
    for state in snapshot.shipments:
        if state.shipment_id == shipment_id:
            return _live(state)
    return None


def _live(state: ShipmentState) -> dict[str, Any]:
    return {
        "carrier_id": state.carrier_id or None,
        "cold_chain": state.cold_chain,
        "minutes_out_of_range": round(state.minutes_out_of_range, 2),
        "in_excursion": state.in_excursion,
        "last_celsius": state.last_celsius,
        "spec_min": state.spec_min,
        "spec_max": state.spec_max,
        "last_reading_at": state.last_reading_at,
        "delivered": state.delivered,
    }


def live_excursions(ctx: QueryContext, filters: Filters, limit: int = 100) -> dict[str, Any]:
    """Cold-chain shipments the speed layer saw out of range (the present: those in excursion
    now first, then by minutes out of range), of one carrier when filtered."""
    snapshot = ctx.live()
    if snapshot is None:
        return {"running": False, "clock": None, "items": []}
    states = [
        s
        for s in snapshot.shipments
        if s.minutes_out_of_range > 0 or s.in_excursion
        if filters.carrier_id is None or s.carrier_id == filters.carrier_id
    ]
    states.sort(key=lambda s: (not s.in_excursion, -s.minutes_out_of_range, s.shipment_id))
    items = [{"shipment_id": s.shipment_id, **_live(s)} for s in states[: max(1, limit)]]
    return {"running": True, "clock": snapshot.clock, "items": items}


def delivery_performance(
    ctx: QueryContext,
    filters: Filters,
    group_by: tuple[str, ...] = ("carrier", "service_level"),
    period: str = "week",
) -> dict[str, Any]:
    """On-time rate (deliveries at or before the promise, of those with a promise), delivered
    shipments, late ones, mean transit hours and exceptions per period of delivered_at and
    per carrier and/or service level (gold.fact_shipment, dim_carrier for names)."""
    if period not in PERIODS:
        raise PharmaflowError(f"period: {period!r} is not one of {', '.join(PERIODS)}")
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise PharmaflowError(f"group_by: {unknown[0]!r} is not one of {', '.join(GROUPS)}")
    groups = [g for g in GROUPS if g in group_by]  # a fixed column order
    select = "".join(f", s.{GROUPS[g]}" for g in groups)
    join = ""
    if "carrier" in groups:
        select += ", c.carrier_name"
        join = CARRIER_JOIN
    where, params = _shipment_filters(filters, "s.delivered_at")
    sql = PERFORMANCE_SQL.format(select=select, join=join, where=where)
    with ctx.reading() as q:
        rows = q.rows(f"logistics.performance:{','.join(groups)}:{where}", sql, [period, *params])
        as_of = q.info.built_at
    return {"period": period, "group_by": groups, "items": rows, "as_of": as_of}


def excursions(ctx: QueryContext, filters: Filters, page: Page) -> dict[str, Any]:
    """Shipments whose logger was out of spec for some time (gold.fact_shipment
    excursion_minutes > 0: minutes out of range, carrier, cold chain, logger summary), created
    in the filters' dates, longest excursion first; keyset pages on (minutes, shipment_id)."""
    where, params = _shipment_filters(filters, "s.created_at")
    with ctx.reading() as q:
        found = q.page(
            f"logistics.excursions:{where}",
            EXCURSIONS_SQL.format(where=where),
            params,
            ("sort_minutes", "shipment_id"),
            page,
        )
        as_of = q.info.built_at
    items = [{k: v for k, v in row.items() if k != "sort_minutes"} for row in found["items"]]
    return {"items": items, "next_cursor": found["next_cursor"], "as_of": as_of}


def carriers(ctx: QueryContext) -> list[dict[str, Any]]:
    """The current version of each carrier (gold.dim_carrier), for filter lists."""
    with ctx.reading() as q:
        return q.rows(
            "logistics.carriers",
            "select carrier_id, carrier_name, carrier_type, cold_chain_capable "
            "from gold.dim_carrier where is_current order by carrier_id limit 1000",
        )
