"""Prometheus metrics of an ingest worker: what it consumed, landed, quarantined, dropped as
duplicate, how long batches and offset commits take, how far behind it is, and when it last
committed a batch.

Each worker keeps its own registry (not the process-global one) so several engines in one
process — tests, the bench — never collide, and serves it on its own port when asked.
Lag is computed from *committed* offsets against the end of each partition as this consumer
knows it (the larger of the broker's high watermark and the consumer's own position), because
some brokers (Tansu) report a stale high watermark.

Names are public (the Prometheus rules and the Grafana dashboard in deploy/ read them; the
table is docs/observability.md): `pharmaflow_<part>_<what>_<unit>`, counters exported with
`_total`, durations in seconds. A Kafka source records into a `SourceMetrics` of its worker's
part, so the speed layer's workers report consumption and lag under `pharmaflow_realtime_*`
with the same code.
"""

from __future__ import annotations

import time
from collections import Counter
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

from pharmaflow.ingest.counts import BatchCounts

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServedMetrics:
    """A registry of this worker's own, served over HTTP on request (ingest's and the speed
    layer's metrics both)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._server: WSGIServer | None = None

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on `port` (0: a free one); returns the port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class SourceMetrics:
    """What a Kafka source records as it reads and commits (ingest/sources/kafka.py): records
    read, offset-commit latency, lag per partition. `part` names the worker kind (ingest or
    realtime), so both kinds export the same figures under their own names."""

    def __init__(self, registry: CollectorRegistry, part: str) -> None:
        self.consumed = PromCounter(
            f"pharmaflow_{part}_events_consumed",
            "Records read from the source (before validation and dedupe)",
            ["source"],
            registry=registry,
        )
        self.commit_seconds = Histogram(
            f"pharmaflow_{part}_offset_commit_seconds",
            "Time to commit a batch's offsets to the broker",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            f"pharmaflow_{part}_consumer_lag_records",
            "Records behind the end of the partition (from committed offsets; set when a "
            "batch is committed)",
            ["topic", "partition"],
            registry=registry,
        )


class IngestMetrics(ServedMetrics, SourceMetrics):
    def __init__(self) -> None:
        ServedMetrics.__init__(self)
        r = self.registry
        SourceMetrics.__init__(self, r, "ingest")
        self.landed = PromCounter(
            "pharmaflow_ingest_events_landed", "Events landed in bronze", ["event_type"], registry=r
        )
        self.quarantined = PromCounter(
            "pharmaflow_ingest_events_quarantined",
            "Records quarantined (dead-lettered), by envelope event type (unknown if unreadable) "
            "and reason",
            ["event_type", "reason"],
            registry=r,
        )
        self.duplicates = PromCounter(
            "pharmaflow_ingest_events_duplicate",
            "Valid events dropped as duplicates",
            ["event_type"],
            registry=r,
        )
        self.replayed = PromCounter(
            "pharmaflow_ingest_events_replayed",
            "Records skipped because a batch landed them before",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "pharmaflow_ingest_batch_seconds",
            "Batch latency: handed over by the source to committed",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # A stalled worker stops updating its lag (set at commit time); the age of its last
        # commit is what tells "stuck" from "idle" (docs/runbook.md, consumer lag growing).
        self.last_batch = Gauge(
            "pharmaflow_ingest_last_batch_timestamp_seconds",
            "When this worker last committed a batch (Unix time; 0: not yet)",
            registry=r,
        )

    def batch_done(self, counts: BatchCounts, seconds: float) -> None:
        """A batch was acknowledged (the run loop's observer)."""
        self.count(counts.landed_types, counts.duplicate_types, counts.quarantined_types)
        self.replayed.inc(counts.replayed)
        self.batch_seconds.observe(seconds)
        self.last_batch.set(time.time())

    def count(
        self,
        landed: Counter[str],
        duplicates: Counter[str],
        quarantined: Counter[tuple[str, str]],
    ) -> None:
        for event_type, n in landed.items():
            self.landed.labels(event_type).inc(n)
        for event_type, n in duplicates.items():
            self.duplicates.labels(event_type).inc(n)
        for (event_type, reason), n in quarantined.items():
            self.quarantined.labels(event_type, reason).inc(n)
