"""Facilities (plants, distribution centres, pharmacies), the data's span and freshness.

What every page and many routes need around their own answers: the lists the filters offer,
the dates the warehouse covers, and how fresh the warehouse and the speed layer are (each
dashboard page and `/v1/facilities/{id}/metrics` say so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pharmaflow.serve.query.base import Filters, QueryContext

FACILITIES_SQL = (
    "select facility_id, facility_type, facility_name, region, state, timezone "
    "from gold.dim_facility where is_current and (? is null or facility_type = ?) "
    "order by facility_type, facility_id"
)
# The span of the events behind gold: orders, batches and shipments (the facts' own times).
SPAN_SQL = (
    "select min(t) as first, max(t) as last from ("
    "select placed_at as t from gold.fact_order_lifecycle "
    "union all select created_at from gold.fact_shipment "
    "union all select started_at from gold.fact_batch_production)"
)
FACILITY_SQL = (
    "select facility_id, facility_type, facility_name, region, state, timezone "
    "from gold.dim_facility where is_current and facility_id = ?"
)
PHARMACY_METRICS_SQL = (
    "select count(*) as orders_placed, "
    "count(delivered_at) as orders_delivered, "
    "count(cancelled_at) as orders_cancelled, "
    "round(avg(hours_to_deliver), 2) as avg_hours_to_deliver, "
    "round(100.0 * count(*) filter (where insurance_status = 'REJECTED') "
    "/ nullif(count(*), 0), 2) as rejection_rate_pct "
    "from gold.fact_order_lifecycle where pharmacy_id = ?{where}"
)
PLANT_METRICS_SQL = (
    "select count(*) as batches, "
    "count(*) filter (where quality_flag = 'RELEASABLE') as batches_releasable, "
    "count(*) filter (where quality_flag = 'REJECTED') as batches_rejected, "
    "round(avg(yield_pct), 2) as avg_yield_pct, "
    "round(avg(lab_pass_rate), 4) as lab_pass_rate, "
    "coalesce(sum(open_deviations), 0) as open_deviations "
    "from gold.fact_batch_production where site_id = ?{where}"
)
SHIPPING_METRICS_SQL = (
    "select count(*) as shipments_sent, "
    "count(delivered_at) as shipments_delivered, "
    "round(100.0 * count(*) filter (where on_time) / nullif(count(delivered_at), 0), 2) "
    "as on_time_pct "
    "from gold.fact_shipment where origin_facility_id = ?{where}"
)


def facilities(ctx: QueryContext, facility_type: str | None = None) -> list[dict[str, Any]]:
    """Current version of each facility (gold.dim_facility), optionally of one type."""
    with ctx.reading() as q:
        return q.rows("facilities", FACILITIES_SQL, [facility_type, facility_type])


def facility_metrics(ctx: QueryContext, facility_id: str, filters: Filters) -> dict | None:
    """A facility's metrics over the filters' dates: a pharmacy's orders (fact_order_lifecycle),
    a plant's batches (fact_batch_production), and what any facility shipped (fact_shipment).
    None for an unknown facility."""
    with ctx.reading() as q:
        facility = q.one("facility", FACILITY_SQL, [facility_id])
        if facility is None:
            return None
        out: dict[str, Any] = {"facility": facility}
        kind = facility["facility_type"]
        if kind == "PHARMACY":
            where, params = filters.where(time="placed_at")
            out["orders"] = q.one(
                "pharmacy_metrics", PHARMACY_METRICS_SQL.format(where=where), [facility_id, *params]
            )
        if kind == "PLANT":
            where, params = filters.where(time="started_at")
            out["batches"] = q.one(
                "plant_metrics", PLANT_METRICS_SQL.format(where=where), [facility_id, *params]
            )
        where, params = filters.where(time="created_at", carrier="carrier_id")
        out["shipping"] = q.one(
            "shipping_metrics", SHIPPING_METRICS_SQL.format(where=where), [facility_id, *params]
        )
        out["as_of"] = q.info.built_at
        return out


def freshness(ctx: QueryContext) -> dict[str, Any]:
    """How fresh the answers are: when the served build ended, the newest event time behind
    gold, and the speed layer's stream clock (None where a part has not run)."""
    out: dict[str, Any] = {"built_at": None, "gold_first": None, "gold_last": None, "live": None}
    with ctx.reading() as q:
        span = q.one("span", SPAN_SQL) or {}
        out.update(built_at=q.info.built_at, snapshot=q.info.id)
        out["gold_first"], out["gold_last"] = span.get("first"), span.get("last")
    live = ctx.live()
    if live is not None:
        out["live"] = live.clock
    out["checked_at"] = datetime.now(UTC)
    return out
