"""The run loop: source → steps → commit → ack, pipelined, strictly in source order.

Three stages overlap: worker processes analyse the next batches (decode, validate), this
thread prepares the current one (the steps: dedupe, protect, tables), a writer thread commits
the previous one (sinks, then the commit point). Order is what makes a crash lose and double
nothing, and it is fixed here once for ingest and the speed layer alike:

- batches are prepared and committed in the order the source handed them over (the first
  arrival of an event id must win);
- a batch is acknowledged to the source only after its commit returned, and acks go in order
  (a source's bookmark only ever moves forward); a failed commit fails the run before its
  ack, so the source hands the batch over again next time;
- a batch the committer already holds (a replay after a crash) is counted as replayed and
  acknowledged, never prepared or written again;
- a stream's pause (`RawBatch.tick`) or a rebalance (`SourceContext.drain`) lands everything
  handed over so far before the loop goes on.

The loop knows nothing of the lake: a `Committer` is (ingest) the lake's manifest with its
sinks, or (speed layer) one store transaction with the source offsets.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from pharmaflow import logs
from pharmaflow.ingest.analyse import Analyser, Analysis
from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.landing import Landing
from pharmaflow.ingest.sources.base import RawBatch, Source, SourceContext

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.contracts.registry import ContractRegistry
    from pharmaflow.ingest.pipeline import IngestResult

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
GC_EVERY_SECONDS = 5.0


class Analyse(Protocol):
    """Decode and validate a batch, maybe in another process (`Analyser`)."""

    workers: int

    def submit(self, batch: RawBatch) -> Future[Analysis]: ...


class Committer(Protocol):
    def committed(self, batch: RawBatch) -> BatchCounts | None:
        """The counts of `batch` if it is committed already (its records are replayed)."""
        ...

    def prepare(self, batch: RawBatch, analysis: Analysis) -> Landing:
        """The steps (dedupe, protect, tables), in the loop's thread, in source order."""
        ...

    def commit(self, batch: RawBatch, landing: Landing) -> Landing:
        """Write the batch to every sink and commit it (the writer thread). Returns the landing
        as committed (another writer may have landed some of its events meanwhile)."""
        ...

    def settled(self, landing: Landing) -> None:
        """After `commit` returned, in the loop's thread, before the source's ack."""
        ...

    def refresh(self, partitions: list[tuple[str, int]]) -> None:
        """Take in what other writers committed (a stream source was given `partitions`)."""
        ...

    def release(self, partitions: list[tuple[str, int]]) -> None:
        """A stream source gave `partitions` up (after `drain`)."""
        ...

    def landed_offsets(self) -> dict[tuple[str, str, int], int]: ...


class LoopObserver(Protocol):
    """Metrics: told of every batch once it is acknowledged."""

    def batch_done(self, counts: BatchCounts, seconds: float) -> None: ...


