"""Ingest's commit: a batch's parts through the lake's sinks, then its manifest, the one point
from which the batch exists.

Other writers may land the same events at the same time (file ingests of overlapping files;
Kafka workers after a rebalance). Before a batch is written, and again under the lake's commit
lock before its manifest, events they committed meanwhile are taken out of it and counted as
duplicates (`lake.commits`, `LandedElsewhere`). A batch another writer committed first (same
lines, same batch id) is counted as replayed.

Each committed batch logs one `batch_committed` line (its counts, and the distinct trace ids of
the events it landed: the first `TRACE_IDS_LOGGED` plus how many there were), then one
`event_quarantined` line per rejected event (event id, type, trace id, reason code: never a
value of the event), at most `QUARANTINE_LINES` of them and one `quarantine_unlisted` summary
for the rest. Ids are written only when they look like identifiers (`identifiers_only`): a
rejected event's envelope is untrusted, and an id field may hold anything.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow import logs
from pharmaflow.ingest.analyse import Analysis
from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.dedupe import DedupeIndex
from pharmaflow.ingest.landing import Landing
from pharmaflow.ingest.phi.identifiers import identifiers_only
from pharmaflow.ingest.phi.protect import Protector
from pharmaflow.ingest.sinks.base import Sink
from pharmaflow.ingest.sources.base import RawBatch
from pharmaflow.ingest.steps import EventSteps
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.event_index import LandedElsewhere, event_dates
from pharmaflow.lake.writers import FILE_WRITER, writer_of

log = logging.getLogger(__name__)

TRACE_IDS_LOGGED = 20  # distinct event trace ids listed per batch line
QUARANTINE_LINES = 100  # rejected events logged one by one per batch; the rest are counted


class LakeCommitter:
    """The ingest `Committer` of the run loop for one source: `part_sinks` write files named
    for the batch (bronze, quarantine, vault); `letters` gives the source's dead-letter sink, if
    it has one (asked once, after the source is attached), which sends before the manifest."""

    def __init__(
        self,
        commits: CommitLog,
        steps: EventSteps,
        dedupe: DedupeIndex,
        protector: Protector,
        elsewhere: LandedElsewhere,
        part_sinks: list[Sink],
        letters: Callable[[], Sink | None],
        root: Path,
    ) -> None:
        self.commits = commits
        self.steps = steps
        self.dedupe = dedupe
        self.protector = protector
        self.elsewhere = elsewhere
        self.part_sinks = part_sinks
        self._letters = letters
        self._side: list[Sink] | None = None
        self.root = root
        # batch id -> trace ids of its first rejected events, from `prepare` (the loop's
        # thread) to `commit` (the writer thread): the landing carries no rejected trace ids.
        self._reject_traces: dict[str, list[str | None]] = {}

    def committed(self, batch: RawBatch) -> BatchCounts | None:
        if not self.commits.is_committed(batch.batch_id):
            return None
        logs.event(log, "batch_skipped", batch_id=batch.batch_id, why="already_committed")
        return BatchCounts.from_manifest(self.commits.manifest(batch.batch_id))

    @property
    def side_sinks(self) -> list[Sink]:
        if self._side is None:
            sink = self._letters()
            self._side = [] if sink is None else [sink]
        return self._side

    def prepare(self, batch: RawBatch, analysis: Analysis) -> Landing:
        landing = self.steps.prepare(
            batch, analysis, self.dedupe, self.protector, dead_letters=bool(self.side_sinks)
        )
        if landing.quarantine is not None:
            self._reject_traces[batch.batch_id] = _rejected_trace_ids(analysis)
        return landing

    def settled(self, landing: Landing) -> None:
        self.dedupe.release(landing.dedupe_gen)
        if landing.elsewhere is not None and landing.elsewhere.num_rows:
            found = landing.elsewhere
            self.dedupe.remember(found["event_id"], found["event_hour"].to_numpy())

    def refresh(self, partitions: list[tuple[str, int]]) -> None:
        """Other writers' batches, whichever partitions they hold: the lake is read whole."""
        self.commits.refresh()
        self.dedupe.load()

    def release(self, partitions: list[tuple[str, int]]) -> None:
        """Nothing is kept per partition."""

    def landed_offsets(self) -> dict[tuple[str, str, int], int]:
        return self.commits.landed_offsets()

    def commit(self, batch: RawBatch, landing: Landing) -> Landing:
        """Write every part of the batch, then its manifest: the batch exists from then on.

        Other writers may be landing the same events. Before writing, events they committed
        since the last look are taken out (in memory, cheap); under the lake's commit lock,
        events committed while this batch was being written are taken out too (rewriting its
        parts: rare), and only then is the manifest written. The claim keeps a second writer of
        the same lines (same batch id) from writing over this one's parts; it finds the batch
        committed and counts it replayed.

        Dead letters go out before the manifest: a crash in between re-sends them on replay
        (at least once; each carries its source topic/partition/offset to tell repeats)."""
        shared = writer_of(batch.batch_id) == FILE_WRITER  # content-named: others make it too
        with self.commits.claim(batch.batch_id):
            if self.commits.has_manifest(batch.batch_id):
                self._reject_traces.pop(batch.batch_id, None)
                logs.event(
                    log, "batch_skipped", batch_id=batch.batch_id, why="committed_by_another_writer"
                )
                if shared:
                    self.commits.end(batch.batch_id)
                return landing.replayed()
            if shared:
                swept = self.commits.begin(batch.batch_id, landing.ingest_time)
                if swept:
                    logs.event(
                        log,
                        "batch_debris_removed",
                        level=logging.WARNING,
                        batch_id=batch.batch_id,
                        parts=len(swept),
                    )
            dates = event_dates(landing.landed_hours)
            seen = self.elsewhere.poll(dates, locked=False)
            landing = landing.without(pa.concat_tables([self.elsewhere.recent, seen]))
            files = self._write_parts(batch, landing)
            for sink in self.side_sinks:
                sink.write(batch, landing)
            for sink in self.side_sinks:
                sink.flush()
            _test_pause()
            with self.commits.lock():
                late = self.elsewhere.poll(dates, locked=True)
                before = landing.counts.landed
                landing = landing.without(late)
                if landing.counts.landed != before:
                    logs.event(
                        log,
                        "batch_rewritten",
                        batch_id=batch.batch_id,
                        landed_elsewhere=before - landing.counts.landed,
                    )
                    written = self._write_parts(batch, landing)
                    for path in set(files) - set(written):
                        path.unlink(missing_ok=True)
                    files = written
                self._commit(batch, landing, files)
            if shared:
                self.commits.end(batch.batch_id)
        found = pa.concat_tables([seen, late])
        self.elsewhere.recent = found
        return replace(landing, elsewhere=found)

    def _write_parts(self, batch: RawBatch, landing: Landing) -> list[Path]:
        """Every data part of the batch (none is visible to readers before the manifest)."""
        files: list[Path] = []
        for sink in self.part_sinks:
            files += sink.write(batch, landing)
        for sink in self.part_sinks:
            sink.flush()
        return files

    def _commit(self, batch: RawBatch, landing: Landing, files: list[Path]) -> None:
        counts = landing.counts.manifest()
        self.commits.commit(
            batch.batch_id,
            {
                "source": batch.source,
                "source_uri": batch.source_uri,
                "first_offset": landing.first_offset,
                "last_offset": landing.last_offset,
                "ingest_time": landing.ingest_time.isoformat(),
                "counts": counts,
                "quarantine_reasons": dict(landing.counts.reasons),
                "files": [str(_relative(p, self.root)) for p in files],
                **({"offsets": batch.offset_ranges} if batch.offset_ranges else {}),
            },
        )
        self._log_committed(batch, landing, counts)

    def _log_committed(self, batch: RawBatch, landing: Landing, counts: dict[str, int]) -> None:
        """The batch's line, then its rejected events' (see the module docstring)."""
        traces = _distinct_trace_ids(landing.bronze)
        logs.event(
            log,
            "batch_committed",
            batch_id=batch.batch_id,
            source=batch.source,
            counts=counts,
            quarantine_reasons=dict(sorted(landing.counts.reasons.items())),
            event_trace_ids=traces.slice(0, TRACE_IDS_LOGGED).to_pylist(),
            event_trace_ids_distinct=len(traces),
        )
        rejected_traces = self._reject_traces.pop(batch.batch_id, [])
        quarantine = landing.quarantine
        if quarantine is None or not log.isEnabledFor(logging.INFO):
            return
        listed = quarantine.slice(0, QUARANTINE_LINES)
        dead_lettered = bool(landing.dead_letters)
        rows = zip(
            listed["event_id"].to_pylist(),
            listed["event_type"].to_pylist(),
            listed["reason_code"].to_pylist(),
            rejected_traces + [None] * (listed.num_rows - len(rejected_traces)),
            strict=False,
        )
        for event_id, event_type, reason, trace_id in rows:
            logs.event(
                log,
                "event_quarantined",
                batch_id=batch.batch_id,
                event_id=event_id,
                event_type=event_type,
                event_trace_id=trace_id,
                reason_code=reason,
                dead_lettered=dead_lettered,
            )
        if quarantine.num_rows > listed.num_rows:
            rest = quarantine["reason_code"].slice(listed.num_rows)
            unlisted = pc.value_counts(rest)
            logs.event(
                log,
                "quarantine_unlisted",
                batch_id=batch.batch_id,
                unlisted=len(rest),
                reasons=dict(
                    zip(
                        unlisted.field("values").to_pylist(),
                        unlisted.field("counts").to_pylist(),
                        strict=True,
                    )
                ),
                dead_lettered=dead_lettered,
            )


