"""Prometheus metrics of a speed-layer worker: what it counted, how late, how fast, how far
behind, and — on the worker that evaluates the alert rules — the alerts and their delivery.

Like ingest's (`ingest/metrics.py`), each worker keeps its own registry so several engines in
one process (tests, the bench) never collide, served on its own port when asked. Names are
public (the Prometheus rules and the Grafana dashboard in deploy/ read them; the table is
docs/observability.md): `pharmaflow_realtime_*` for the stream, `pharmaflow_alerts_*` for the
alerts. The notifier's figures live in its own thread's `NotifierStats`; they are read at
scrape time by a collector rather than mirrored into counters, so delivery code stays free of
metrics calls and a scrape always shows the notifier's own counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.metrics import ServedMetrics, SourceMetrics

if TYPE_CHECKING:
    from pharmaflow.realtime.alerts import Alerting
    from pharmaflow.realtime.alerts.notifier import NotifierStats

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LATE_BUCKETS = (1, 10, 60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400, float("inf"))
NOTIFICATION_OUTCOMES = ("sent", "failed", "given_up")
TRANSITIONS = ("fired", "repeat", "resolved")  # realtime/alerts/incidents.py TransitionKind


class AlertsCollector(Collector):
    """`pharmaflow_alerts_*` read from the alerting and the notifier at scrape time.

    Registered on every speed-layer worker, so the names exist wherever the dashboard looks;
    samples appear once `watch()` was given the alerting of the one worker that evaluates the
    rules (`--no-alerts` workers export the names without samples)."""

    def __init__(self) -> None:
        self._alerting: Alerting | None = None
        self._stats: NotifierStats | None = None

    def watch(self, alerting: Alerting, stats: NotifierStats) -> None:
        self._alerting, self._stats = alerting, stats

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        notifications, errors, firing = self._families()
        stats, alerting = self._stats, self._alerting
        if stats is not None:
            # copies: the notifier thread adds routes while a scrape reads them
            per_outcome = {
                "sent": dict(stats.by_route),
                "failed": dict(stats.failed_by_route),
                "given_up": dict(stats.given_up_by_route),
            }
            # every configured route from the start, at 0: a series that first appears at 1
            # is invisible to increase() and rate(), so a first give-up would not alert
            configured = alerting.rules.routes if alerting is not None else {}
            routes = sorted(
                {*configured, *(route for counts in per_outcome.values() for route in counts)}
            )
            for route in routes:
                for outcome in NOTIFICATION_OUTCOMES:
                    notifications.add_metric([route, outcome], per_outcome[outcome].get(route, 0))
            errors.add_metric([], stats.errors)
        if alerting is not None:
            firing.add_metric([], alerting.active)
        yield from (notifications, errors, firing)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                "pharmaflow_alerts_notifications",
                "Alert notifications by route and outcome: sent (2xx), failed (an attempt that "
                "will be retried or given up), given_up (never delivered)",
                labels=["route", "outcome"],
            ),
            CounterMetricFamily(
                "pharmaflow_alerts_notifier_errors",
                "Notifier drains that failed as a whole (the store unreachable, say)",
                labels=[],
            ),
            GaugeMetricFamily(
                "pharmaflow_alerts_firing",
                "Incidents active at the last evaluation of the alert rules",
                labels=[],
            ),
        )


class RealtimeMetrics(ServedMetrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        # what its Kafka source records: records read, offset commits, lag (`realtime` part)
        self.source = SourceMetrics(r, "realtime")
        self.events = PromCounter(
            "pharmaflow_realtime_events",
            "Valid, deduplicated events counted by the speed layer (on time or late)",
            ["event_type"],
            registry=r,
        )
        self.late = PromCounter(
            "pharmaflow_realtime_events_late",
            "Events that arrived after their window was final (left to the batch layer)",
            ["event_type"],
            registry=r,
        )
        self.lateness = Histogram(
            "pharmaflow_realtime_lateness_seconds",
            "How late the late events were (stream clock minus event time)",
            buckets=_LATE_BUCKETS,
            registry=r,
        )
        self.quarantined = PromCounter(
            "pharmaflow_realtime_events_quarantined",
            "Records the speed layer's validation rejected, by envelope event type and reason",
            ["event_type", "reason"],
            registry=r,
        )
        self.duplicates = PromCounter(
            "pharmaflow_realtime_events_duplicate",
            "Events dropped as duplicates",
            ["event_type"],
            registry=r,
        )
        self.windows_closed = PromCounter(
            "pharmaflow_realtime_windows_closed",
            "Windows that became final (watermark past end plus allowed lateness)",
            registry=r,
        )
        self.commit_seconds = Histogram(
            "pharmaflow_realtime_commit_seconds",
            "Time to commit a batch's state changes and offsets (one transaction)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_to_commit_seconds = Histogram(
            "pharmaflow_realtime_event_to_commit_seconds",
            "From a batch's first record being produced (broker timestamp) to its state being "
            "committed and visible to readers",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "pharmaflow_realtime_batch_seconds",
            "Batch latency: handed over by the source to committed",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.last_batch = Gauge(
            "pharmaflow_realtime_last_batch_timestamp_seconds",
            "When this worker last committed a batch (Unix time; 0: not yet)",
            registry=r,
        )
        self.alerts = PromCounter(
            "pharmaflow_alerts_transitions",
            "Alert transitions (fired, repeat, resolved), by rule and severity",
            ["rule", "severity", "transition"],
            registry=r,
        )
        self.alerting = AlertsCollector()
        r.register(self.alerting)

    def watch_alerts(self, alerting: Alerting, stats: NotifierStats) -> None:
        """Export this worker's alerting (firing incidents) and notifier (deliveries per
        route): called by the worker that evaluates the rules (realtime/alerts/live.py).
        Each rule's transition series start at 0, so the first time a rule fires shows in
        `increase()` (a series born at 1 does not)."""
        self.alerting.watch(alerting, stats)
        for rule in alerting.rules.rules:
            for transition in TRANSITIONS:
                self.alerts.labels(rule.id, rule.severity, transition)

    def batch_done(self, counts: BatchCounts, seconds: float) -> None:
        """The run loop's observer: a batch was committed and acknowledged."""
        for event_type, n in counts.landed_types.items():
            self.events.labels(event_type).inc(n)
        for event_type, n in counts.duplicate_types.items():
            self.duplicates.labels(event_type).inc(n)
        for (event_type, reason), n in counts.quarantined_types.items():
            self.quarantined.labels(event_type, reason).inc(n)
        self.batch_seconds.observe(seconds)
        self.last_batch.set(time.time())
