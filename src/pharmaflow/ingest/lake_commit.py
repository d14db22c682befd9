"""Ingest's commit: a batch's parts through the lake's sinks, then its manifest, the one point
from which the batch exists.

Other writers may land the same events at the same time (file ingests of overlapping files;
Kafka workers after a rebalance). Before a batch is written, and again under the lake's commit
lock before its manifest, events they committed meanwhile are taken out of it and counted as
duplicates (`lake.commits`, `LandedElsewhere`). A batch another writer committed first (same
lines, same batch id) is counted as replayed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from pharmaflow.ingest.analyse import Analysis
from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.dedupe import DedupeIndex
from pharmaflow.ingest.landing import Landing
from pharmaflow.ingest.phi.protect import Protector
from pharmaflow.ingest.sinks.base import Sink
from pharmaflow.ingest.sources.base import RawBatch
from pharmaflow.ingest.steps import EventSteps
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.event_index import LandedElsewhere, event_dates
from pharmaflow.lake.writers import FILE_WRITER, writer_of

log = logging.getLogger(__name__)


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

    def committed(self, batch: RawBatch) -> BatchCounts | None:
        if not self.commits.is_committed(batch.batch_id):
            return None
        log.info("batch %s already committed; skipped", batch.batch_id)
        return BatchCounts.from_manifest(self.commits.manifest(batch.batch_id))

    @property
    def side_sinks(self) -> list[Sink]:
        if self._side is None:
            sink = self._letters()
            self._side = [] if sink is None else [sink]
        return self._side

    def prepare(self, batch: RawBatch, analysis: Analysis) -> Landing:
        return self.steps.prepare(
            batch, analysis, self.dedupe, self.protector, dead_letters=bool(self.side_sinks)
        )

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
                log.info("batch %s committed by another writer; skipped", batch.batch_id)
                if shared:
                    self.commits.end(batch.batch_id)
                return landing.replayed()
            if shared:
                swept = self.commits.begin(batch.batch_id, landing.ingest_time)
                if swept:
                    log.warning(
                        "batch %s: removed %d parts a dead writer of it left",
                        batch.batch_id,
                        len(swept),
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
                    log.info(
                        "batch %s: %d events landed meanwhile by another writer; rewritten",
                        batch.batch_id,
                        before - landing.counts.landed,
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
        log.info(
            "batch %s committed %s reasons=%s", batch.batch_id, counts, dict(landing.counts.reasons)
        )


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
