"""The run loop's ordering: what makes a crash at any point lose and double nothing.

A fake source and committer record every call in one log; the loop is the real one, with its
real writer thread. Each test states one rule of `pharmaflow.ingest.runloop`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.landing import Landing
from pharmaflow.ingest.runloop import RunLoop
from pharmaflow.ingest.sources.base import RawBatch, Source, SourceContext


def _batch(n: int, records: int = 3) -> RawBatch:
    return RawBatch(
        batch_id=f"b{n}",
        source="test",
        source_uri="test://",
        records=[b"{}"] * records,
        offsets=np.arange(records, dtype=np.int64),
    )


TICK = RawBatch(batch_id="", source="test", source_uri="", records=[])


class FakeSource(Source):
    description = "fake"

    def __init__(self, log: list[str], batches: list[RawBatch]) -> None:
        self.log = log
        self.items = batches
        self.ctx: SourceContext | None = None
        self.closed = False

    def attach(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.log.append("attach")

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        for batch in self.items:
            self.log.append(f"hand {batch.batch_id or 'tick'}")
            yield batch

    def ack(self, batch: RawBatch) -> None:
        self.log.append(f"ack {batch.batch_id}")

    def close(self) -> None:
        self.closed = True
        self.log.append("close")


class InlineAnalyser:
    """Analysis done at once (the real one runs in processes; ordering is the loop's)."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers

    def submit(self, batch: RawBatch) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(batch.batch_id)
        return future


def _landing(records: int) -> Landing:
    return Landing(
        ingest_time=datetime.now(UTC),
        bronze=pa.table({"x": pa.array([], pa.int64())}),
        quarantine=None,
        patients=pa.table({}),
        name_tokens=pa.table({}),
        counts=BatchCounts(records=records, landed=records),
        first_offset=0,
        last_offset=records - 1,
        landed_ids=pa.array([], pa.string()),
        landed_hours=np.zeros(0, np.int64),
        dedupe_gen=0,
        dead_letters=None,
    )


class FakeCommitter:
    def __init__(
        self, log: list[str], done: set[str] | None = None, fail: str | None = None
    ) -> None:
        self.log = log
        self.done = set() if done is None else done
        self.fail = fail
        self.threads: set[str] = set()

    def committed(self, batch: RawBatch) -> BatchCounts | None:
        if batch.batch_id in self.done:
            return BatchCounts(records=len(batch.records or []))
        return None

    def prepare(self, batch: RawBatch, analysis: Any) -> Landing:
        self.log.append(f"prepare {batch.batch_id}")
        return _landing(len(batch.records or []))

    def commit(self, batch: RawBatch, landing: Landing) -> Landing:
        self.threads.add(threading.current_thread().name)
        self.log.append(f"commit {batch.batch_id}")
        if batch.batch_id == self.fail:
            raise OSError("disk gone")
        self.done.add(batch.batch_id)
        self.log.append(f"committed {batch.batch_id}")
        return landing

    def settled(self, landing: Landing) -> None:
        self.log.append("settled")

    def refresh(self, partitions: list[tuple[str, int]]) -> None:
        self.log.append("refresh")

    def release(self, partitions: list[tuple[str, int]]) -> None:
        self.log.append("release")

    def landed_offsets(self) -> dict[tuple[str, str, int], int]:
        return {}


def _run(batches: list[RawBatch], committer_kw: dict[str, Any] | None = None, workers: int = 2):
    log: list[str] = []
    source = FakeSource(log, batches)
    committer = FakeCommitter(log, **(committer_kw or {}))
    loop = RunLoop(source, InlineAnalyser(workers), committer, "w0")
    return log, source, committer, loop


def _only(log: list[str], *prefixes: str) -> list[str]:
    return [e for e in log if e.startswith(prefixes)]


def test_batches_commit_and_ack_in_source_order_each_ack_after_its_commit() -> None:
    log, source, committer, loop = _run([_batch(i) for i in range(6)])
    loop.run(100)
    assert _only(log, "commit ") == [f"commit b{i}" for i in range(6)]
    assert _only(log, "ack") == [f"ack b{i}" for i in range(6)]
    for i in range(6):
        assert log.index(f"committed b{i}") < log.index(f"ack b{i}")
        if i:  # a batch is committed only once the previous one is acknowledged
            assert log.index(f"ack b{i - 1}") < log.index(f"commit b{i}")
    assert committer.threads == {next(iter(committer.threads))}  # one writer thread
    assert next(iter(committer.threads)).startswith("pharmaflow-writer")
    assert loop.totals.records == 18 and loop.totals.conserved
    assert loop.batches == 6
    assert source.closed and log[0] == "attach"


def test_the_next_batch_is_prepared_while_the_previous_one_commits() -> None:
    """Pipelining: prepare(n+1) comes before ack(n) — but never commit(n+1)."""
    log, *_rest, loop = _run([_batch(i) for i in range(3)])
    loop.run(100)
    assert log.index("prepare b1") < log.index("ack b0")


def test_a_failed_commit_fails_the_run_and_nothing_from_it_on_is_acknowledged() -> None:
    log, source, _committer, loop = _run([_batch(i) for i in range(5)], {"fail": "b2"})
    with pytest.raises(OSError, match="disk gone"):
        loop.run(100)
    acks = _only(log, "ack")
    assert acks == ["ack b0", "ack b1"]
    assert "commit b3" not in log  # never started past the failure
    assert source.closed  # the source is closed on failure too
    assert loop.totals.records == 6


def test_a_rerun_after_the_failure_replays_the_committed_and_commits_the_rest_once() -> None:
    done: set[str] = set()
    log, *_rest, loop = _run([_batch(i) for i in range(5)], {"fail": "b2", "done": done})
    with pytest.raises(OSError):
        loop.run(100)
    log, _source, _committer, loop = _run([_batch(i) for i in range(5)], {"done": done})
    loop.run(100)
    assert _only(log, "commit ") == ["commit b2", "commit b3", "commit b4"]
    assert _only(log, "prepare") == ["prepare b2", "prepare b3", "prepare b4"]
    assert _only(log, "ack") == [f"ack b{i}" for i in range(5)]
    assert loop.totals.replayed == 6 and loop.totals.landed == 9
    assert loop.totals.records == 15 and loop.totals.conserved


def test_a_tick_lands_everything_handed_over_before_the_next_batch() -> None:
    batches = [_batch(0), _batch(1), TICK, _batch(2)]
    log, *_rest, loop = _run(batches, workers=8)  # a deep pipeline: nothing would wait
    loop.run(100)
    assert log.index("ack b1") < log.index("hand b2")
    assert not any(e == "ack " for e in log)  # a tick is never acknowledged


def test_drain_from_the_source_commits_what_was_handed_over() -> None:
    """What a Kafka source does on a rebalance, before it gives partitions up."""
    log: list[str] = []

    class Rebalancing(FakeSource):
        def batches(self, batch_size: int) -> Iterator[RawBatch]:
            yield _batch(0)
            yield _batch(1)
            assert self.ctx is not None
            self.ctx.drain()
            self.log.append("revoked")
            yield _batch(2)

    source = Rebalancing(log, [])
    loop = RunLoop(source, InlineAnalyser(8), FakeCommitter(log), "w0")
    loop.run(100)
    assert log.index("ack b1") < log.index("revoked") < log.index("ack b2")


def test_records_the_source_recognised_as_committed_are_counted_replayed() -> None:
    partly = _batch(0)
    partly.replayed = 4
    only_replayed = RawBatch(
        batch_id="b1", source="test", source_uri="", records=[], replayed=5, offset_ranges=[[1]]
    )
    log, *_rest, loop = _run([partly, only_replayed])
    loop.run(100)
    assert loop.totals.records == 3 + 4 + 5
    assert loop.totals.replayed == 9 and loop.totals.conserved
    assert _only(log, "ack") == ["ack b0", "ack b1"]
    assert "prepare b1" not in log