class RunLoop:
    """One source through the steps into the committer. `totals` accumulates every batch's
    counts; `batches` counts batches acknowledged; `busy_seconds` runs from the first batch
    handed over to the last one acknowledged (a stream's throughput window)."""

    def __init__(
        self,
        source: Source,
        analyser: Analyse,
        committer: Committer,
        writer: str,
        observer: LoopObserver | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.analyser = analyser
        self.committer = committer
        self.writer = writer
        self.observer = observer
        self.progress = progress
        self.totals = BatchCounts()
        self.batches = 0
        self.dead_lettered = 0
        self.busy_seconds = 0.0
        self._first_at: float | None = None
        self._in_flight: deque[tuple[RawBatch, Future[Analysis] | None, float]] = deque()
        self._committing: list[tuple[RawBatch, Future[Landing], float]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._collected = time.monotonic()

    # -- one batch at a time, in order ---------------------------------------------------------

    def _account(self, batch: RawBatch, counts: BatchCounts, handed_at: float) -> None:
        """`batch` is committed (or was already): count it, acknowledge it to the source."""
        if batch.replayed:  # records the source itself recognised as committed before
            counts.add(BatchCounts(records=batch.replayed, replayed=batch.replayed))
        self.source.ack(batch)
        self.totals.add(counts)
        if self.observer is not None:
            self.observer.batch_done(counts, time.perf_counter() - handed_at)
        if batch.offset_ranges and time.monotonic() - self._collected >= GC_EVERY_SECONDS:
            # The cyclic collector is off while batches run (`no_cyclic_gc`); a stream never
            # ends, so whatever cycles its batches leave are collected here, between them — at
            # most every few seconds: a full collection takes tens of milliseconds, which small
            # batches (the speed layer's, ten a second) must not pay each.
            gc.collect()
            self._collected = time.monotonic()
        if self._first_at is not None:
            self.busy_seconds = time.perf_counter() - self._first_at
        if self.progress:
            self.progress(counts.records)

    def _settle(self) -> None:
        """Wait for the batch being committed; then count and acknowledge it."""
        if self._committing:
            batch, future, handed_at = self._committing.pop()
            landing = future.result()  # a failed commit raises here: no ack, the run fails
            self.committer.settled(landing)
            self.batches += 1
            self.dead_lettered += len(landing.dead_letters or ())
            self._account(batch, landing.counts, handed_at)

    def _finish_next(self) -> None:
        batch, future, handed_at = self._in_flight.popleft()
        if batch.empty:  # every record of it was recognised as committed by the source
            self._settle()
            self._account(batch, BatchCounts(), handed_at)
            return
        if future is None:  # committed by an earlier run
            self._settle()
            done = self.committer.committed(batch)
            assert done is not None
            self._account(batch, done.as_replayed(), handed_at)
            return
        landing = self.committer.prepare(batch, future.result())
        self._settle()  # the previous batch is acknowledged before this one is committed
        assert self._pool is not None
        # The writer thread logs under the run's bound fields (its trace id): threads do not
        # inherit context variables by themselves.
        written = self._pool.submit(logs.carry(self.committer.commit), batch, landing)
        self._committing.append((batch, written, handed_at))

    def _finish_ready(self) -> None:
        """Finish the batches at the head whose analysis is done (the source is waiting)."""
        while self._in_flight and self._head_ready():
            self._finish_next()

    def _head_ready(self) -> bool:
        _batch, future, _at = self._in_flight[0]
        return future is None or future.done()

    def drain(self) -> None:
        """Land and commit every batch handed over so far."""
        while self._in_flight:
            self._finish_next()
        self._settle()

    # -- the stream -----------------------------------------------------------------------------

    def run(self, batch_size: int) -> None:
        source = self.source
        with ThreadPoolExecutor(1, thread_name_prefix="pharmaflow-writer") as pool:
            self._pool = pool
            source.attach(
                SourceContext(
                    self.writer,
                    self.committer.refresh,
                    self.committer.landed_offsets,
                    self.drain,
                    self.committer.release,
                    self._finish_ready,
                )
            )
            try:
                for batch in source.batches(batch_size):
                    if batch.tick:
                        self.drain()
                        continue
                    now = time.perf_counter()
                    if self._first_at is None:
                        self._first_at = now
                    future = None
                    if not batch.empty and self.committer.committed(batch) is None:
                        future = self.analyser.submit(batch)
                    self._in_flight.append((batch, future, now))
                    # Up to one batch per analysing process in flight; beyond that, and
                    # whenever the oldest one's analysis is already done, finish it now: a
                    # batch never waits for later ones to arrive (the speed layer's latency).
                    while self._in_flight and (
                        len(self._in_flight) > self.analyser.workers or self._head_ready()
                    ):
                        self._finish_next()
                self.drain()
            finally:
                source.close()
                self._pool = None


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """A batch allocates millions of short-lived objects and no reference cycles; the cyclic
    collector would rescan them over and over (measured: ~2x slower decoding). It is off while
    batches run; a stream's loop collects between batches instead (`RunLoop._account`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_sources(
    sources: Iterable[Source],
    committer_for: Callable[[Source], Committer],
    settings: Settings,
    registry: ContractRegistry,
    writer: str,
    result: IngestResult,
    observer: LoopObserver | None = None,
    progress: Progress | None = None,
) -> None:
    """Every source in turn, through one pool of analysing processes, into `result` (also
    what was counted before a failure, which then propagates)."""
    with no_cyclic_gc(), Analyser(registry, settings.ingest_workers, settings.time_window) as pool:
        for source in sources:
            logs.event(log, "source_started", source=source.description, writer=writer)
            loop = RunLoop(source, pool, committer_for(source), writer, observer, progress)
            try:
                loop.run(settings.batch_size)
            finally:
                result.counts.add(loop.totals)
                result.batches += loop.batches
                result.dead_lettered += loop.dead_lettered
                result.busy_seconds = max(result.busy_seconds, loop.busy_seconds)
