"""Alerts: rules over the speed layer's live state, an incident store, and a notifier.

The engine's entry points:

    rules = AlertRules.load(path)           # None: the shipped default_rules.yaml
    alerting = Alerting(db, rules)          # db: the speed layer's realtime Database
    notifier = Notifier(db, rules); notifier.start()
    ...every second or so, from ONE worker:
    transitions = alerting.evaluate(reader.snapshot(now, window_since=...), now)
    if transitions: notifier.wake()
    ...at shutdown: notifier.stop(timeout=5)

`evaluate` is cheap when nothing changes (one indexed read, no write lock); it records fired,
repeat and resolved transitions with their outbox rows in one transaction and returns them
(each has `rule_id`/`severity`/`kind`, for the `pharmaflow_alerts_transitions_total` metric).
Delivery happens in the notifier's thread only: a failing webhook never blocks or raises into
the stream.
See docs/alerts.md.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from pharmaflow.realtime.alerts.evaluate import Incident, evaluate_rules
from pharmaflow.realtime.alerts.incidents import IncidentStore, Transition, list_incidents
from pharmaflow.realtime.alerts.notifier import Notifier, NotifierStats
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.snapshot import Snapshot


class Alerting:
    """Evaluates the rules over a snapshot and records what changed.

    `transitions`: cumulative counts by (rule_id, severity, kind) since start;
    `active`: incidents active at the last evaluation (for the `pharmaflow_alerts_firing` gauge)."""

    def __init__(self, db: Database, rules: AlertRules) -> None:
        self.db = db
        self.rules = rules
        self.store = IncidentStore(db, rules)
        self.transitions: Counter[tuple[str, str, str]] = Counter()
        self.active = 0

    def incidents(self, snapshot: Snapshot, now: datetime) -> dict[str, Incident]:
        """The active incidents (nothing recorded): for previews and tests."""
        return evaluate_rules(self.rules, snapshot, now)

    def evaluate(self, snapshot: Snapshot, now: datetime) -> list[Transition]:
        active = evaluate_rules(self.rules, snapshot, now)
        self.active = len(active)
        changed = self.store.record(active, now)
        for t in changed:
            self.transitions[(t.rule_id, t.severity, t.kind)] += 1
        return changed


__all__ = [
    "AlertRules",
    "Alerting",
    "Incident",
    "IncidentStore",
    "Notifier",
    "NotifierStats",
    "Transition",
    "evaluate_rules",
    "list_incidents",
]
