"""Orders: where one order is (its timeline), which are stuck, and the live board's counts.

History is gold and silver (every event of the order, deduplicated, in event-time order);
the present is the speed layer's keyed state (the stage an order is in now and for how long),
which knows orders placed after the last build. An order's timeline shows both: the events
the warehouse holds and, when the speed layer tracks the order, its live stage.

Pseudonymous only: an order carries its `patient_key` (an HMAC token), never an identifier.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pharmaflow.realtime.reader import stuck_orders, waiting_by_stage
from pharmaflow.realtime.snapshot import OrderWaiting, Snapshot
from pharmaflow.serve.query.base import MAX_LIMIT, Filters, Page, QueryContext, encode_cursor

ORDER_SQL = (
    "select order_id, patient_key, pharmacy_id, payer_id, ndc, quantity, days_supply, "
    "priority, current_status, status_changed_at, placed_at, insurance_status, "
    "insurance_validations, prior_auth_required, filled_at, lot_number, shipped_at, "
    "shipment_id, carrier_id, delivered_at, cancelled_at, cancel_reason, hours_to_deliver "
    "from gold.fact_order_lifecycle where order_id = ?"
)
# Every event of the order, one row each: the stage and what that event says.
EVENTS_SQL = """
select event_time, 'placed' as stage, event_id, null as status, null as reject_code,
       null as lot_number, null as shipment_id, null as carrier_id, null as reason
from silver.pharmacy_order_placed where order_id = ?
union all
select event_time, 'insurance_validated', event_id, status, reject_code, null, null, null, null
from silver.pharmacy_order_insurance_validated where order_id = ?
union all
select event_time, 'filled', event_id, null, null, lot_number, null, null, null
from silver.pharmacy_order_filled where order_id = ?
union all
select event_time, 'shipped', event_id, null, null, null, shipment_id, carrier_id, null
from silver.pharmacy_order_shipped where order_id = ?
union all
select event_time, 'delivered', event_id, null, null, null, null, null, null
from silver.pharmacy_order_delivered where order_id = ?
union all
select event_time, 'cancelled', event_id, null, null, null, null, null, reason
from silver.pharmacy_order_cancelled where order_id = ?
order by event_time, event_id
"""
_DETAIL = ("status", "reject_code", "lot_number", "shipment_id", "carrier_id", "reason")
STAGES = ("placed", "insurance_validated", "filled", "shipped")


def timeline(ctx: QueryContext, order_id: str) -> dict[str, Any] | None:
    """The order's facts (gold.fact_order_lifecycle), its events (silver.pharmacy_order_*) and
    its live stage (speed layer). None when neither layer knows the order."""
    with ctx.reading() as q:
        order = q.one("order", ORDER_SQL, [order_id])
        rows = q.rows("order_events", EVENTS_SQL, [order_id] * 6) if order else []
        as_of = q.info.built_at
    live = _live_order(ctx, order_id)
    if order is None and live is None:
        return None
    events = [
        {
            "at": r["event_time"],
            "stage": r["stage"],
            "event_id": r["event_id"],
            "details": {k: r[k] for k in _DETAIL if r[k] is not None},
        }
        for r in rows
    ]
    return {"order_id": order_id, "order": order, "events": events, "live": live, "as_of": as_of}


def _live_order(ctx: QueryContext, order_id: str) -> dict[str, Any] | None:
    order = ctx.live_order(order_id)
    return None if order is None else _waiting(ctx, order)


def _waiting(ctx: QueryContext, order: OrderWaiting) -> dict[str, Any]:
    limit = ctx.realtime_config.stuck_after_s(order.stage)
    return {
        "order_id": order.order_id,
        "pharmacy_id": order.pharmacy_id,
        "stage": order.stage,
        "entered_at": order.entered_at,
        "waiting_hours": round(order.waiting_s / 3600, 2),
        "stuck_after_hours": None if limit is None else round(limit / 3600, 2),
        "stuck": limit is not None and order.waiting_s > limit,
        "insurance_status": order.insurance_status,
    }


def stuck(
    ctx: QueryContext, filters: Filters, page: Page, stage: str | None = None
) -> dict[str, Any]:
    """Orders waiting in their stage longer than its threshold (speed layer), longest wait
    first, optionally of one pharmacy or stage; keyset pages on (waiting, order_id)."""
    waiting = ctx.live_waiting()
    if waiting is None:
        return {"items": [], "next_cursor": None, "clock": None, "running": False}
    snapshot = Snapshot(clock=ctx.live_clock(), taken_at=datetime.now(UTC), orders=waiting)
    orders = [
        o
        for o in stuck_orders(snapshot, ctx.realtime_config)
        if (filters.pharmacy_id is None or o.pharmacy_id == filters.pharmacy_id)
        and (stage is None or o.stage == stage)
    ]
    orders.sort(key=lambda o: (-o.waiting_s, o.order_id))
    after = page.after()
    if after is not None:
        key = (float(after[0]), str(after[1]))
        orders = [o for o in orders if (-o.waiting_s, o.order_id) > key]
    limit = max(1, min(page.limit, MAX_LIMIT))
    items = orders[:limit]
    more = len(orders) > limit
    cursor = encode_cursor([-items[-1].waiting_s, items[-1].order_id]) if more else None
    return {
        "items": [_waiting(ctx, o) for o in items],
        "next_cursor": cursor,
        "clock": snapshot.clock,
        "running": True,
    }


def live_board(ctx: QueryContext, filters: Filters) -> dict[str, Any]:
    """The pharmacy floor's picture now (speed layer): orders waiting and stuck per stage,
    the insurance rejection rate over the last hour of windows, cold-chain shipments in
    excursion, open alerts. `running` False when the speed layer has not run."""
    snapshot = ctx.live()
    if snapshot is None:
        return {
            "running": False,
            "clock": None,
            "events_counted": 0,
            "stages": [],
            "orders_waiting": 0,
            "rejection_rate": None,
            "insurance_decisions_last_hour": 0,
            "shipments_in_excursion": 0,
        }
    orders = [
        o
        for o in snapshot.orders
        if filters.pharmacy_id is None or o.pharmacy_id == filters.pharmacy_id
    ]
    waiting = waiting_by_stage(
        Snapshot(clock=snapshot.clock, taken_at=snapshot.taken_at, orders=orders),
        ctx.realtime_config,
    )
    stages = [
        {"stage": s, "waiting": waiting.get(s, (0, 0))[0], "stuck": waiting.get(s, (0, 0))[1]}
        for s in STAGES
    ]
    decided = rejected = 0.0
    if snapshot.clock is not None:
        since = snapshot.clock - timedelta(hours=1)
        width = min(ctx.realtime_config.windows_s)
        for w in ctx.live_windows("insurance_decisions", width, since):
            if filters.pharmacy_id is not None and w.entity != filters.pharmacy_id:
                continue
            decided += w.value
            rejected += w.value if w.label == "REJECTED" else 0.0
    excursions = [s for s in snapshot.shipments if s.in_excursion and not s.delivered]
    return {
        "running": True,
        "clock": snapshot.clock,
        "events_counted": sum(on_time + late for on_time, late in snapshot.totals.values()),
        "stages": stages,
        "orders_waiting": len(orders),
        "rejection_rate": round(rejected / decided, 4) if decided else None,
        "insurance_decisions_last_hour": int(decided),
        "shipments_in_excursion": len(excursions),
    }
