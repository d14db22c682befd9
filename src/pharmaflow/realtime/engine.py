"""The speed layer: the ingest steps into windowed state, committed with the source offsets.

The same run loop as ingest (`ingest/runloop.py`: source → decode/validate in workers → dedupe
→ protect PHI, in source order), with one different committer: instead of the lake's sinks and
manifest, a batch's protected events and rejects go to the state store in ONE transaction with
the offsets they came from (`StateStore.apply`). Nothing is written to bronze. On start, and
whenever the group hands this worker partitions, their state and offsets are loaded from the
store and the source skips what is already counted; so a crash (kill -9 anywhere) loses and
doubles nothing, and workers of one group own disjoint partitions whose state never conflicts.

Between batches — and while the stream is quiet — a ticker thread moves the partitions'
clocks on with wall time (`StateStore.tick`), so windows still close and a stuck order is still
flagged; one worker (slot 0) then evaluates the alert rules on a fresh snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pharmaflow.config import Settings
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.ingest.analyse import Analysis, split_lines
from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.landing import Landing
from pharmaflow.ingest.phi.keyring import load_keys
from pharmaflow.ingest.phi.protect import Protector
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.phi.vault import PhiVault
from pharmaflow.ingest.pipeline import IngestResult
from pharmaflow.ingest.runloop import Progress, run_sources
from pharmaflow.ingest.sources.base import RawBatch, Source
from pharmaflow.ingest.steps import EventSteps
from pharmaflow.realtime.config import RealtimeConfig
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.metrics import RealtimeMetrics
from pharmaflow.realtime.reader import StateReader
from pharmaflow.realtime.store import StateStore

log = logging.getLogger(__name__)

FILE_PARTITION = 0  # a file is one "partition"; its offsets are line numbers
TICK_SECONDS = 1.0
COMPACT_SECONDS = 60.0


@dataclass
class RealtimeResult(IngestResult):
    """Ingest's counts (`landed` = counted in the speed layer's state) plus time's verdicts:
    `on_time + late == landed` always."""

    on_time: int = 0
    late: int = 0
    late_by_type: dict[str, int] = field(default_factory=dict)
    windows_closed: int = 0
    alerts: int = 0

    @property
    def conserved(self) -> bool:
        return self.counts.conserved and self.on_time + self.late == self.counts.landed

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "on_time": self.on_time,
            "late": self.late,
            "late_by_type": dict(sorted(self.late_by_type.items())),
            "windows_closed": self.windows_closed,
            "alerts": self.alerts,
        }

    def merge(self, other: IngestResult) -> None:
        super().merge(other)
        if isinstance(other, RealtimeResult):
            self.on_time += other.on_time
            self.late += other.late
            for event_type, n in other.late_by_type.items():
                self.late_by_type[event_type] = self.late_by_type.get(event_type, 0) + n
            self.windows_closed += other.windows_closed
            self.alerts += other.alerts


def _now() -> datetime:
    return datetime.now(UTC)


class TopicIds:
    """The topic id (incarnation) each topic's offsets were counted under, per group.

    Recorded before the first batch of a topic is applied (its own small transaction: it is
    idempotent and only ever names what the broker said), read when partitions are assigned."""

    def __init__(self, db: Database, group: str) -> None:
        self.db = db
        self.group = group
        self._known: dict[str, str] | None = None
        with db.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS rt_topic_ids ("
                "grp TEXT NOT NULL, topic TEXT NOT NULL, topic_id TEXT NOT NULL, "
                "PRIMARY KEY (grp, topic))"
            )

    def ids(self) -> dict[str, str]:
        if self._known is None:
            with self.db.reading() as tx:
                rows = tx.query(
                    "SELECT topic, topic_id FROM rt_topic_ids WHERE grp = ?", (self.group,)
                )
            self._known = dict(rows)
        return self._known

    def remember(self, ranges: list[list[Any]]) -> None:
        known = self.ids()
        new = {str(t): str(tid) for t, tid, *_rest in ranges if known.get(t) != tid}
        if not new:
            return
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO rt_topic_ids (grp, topic, topic_id) VALUES (?, ?, ?) "
                "ON CONFLICT (grp, topic) DO UPDATE SET topic_id = excluded.topic_id",
                [(self.group, t, tid) for t, tid in new.items()],
            )
        known.update(new)


class StateCommitter:
    """The run loop's committer for the speed layer (see the module docstring). `lock` keeps
    the ticker's clock moves and the writer thread's commits from interleaving in the store."""

    def __init__(
        self,
        store: StateStore,
        steps: EventSteps,
        protector: Protector,
        result: RealtimeResult,
        metrics: RealtimeMetrics,
        lock: threading.Lock,
    ) -> None:
        self.store = store
        self.steps = steps
        self.protector = protector
        self.result = result
        self.metrics = metrics
        self.lock = lock
        self.topics = TopicIds(store.db, store.group)
        self._offsets: dict[tuple[str, int], int] = {}
        self._files: set[str] = set()

    # -- a file (replay) source: one partition per file, offsets are line numbers ----------

    def _file_offset(self, uri: str) -> int:
        if uri not in self._files:
            with self.lock:
                self._offsets.update(self.store.load([(uri, FILE_PARTITION)]))
            self._files.add(uri)
        return self._offsets.get((uri, FILE_PARTITION), -1)

    def committed(self, batch: RawBatch) -> BatchCounts | None:
        """A file batch at or below the stored line number was counted before a restart."""
        if batch.blob is None or batch.first_offset > self._file_offset(batch.source_uri):
            return None
        _lines, keep, _starts = split_lines(batch.blob)
        records = int(keep.sum())
        return BatchCounts(records=records, blank=int(keep.size - records))

    # -- the steps and the commit ------------------------------------------------------------

    def prepare(self, batch: RawBatch, analysis: Analysis) -> Landing:
        return self.steps.prepare(batch, analysis, self.store.dedupe, self.protector)

    def _batch_offsets(self, batch: RawBatch, landing: Landing) -> dict[tuple[str, int], int]:
        if batch.offset_ranges:  # every record of the batch: counted, duplicate or rejected
            return {(t, int(p)): int(hi) for t, _tid, p, _lo, hi in batch.offset_ranges}
        last = landing.last_offset
        if batch.blob is not None:  # up to the batch's last line, blank ones included
            last = batch.first_offset + batch.blob.count(b"\n") - 1
        return {(batch.source_uri, FILE_PARTITION): int(last)}

    def commit(self, batch: RawBatch, landing: Landing) -> Landing:
        offsets = self._batch_offsets(batch, landing)
        self.topics.remember(batch.offset_ranges)
        rejected = None
        if landing.quarantine is not None:
            rejected = landing.quarantine.select(
                ["source_uri", "source_partition", "source_offset", "event_type", "reason_code"]
            )
        started = time.perf_counter()
        with self.lock:
            applied = self.store.apply(landing.bronze, rejected, offsets, _now())
            self._offsets.update(offsets)
        done = time.time()
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        if batch.produced_at is not None:
            self.metrics.event_to_commit_seconds.observe(max(0.0, done - batch.produced_at))
        self._count(applied)
        return landing

    def _count(self, applied: Any) -> None:
        result = self.result
        result.on_time += applied.on_time
        result.late += applied.late
        for event_type, n in applied.late_by_type.items():
            result.late_by_type[event_type] = result.late_by_type.get(event_type, 0) + n
            self.metrics.late.labels(event_type).inc(n)
        for seconds in applied.late_seconds:
            self.metrics.lateness.observe(seconds)
        result.windows_closed += applied.windows_closed
        self.metrics.windows_closed.inc(applied.windows_closed)

    def settled(self, landing: Landing) -> None:
        self.store.dedupe.release(landing.dedupe_gen)

    # -- partitions coming and going ---------------------------------------------------------

    def refresh(self, partitions: list[tuple[str, int]]) -> None:
        """Given partitions: their state and offsets from the store (another worker, or this
        one before a crash, may have counted them up to a point)."""
        with self.lock:
            self._offsets.update(self.store.load(partitions))

    def release(self, partitions: list[tuple[str, int]]) -> None:
        with self.lock:
            self.store.forget(partitions)
            for key in partitions:
                self._offsets.pop(key, None)

    def landed_offsets(self) -> dict[tuple[str, str, int], int]:
        """Offsets keyed as the source knows them: with the topic id each was counted under
        (a topic deleted and created again starts afresh, as in the lake)."""
        ids = self.topics.ids()
        return {(t, ids.get(t, ""), p): o for (t, p), o in self._offsets.items()}

    def tick(self) -> int:
        """Move quiet partitions' clocks on with wall time; the windows that closed."""
        with self.lock:
            closed = int(self.store.tick(_now()))
        self.result.windows_closed += closed
        self.metrics.windows_closed.inc(closed)
        return closed

    def compact(self) -> None:
        with self.lock:
            self.store.compact(_now())


