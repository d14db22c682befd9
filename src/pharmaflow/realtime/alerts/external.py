"""Incidents raised from outside the speed layer: ML drift checks and failed scheduled tasks.

They share the speed layer's alert store, routes and notifier (so one `pharmaflow alerts
list` shows everything and every route gets retries, ordering and give-up rules), but no
snapshot evaluates them: the caller says whether the incident is active now. `record` diffs
that against the store — active fires it (or repeats it when due), inactive resolves an open
one — and, unless `deliver=False`, sends what it queued at once with one notifier drain (a
running speed layer's notifier sends whatever that leaves behind).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.realtime.alerts.incidents import Transition
    from pharmaflow.realtime.alerts.rules import AlertRules, ExternalRule


@dataclass(frozen=True)
class Raised:
    """What `record` did: the incident keys, the transitions it recorded (fired, repeat,
    resolved; empty when nothing changed) and how many notifications went out."""

    keys: list[str]
    transitions: list[Transition] = field(default_factory=list)
    sent: int = 0


def record(
    settings: Settings,
    rules: AlertRules,
    rule: ExternalRule,
    active: dict[str, tuple[str, dict[str, Any]]],
    keys: set[str],
    now: datetime,
    *,
    deliver: bool = True,
) -> Raised:
    """Record the incidents `keys` of `rule`: those in `active` (key → summary, details) are
    firing, the others resolved. A disabled rule records nothing."""
    from pharmaflow.realtime.alerts.evaluate import Incident
    from pharmaflow.realtime.alerts.incidents import IncidentStore
    from pharmaflow.realtime.alerts.notifier import Notifier
    from pharmaflow.realtime.db import Database

    if not rule.enabled or not keys:
        return Raised(sorted(keys))
    db = Database(settings.realtime_store_url)
    try:
        incidents = {
            key: Incident(rule.id, key, rule.severity, summary, details)
            for key, (summary, details) in active.items()
        }
        transitions = IncidentStore(db, rules).record(incidents, now, keys=keys)
        sent = 0
        if deliver and any(t.routes for t in transitions):
            notifier = Notifier(db, rules)
            try:
                sent = notifier.drain_once(now)
            finally:
                notifier.stop()
    finally:
        db.close()
    return Raised(sorted(keys), transitions, sent)


def open_keys(settings: Settings, rule_id: str, prefix: str) -> set[str]:
    """Keys of the firing incidents of `rule_id` starting with `prefix` (to resolve them)."""
    from pharmaflow.realtime.alerts.incidents import create_alert_schema
    from pharmaflow.realtime.db import Database

    db = Database(settings.realtime_store_url)
    try:
        create_alert_schema(db)
        with db.reading() as tx:
            rows = tx.query(
                "SELECT incident_key FROM rt_alert WHERE state = 'firing' AND rule_id = ?",
                [rule_id],
            )
    finally:
        db.close()
    return {key for (key,) in rows if key.startswith(prefix)}
