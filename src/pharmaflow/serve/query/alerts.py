"""Alerts the speed layer raised: incidents firing and resolved, newest first, paged.

Read from the speed layer's store (realtime/alerts/incidents.py), where the alert engine
records every incident with its notifications' delivery. Alerts carry operational ids
(orders, shipments, batches, sensors), never a patient identifier: the speed layer never
reads `payload.patient`.
"""

from __future__ import annotations

from typing import Any

from pharmaflow.realtime.alerts.incidents import ListState, list_incidents
from pharmaflow.serve.query.base import BadCursor, Page, QueryContext, encode_cursor


def incidents(ctx: QueryContext, state: ListState, page: Page) -> dict[str, Any]:
    """One page of incidents in `state` (firing, resolved or all), newest first."""
    reader = ctx.live_reader()
    if reader is None:
        return {"items": [], "next_cursor": None}
    after = page.after()
    before = None
    if after is not None:
        try:
            before = (float(after[0]), int(after[1]))
        except (TypeError, ValueError, IndexError):
            raise BadCursor("cursor: not a cursor of this list") from None
    key = ("live", "alerts", state, page.limit, before)
    rows = ctx.cache.get_or_compute(
        key, lambda: list_incidents(reader.db, state, page.limit + 1, before)
    )
    more = len(rows) > page.limit
    items = rows[: page.limit]
    last = items[-1] if more else None
    cursor = None if last is None else encode_cursor([last["first_fired_epoch"], last["id"]])
    return {"items": items, "next_cursor": cursor}