class Ticker(threading.Thread):
    """Every `TICK_SECONDS`: clocks on, then alerts (if this worker evaluates them); every
    `COMPACT_SECONDS`: compaction. Never lets an error stop the stream: it is logged, and the
    next tick tries again."""

    def __init__(self, committer: StateCommitter, alerts: Any | None) -> None:
        super().__init__(name="pharmaflow-realtime-ticker", daemon=True)
        self.committer = committer
        self.alerts = alerts
        self.stopping = threading.Event()

    def once(self, compact: bool = False) -> None:
        self.committer.tick()
        if compact:
            self.committer.compact()
            if self.alerts is not None:
                self.alerts.compact(_now())
        if self.alerts is not None:
            self.committer.result.alerts += self.alerts.evaluate(_now())

    def run(self) -> None:
        last_compact = time.monotonic()
        while not self.stopping.wait(TICK_SECONDS):
            compact = time.monotonic() - last_compact >= COMPACT_SECONDS
            try:
                self.once(compact)
            except Exception:
                log.exception("realtime tick failed; trying again at the next one")
            if compact:
                last_compact = time.monotonic()

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=30)


class SpeedLayer:
    """One speed-layer worker: a consumer-group member (or a file replay) over the store at
    `settings.realtime_store_url`. `alerts`: evaluate alert rules (one worker of a group)."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        registry: ContractRegistry | None = None,
        metrics: RealtimeMetrics | None = None,
        alerts: bool = True,
    ) -> None:
        self.settings = settings
        self.group = group
        self.registry = registry or default_registry()
        self.metrics = metrics or RealtimeMetrics()
        self.config = RealtimeConfig.from_settings(settings)
        self.keys = load_keys(settings)  # checked fingerprints; a lease against `keys rotate`
        self.vault = PhiVault(settings.vault_dir, self.keys.vault.value)
        self.tokenizer = Tokenizer(self.keys.hmac.value)
        self.steps = EventSteps(self.registry, self.vault.sealer)
        self.db = Database(settings.realtime_store_url)
        self.store = StateStore(self.db, group, self.config)
        self.alerting = self._alerting() if alerts else None

    def _alerting(self) -> Any:
        from pharmaflow.realtime.alerts.live import LiveAlerts

        return LiveAlerts(
            self.db,
            StateReader(self.db, self.config),
            self.settings.alert_rules,
            self.metrics,
        )

    def run(
        self,
        sources: Iterable[Source],
        writer: str,
        progress: Progress | None = None,
    ) -> RealtimeResult:
        started = time.perf_counter()
        result = RealtimeResult()
        protector = Protector(self.tokenizer, self.vault.sealer, self.vault.load_name_tokens())
        lock = threading.Lock()
        committer = StateCommitter(self.store, self.steps, protector, result, self.metrics, lock)
        ticker = Ticker(committer, self.alerting)
        if self.alerting is not None:
            self.alerting.start()
        ticker.start()
        try:
            run_sources(
                sources,
                lambda _source: committer,
                self.settings,
                self.registry,
                writer,
                result,
                self.metrics,
                progress,
            )
            ticker.stop()
            ticker.once(compact=True)  # a bounded run ends with its clocks and alerts current
        finally:
            ticker.stop()
            if self.alerting is not None:
                self.alerting.stop()
            self.db.close()
        result.seconds = time.perf_counter() - started
        if not result.conserved:  # a bug, never bad input: fail loudly
            raise AssertionError(f"speed layer lost or doubled events: {result.to_dict()}")
        log.info("realtime done %s", orjson.dumps(result.to_dict()).decode())
        return result
