"""The ingest engine: sources in, committed bronze/quarantine/vault parts out.

Per batch: decode → validate (envelope, contract) → dedupe → protect PHI (`steps.py`) → the
lake's sinks (`sinks/`), then one atomic commit (`lake_commit.py`), in the order and with the
guarantees of the run loop (`runloop.py`). Every record ends in exactly one bucket — landed,
duplicate or quarantined — or, when the batch was committed by an earlier run (or, the same
lines, by another writer), is counted as replayed and skipped. So `input == landed +
duplicates + quarantined + replayed` holds for every run, and is checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from pharmaflow import logs, tracing
from pharmaflow.config import Settings
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.dedupe import DedupeIndex
from pharmaflow.ingest.lake_commit import LakeCommitter
from pharmaflow.ingest.metrics import IngestMetrics
from pharmaflow.ingest.phi.keyring import load_keys
from pharmaflow.ingest.phi.protect import Protector
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.phi.vault import PhiVault
from pharmaflow.ingest.runloop import Progress, run_sources
from pharmaflow.ingest.sinks.base import Sink
from pharmaflow.ingest.sinks.lake import BronzeSink, QuarantineSink, VaultSink
from pharmaflow.ingest.sources.base import Source
from pharmaflow.ingest.steps import EventSteps
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.event_index import EventIndex, LandedElsewhere
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.lake.writers import FILE_WRITER, SharedWriterLock, WriterLock

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """A run's counts (`BatchCounts`, conserved) and what the run did besides."""

    counts: BatchCounts = field(default_factory=BatchCounts)
    batches: int = 0
    recovered_files: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    # From the first batch handed over to the last one committed: the throughput window of a
    # stream, without start-up (consumer group join) or idle waiting at the end.
    busy_seconds: float = 0.0

    # The counts by their public names (CLI output, `--json`, worker results).
    input = property(lambda self: self.counts.records)
    landed = property(lambda self: self.counts.landed)
    duplicates = property(lambda self: self.counts.duplicates)
    quarantined = property(lambda self: self.counts.quarantined)
    replayed = property(lambda self: self.counts.replayed)
    blank_lines = property(lambda self: self.counts.blank)
    undeclared_stripped = property(lambda self: self.counts.undeclared_stripped)
    quarantine_reasons = property(lambda self: self.counts.reasons)
    landed_by_type = property(lambda self: self.counts.landed_types)

    @property
    def conserved(self) -> bool:
        return self.counts.conserved

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestResult:
        counts = BatchCounts.from_dict(
            {**data, "records": data.get("input", 0), "blank": data.get("blank_lines", 0)}
        )
        # every other field (a subclass's too) by its own name, where the data has it
        rest = {f.name: data[f.name] for f in fields(cls) if f.name != "counts" and f.name in data}
        return cls(counts=counts, **rest)

    def merge(self, other: IngestResult) -> None:
        """Add another worker's result (times: the longest)."""
        self.counts.add(other.counts)
        self.batches += other.batches
        self.recovered_files += other.recovered_files
        self.dead_lettered += other.dead_lettered
        self.seconds = max(self.seconds, other.seconds)
        self.busy_seconds = max(self.busy_seconds, other.busy_seconds)

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "input": c.records,
            "landed": c.landed,
            "duplicates": c.duplicates,
            "quarantined": c.quarantined,
            "replayed": c.replayed,
            "blank_lines": c.blank,
            "undeclared_stripped": c.undeclared_stripped,
            "batches": self.batches,
            "recovered_files": self.recovered_files,
            "dead_lettered": self.dead_lettered,
            "quarantine_reasons": dict(sorted(c.reasons.items())),
            "landed_by_type": dict(sorted(c.landed_types.items())),
            "seconds": self.seconds,
            "busy_seconds": self.busy_seconds,
            "conserved": self.conserved,
        }


class IngestEngine:
    def __init__(
        self,
        settings: Settings,
        registry: ContractRegistry | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = registry or default_registry()
        self.layout = LakeLayout(settings.lake_dir)
        # Checked against the data dir's key fingerprints; held (a lease) while this engine
        # lives, so `keys rotate` cannot run beside it.
        self.keys = load_keys(settings)
        self.vault = PhiVault(settings.vault_dir, self.keys.vault.value)
        self.tokenizer = Tokenizer(self.keys.hmac.value)
        self.steps = EventSteps(self.registry, self.vault.sealer)
        self.event_index = EventIndex(self.layout)
        self.commits = CommitLog(
            self.layout,
            [self.vault.patients_dir, self.vault.name_tokens_dir, self.layout.event_ids],
        )
        self.sinks: list[Sink] = [
            BronzeSink(self.layout, self.event_index),
            QuarantineSink(self.layout),
            VaultSink(self.vault),
        ]

    def run(
        self,
        sources: Iterable[Source],
        progress: Progress | None = None,
        writer: str = FILE_WRITER,
    ) -> IngestResult:
        """Land every source in turn. `writer` names this process among the lake's writers:
        it is locked for the run, and recovery removes only its own or dead writers' debris.
        File ingests share the file writer (their batches are content-named): any number may
        run at once.

        Every line the run logs carries its trace id and writer (`logs.bind`): the caller's
        trace when one is bound (a build or a demo that ingests), else a fresh one."""
        trace_id = logs.current_trace_id() or tracing.new_trace_id()
        with logs.bind(trace_id=trace_id, writer=writer):
            if writer == FILE_WRITER:
                with SharedWriterLock(self.settings.lake_dir, writer) as shared:
                    return self._run(sources, progress, writer, shared)
            with WriterLock(self.settings.lake_dir, writer):
                return self._run(sources, progress, writer, None)

    def _run(
        self,
        sources: Iterable[Source],
        progress: Progress | None,
        writer: str,
        shared: SharedWriterLock | None,
    ) -> IngestResult:
        started = time.perf_counter()
        result = IngestResult()
        elsewhere = LandedElsewhere(self.commits, self.event_index, self.settings.root)
        removed = self.commits.recover(writer, alone=shared is None or shared.alone)
        if shared is not None:
            shared.share()
        result.recovered_files = len(removed)
        if removed:
            logs.event(log, "recovery_removed_files", level=logging.WARNING, files=len(removed))
        dedupe = DedupeIndex(
            self.event_index, self.commits.is_committed, self.settings.dedupe_ttl_hours
        )
        protector = Protector(self.tokenizer, self.vault.sealer, self.vault.load_name_tokens())

        def committer_for(source: Source) -> LakeCommitter:
            return LakeCommitter(
                self.commits,
                self.steps,
                dedupe,
                protector,
                elsewhere,
                self.sinks,
                source.dead_letter_sink,
                self.settings.root,
            )

        run_sources(
            sources,
            committer_for,
            self.settings,
            self.registry,
            writer,
            result,
            self.metrics,
            progress,
        )
        result.seconds = time.perf_counter() - started
        if not result.conserved:  # a bug, never bad input: fail loudly
            raise AssertionError(f"ingest lost or doubled events: {result.to_dict()}")
        logs.event(log, "ingest_done", **result.to_dict())
        return result
