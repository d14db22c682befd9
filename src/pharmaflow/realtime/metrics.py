"""Prometheus metrics of a speed-layer worker: what it counted, how late, how fast.

Like ingest's (`ingest/metrics.py`), each worker keeps its own registry so several engines in
one process (tests, the bench) never collide, served on its own port when asked. Names are
public (dashboards and alert rules scrape them): `pharmaflow_realtime_*`.
"""

from __future__ import annotations

from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.metrics import ServedMetrics

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LATE_BUCKETS = (1, 10, 60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400, float("inf"))


class RealtimeMetrics(ServedMetrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.events = PromCounter(
            "pharmaflow_realtime_events",
            "Valid, deduplicated events counted by the speed layer (on time or late)",
            ["event_type"],
            registry=r,
        )
        self.late = PromCounter(
            "pharmaflow_realtime_late_events",
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
            "pharmaflow_realtime_quarantined",
            "Records the speed layer's validation rejected, by envelope event type and reason",
            ["event_type", "reason"],
            registry=r,
        )
        self.duplicates = PromCounter(
            "pharmaflow_realtime_duplicates",
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
        self.alerts = PromCounter(
            "pharmaflow_realtime_alerts",
            "Alert transitions (fired, resolved, repeated), by rule and severity",
            ["rule", "severity", "transition"],
            registry=r,
        )

    def batch_done(self, counts: BatchCounts, seconds: float) -> None:
        """The run loop's observer: a batch was committed and acknowledged."""
        for event_type, n in counts.landed_types.items():
            self.events.labels(event_type).inc(n)
        for event_type, n in counts.duplicate_types.items():
            self.duplicates.labels(event_type).inc(n)
        for (event_type, reason), n in counts.quarantined_types.items():
            self.quarantined.labels(event_type, reason).inc(n)
        self.batch_seconds.observe(seconds)
