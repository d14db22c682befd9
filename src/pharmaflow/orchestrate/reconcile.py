"""Reconcile the speed layer with the batch layer: events per type per closed window.

Both layers read the same events (the speed layer from the stream, the batch layer from bronze
through silver), so for a window the speed layer has closed the two counts must agree — except
that the batch layer also holds the events that arrived after the window was final (the speed
layer leaves those to it by design, docs/realtime.md). So per (event type, window):

* equal — agreed;
* batch more — late arrivals the stream left to the batch layer (expected, reported);
* speed more — the stream counted events the warehouse does not hold: ingest or the build lost
  or set aside something, or duplicates reached two speed-layer workers (a known limit). This
  is the breach the reconciliation DAG fails on.

Only windows both layers can judge are compared: closed in the speed layer, and ending at least
the allowed lateness before the newest event the warehouse holds (a window the batch layer has
not caught up with yet is not a disagreement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError

KPI = "events"  # the speed layer's per-event-type count (realtime/kpis.py)
_LISTED = 20  # disagreeing windows named in a report


@dataclass
class Reconciliation:
    """The comparison of one width's closed windows. `skipped`: why nothing was compared."""

    width_s: int
    windows: int = 0  # (event type, window) pairs compared
    equal: int = 0
    batch_more: int = 0
    speed_more: int = 0
    late_events: int = 0  # batch minus speed, summed over the batch-more windows
    missing_events: int = 0  # speed minus batch, summed over the speed-more windows
    compared_until: datetime | None = None
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None

    @property
    def agrees(self) -> bool:
        return self.speed_more == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "width_s": self.width_s,
            "windows": self.windows,
            "equal": self.equal,
            "batch_more": self.batch_more,
            "speed_more": self.speed_more,
            "late_events": self.late_events,
            "missing_events": self.missing_events,
            "compared_until": None
            if self.compared_until is None
            else self.compared_until.isoformat(),
            "agrees": self.agrees,
            "skipped": self.skipped,
            "disagreements": self.disagreements,
        }


def _speed_counts(settings: Settings, width: int) -> dict[tuple[str, int], int]:
    """Closed windows of the speed layer: (event type, start s) → events."""
    from pharmaflow.realtime.config import RealtimeConfig
    from pharmaflow.realtime.db import Database
    from pharmaflow.realtime.reader import StateReader

    db = Database(settings.realtime_store_url)
    try:
        reader = StateReader(db, RealtimeConfig.from_settings(settings))
        values = reader.windows(KPI, width)
    finally:
        db.close()
    counts: dict[tuple[str, int], int] = {}
    for w in values:
        if w.final:
            key = (w.label, int(w.start.timestamp()))
            counts[key] = counts.get(key, 0) + int(w.value)
    return counts


def _batch_counts(
    settings: Settings, width: int, first: int, last: int
) -> tuple[dict[tuple[str, int], int], int | None]:
    """Silver's events per (event type, window start) for starts in [first, last]; and the
    newest event time silver holds (epoch s). Read where serving reads (the published
    snapshot, or the PostgreSQL warehouse read-only: checks/gold.py), never the DuckDB file a
    build may be writing."""
    from pharmaflow.orchestrate.checks.gold import NoWarehouse, gold_reader

    try:
        with gold_reader(settings) as query:
            return _count(query, settings.warehouse_target, width, first, last)
    except NoWarehouse as exc:
        raise PharmaflowError(f"reconciliation cannot read the warehouse: {exc}") from None


def _count(
    query: Any, target: str, width: int, first: int, last: int
) -> tuple[dict[tuple[str, int], int], int | None]:
    tables = query(
        "select table_name from information_schema.tables where table_schema = 'silver' "
        "and table_name not like '\\_%' escape '\\' order by table_name"
    )
    if not tables:
        return {}, None
    epoch = (
        "cast(floor(extract(epoch from event_time)) as bigint)"
        if target == "postgres"
        else "cast(floor(epoch(event_time)) as bigint)"
    )
    union = " union all ".join(
        f"select event_type, {epoch} as t from silver.{name}" for (name,) in tables
    )
    newest = query(f"select max(t) from ({union}) e")
    rows = query(
        f"select event_type, t - (t % {width}) as s, count(*) from ({union}) e "
        f"where t >= {first} and t < {last + width} group by 1, 2"
    )
    counts = {(str(t), int(s)): int(n) for t, s, n in rows}
    return counts, None if newest[0][0] is None else int(newest[0][0])


def reconcile(settings: Settings, width_s: int | None = None) -> Reconciliation:
    """Compare the speed layer's closed `width_s` windows (default: the narrowest) with silver.
    Skipped (not an error) when there is no speed layer or nothing to compare yet."""
    from pathlib import Path

    width = int(width_s or min(settings.realtime_windows))
    out = Reconciliation(width)
    url = settings.realtime_store_url
    if not url.startswith("postgresql://") and not Path(url).exists():
        out.skipped = f"no speed layer state at {url}"
        return out
    speed = _speed_counts(settings, width)
    if not speed:
        out.skipped = "the speed layer has no closed windows yet"
        return out
    starts = [s for _t, s in speed]
    batch, newest = _batch_counts(settings, width, min(starts), max(starts))
    if newest is None:
        out.skipped = "the warehouse holds no events yet"
        return out
    until = newest - int(settings.realtime_allowed_lateness_s)
    out.compared_until = datetime.fromtimestamp(until, UTC)
    for key in sorted(set(speed) | {k for k in batch if k[1] >= min(starts)}):
        event_type, start = key
        if start + width > until or start > max(starts):
            continue
        s, b = speed.get(key, 0), batch.get(key, 0)
        out.windows += 1
        if s == b:
            out.equal += 1
            continue
        if b > s:
            out.batch_more += 1
            out.late_events += b - s
        else:
            out.speed_more += 1
            out.missing_events += s - b
        if len(out.disagreements) < _LISTED and s > b:
            out.disagreements.append(
                {
                    "event_type": event_type,
                    "window_start": datetime.fromtimestamp(start, UTC).isoformat(),
                    "speed": s,
                    "batch": b,
                }
            )
    if out.windows == 0:
        out.skipped = "no closed window the warehouse has caught up with"
    return out
