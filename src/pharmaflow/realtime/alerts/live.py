"""Alerts inside a running speed layer: evaluate on each tick, deliver from the outbox.

The engine's ticker calls `evaluate(now)` about once a second after moving the clocks on: a
fresh snapshot from the store (only the recent windows: rate rules look at the latest ones),
the rules over it, transitions and outbox rows recorded in one transaction (`Alerting`), the
notifier woken. Delivery runs in the notifier's own thread, so a webhook that hangs or fails
never holds up the stream.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.alerts import Alerting, AlertRules, IncidentStore, Notifier
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.metrics import RealtimeMetrics
from pharmaflow.realtime.reader import StateReader


class LiveAlerts:
    def __init__(
        self,
        db: Database,
        reader: StateReader,
        rules_path: Path | None,
        metrics: RealtimeMetrics,
    ) -> None:
        config = reader.config
        rules = AlertRules.load(rules_path).with_stuck_hours(dict(config.stuck_hours))
        missing = sorted(rules.window_widths() - set(config.windows_s))
        if missing:  # such a rule would never fire: say so rather than stay silent
            raise PharmaflowError(
                f"alert rules {rules.origin} read {', '.join(map(str, missing))}-second windows, "
                f"which the speed layer does not keep (PHARMAFLOW_REALTIME_WINDOWS="
                f"{list(config.windows_s)})"
            )
        self.reader = reader
        self.metrics = metrics
        self.alerting = Alerting(db, rules)
        self.incidents = IncidentStore(db, rules)
        self.notifier = Notifier(db, rules)
        metrics.watch_alerts(self.alerting, self.notifier.stats)
        self._lookback = rules.window_lookback()
        self._clock: datetime | None = None

    def start(self) -> None:
        self.notifier.start()  # sends what a crashed run left in the outbox, too

    def evaluate(self, now: datetime) -> int:
        # Rate rules read the latest windows before the wall clock (processing-time KPIs) or
        # the stream clock (event-time ones), which lags the wall clock in a replay.
        since = None
        if self._clock is not None:
            since = min(now, self._clock) - self._lookback
        snapshot = self.reader.snapshot(now, window_since=since)
        self._clock = snapshot.clock
        changed = self.alerting.evaluate(snapshot, now)
        for t in changed:
            self.metrics.alerts.labels(t.rule_id, t.severity, t.kind).inc()
        if changed:
            self.notifier.wake()
        return len(changed)

    def compact(self, now: datetime) -> None:
        self.incidents.compact(now)

    def stop(self) -> None:
        self.notifier.stop(timeout=5)