def _distinct_trace_ids(bronze: pa.Table) -> pa.Array:
    """The distinct trace ids of a batch's landed events, in order of first appearance
    (vectorised: one hash pass over the column, no per-event Python)."""
    if "trace_id" not in bronze.column_names or not bronze.num_rows:
        return pa.array([], pa.string())
    distinct = pc.unique(bronze["trace_id"])
    return identifiers_only(distinct, None).drop_null()


def _rejected_trace_ids(analysis: Analysis) -> list[str | None]:
    """The trace ids of the first `QUARANTINE_LINES` rejected events (quarantine's row
    order), each only where it looks like an identifier."""
    rows = np.flatnonzero(~analysis.rejects.ok)[:QUARANTINE_LINES]
    column = analysis.envelope.get("trace_id")
    if column is None:
        return [None] * rows.size
    return identifiers_only(column.take(pa.array(rows, pa.int64())), None).to_pylist()


def _test_pause() -> None:
    """Tests only: wait between writing a batch's parts and committing it, so that concurrent
    writers' batches are in flight together (`PHARMAFLOW_TEST_COMMIT_PAUSE`, seconds)."""
    pause = os.environ.get("PHARMAFLOW_TEST_COMMIT_PAUSE")
    if pause:
        time.sleep(float(pause))


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path
