"""The ingest engine: raw batches in, committed bronze/quarantine/vault parts out.

Per batch: decode → validate (envelope, contract) → dedupe → protect PHI → route, then one
atomic commit. Every record ends in exactly one bucket — landed, duplicate or quarantined — or,
when the batch was committed by an earlier run (or, the same lines, by another writer), is
counted as replayed and skipped. So `input == landed + duplicates + quarantined + replayed`
holds for every run, and is checked.

Other writers may land the same events at the same time. Before a batch is written, and again
under the lake's commit lock before its manifest, events they committed meanwhile are taken
out of it and counted as duplicates (`lake.commits`, `LandedElsewhere`).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow.config import Settings
from pharmaflow.contracts.model import Contract
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.analyse import Analyser, Analysis
from pharmaflow.ingest.dedupe import DedupeIndex, event_hours
from pharmaflow.ingest.metrics import IngestMetrics
from pharmaflow.ingest.phi.identifiers import identifiers_only
from pharmaflow.ingest.phi.keyring import load_keys
from pharmaflow.ingest.phi.protect import ProtectedBatch, Protector
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.phi.vault import PhiVault
from pharmaflow.ingest.sources.base import DeadLetter, RawBatch, Source, SourceContext
from pharmaflow.lake.bronze import BRONZE_SCHEMA, write_bronze
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.event_index import EventIndex, LandedElsewhere, event_dates
from pharmaflow.lake.files import write_parquet_atomic
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.lake.quarantine import QUARANTINE_SCHEMA
from pharmaflow.lake.writers import FILE_WRITER, SharedWriterLock, WriterLock, writer_of

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class IngestResult:
    input: int = 0
    landed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    replayed: int = 0
    blank_lines: int = 0
    undeclared_stripped: int = 0
    batches: int = 0
    recovered_files: int = 0
    dead_lettered: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    landed_by_type: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    # From the first batch handed over to the last one committed: the throughput window of a
    # stream, without start-up (consumer group join) or idle waiting at the end.
    busy_seconds: float = 0.0

    @property
    def conserved(self) -> bool:
        return self.input == self.landed + self.duplicates + self.quarantined + self.replayed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("quarantine_reasons", "landed_by_type"):
            known[name] = Counter(known.get(name, {}))
        return cls(**known)

    def merge(self, other: IngestResult) -> None:
        """Add another worker's result (times: the longest)."""
        for name in self.__dataclass_fields__:
            value = getattr(other, name)
            if name in ("seconds", "busy_seconds"):
                setattr(self, name, max(getattr(self, name), value))
            elif isinstance(value, dict):
                getattr(self, name).update(value)
            else:
                setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["quarantine_reasons"] = dict(sorted(self.quarantine_reasons.items()))
        out["landed_by_type"] = dict(sorted(self.landed_by_type.items()))
        out["conserved"] = self.conserved
        return out


@dataclass
class Landing:
    """One batch, ready to write: its tables and its counts."""

    ingest_time: datetime
    bronze: pa.Table
    quarantine: pa.Table | None
    patients: pa.Table
    name_tokens: pa.Table
    records: int
    blank: int
    landed: int
    duplicates: int
    quarantined: int
    undeclared_stripped: int
    reasons: Counter[str]
    landed_types: Counter[str]
    first_offset: int
    last_offset: int
    landed_ids: pa.Array
    landed_hours: np.ndarray
    dedupe_gen: int
    duplicate_types: Counter[str]
    quarantined_types: Counter[tuple[str, str]]
    dead_letters: list[DeadLetter] | None
    # Another writer committed this very batch (same lines) first: all of it is replayed.
    replayed: int = 0
    # (event_id, event_hour) other writers landed, found while committing: for the dedupe.
    elsewhere: pa.Table | None = None

    def add_to(self, result: IngestResult) -> None:
        result.batches += 1
        result.input += self.records
        result.replayed += self.replayed
        result.dead_lettered += len(self.dead_letters or ())
        result.blank_lines += self.blank
        result.landed += self.landed
        result.duplicates += self.duplicates
        result.quarantined += self.quarantined
        result.undeclared_stripped += self.undeclared_stripped
        result.quarantine_reasons.update(self.reasons)
        result.landed_by_type.update(self.landed_types)


def _check_protectable(contract: Contract) -> None:
    """Fail closed: refuse a contract whose PHI fields this protector does not know how to treat."""
    for spec in contract.phi_fields:
        # free text anywhere in the payload (nested records, lists of strings) is scrubbed
        free_text = spec.phi == "free_text" and spec.path.startswith("payload.")
        patient = spec.phi != "free_text" and spec.path.startswith("payload.patient.")
        if not (free_text or patient):
            raise PharmaflowError(
                f"{contract.event_type} v{contract.version}: PHI field {spec.path} "
                f"({spec.phi}) has no protection rule"
            )


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
        for contract in self.registry:
            _check_protectable(contract)
        self.layout = LakeLayout(settings.lake_dir)
        # Checked against the data dir's key fingerprints; held (a lease) while this engine
        # lives, so `keys rotate` cannot run beside it.
        self.keys = load_keys(settings)
        self.vault = PhiVault(settings.vault_dir, self.keys.vault.value)
        self.tokenizer = Tokenizer(self.keys.hmac.value)
        self.event_index = EventIndex(self.layout)
        self.commits = CommitLog(
            self.layout,
            [self.vault.patients_dir, self.vault.name_tokens_dir, self.layout.event_ids],
        )

    def run(
        self,
        sources: Iterable[Source],
        progress: Progress | None = None,
        writer: str = FILE_WRITER,
    ) -> IngestResult:
        """Land every source in turn. `writer` names this process among the lake's writers:
        it is locked for the run, and recovery removes only its own or dead writers' debris.
        File ingests share the file writer (their batches are content-named): any number may
        run at once."""
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
            log.warning("recovery removed %d files of uncommitted batches", len(removed))
        dedupe = DedupeIndex(
            self.event_index, self.commits.is_committed, self.settings.dedupe_ttl_hours
        )
        protector = Protector(self.tokenizer, self.vault.sealer, self.vault.load_name_tokens())
        # A batch allocates millions of short-lived objects and no reference cycles; the cyclic
        # collector would rescan them over and over (measured: ~2x slower decoding).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with Analyser(
                self.registry, self.settings.ingest_workers, self.settings.time_window
            ) as analyser:
                for source in sources:
                    log.info("ingest start source=%s writer=%s", source.description, writer)
                    self._run_source(
                        source, analyser, dedupe, protector, result, progress, writer, elsewhere
                    )
        finally:
            if gc_was_enabled:
                gc.enable()
        result.seconds = time.perf_counter() - started
        if not result.conserved:  # a bug, never bad input: fail loudly
            raise AssertionError(f"ingest lost or doubled events: {result.to_dict()}")
        log.info("ingest done %s", orjson.dumps(result.to_dict()).decode())
        return result

    def _run_source(
        self,
        source: Source,
        analyser: Analyser,
        dedupe: DedupeIndex,
        protector: Protector,
        result: IngestResult,
        progress: Progress | None,
        writer: str,
        elsewhere: LandedElsewhere,
    ) -> None:
        """Three stages overlap: workers analyse the next batches, this process lands the
        current one (dedupe, PHI, tables), a writer thread writes and commits the previous one.
        Batches are landed and committed strictly in source order: the first arrival of an
        event id must win, and a source's bookmark (ack) must only ever move forward."""
        in_flight: deque[tuple[RawBatch, Future[Analysis] | None, float]] = deque()
        committing: list[tuple[RawBatch, Future[Landing], float]] = []
        first_at: list[float] = []

        def account(batch: RawBatch, records: int, handed_at: float) -> None:
            result.input += batch.replayed
            result.replayed += batch.replayed
            source.ack(batch)
            if self.metrics is not None:
                self.metrics.replayed.inc(batch.replayed)
                self.metrics.batch_seconds.observe(time.perf_counter() - handed_at)
            if batch.offset_ranges:
                # The cyclic collector is off while batches run (see `_run`); a stream never
                # ends, so whatever cycles its batches leave are collected here, between them.
                gc.collect()
            result.busy_seconds = time.perf_counter() - first_at[0]
            if progress:
                progress(records + batch.replayed)

        def settle() -> None:
            """Wait for the batch being written; count it, acknowledge it to the source."""
            if committing:
                batch, future, handed_at = committing.pop()
                landing = future.result()
                landing.add_to(result)
                dedupe.release(landing.dedupe_gen)
                if landing.elsewhere is not None and landing.elsewhere.num_rows:
                    found = landing.elsewhere
                    dedupe.remember(found["event_id"], found["event_hour"].to_numpy())
                if self.metrics is not None:
                    self.metrics.count(
                        landing.landed_types, landing.duplicate_types, landing.quarantined_types
                    )
                    self.metrics.replayed.inc(landing.replayed)
                account(batch, landing.records, handed_at)

        def finish(writer_pool: ThreadPoolExecutor) -> None:
            batch, future, handed_at = in_flight.popleft()
            if batch.empty:  # every record of it landed before
                settle()
                account(batch, 0, handed_at)
                return
            if future is None:
                settle()
                counts = self.commits.manifest(batch.batch_id)["counts"]
                result.input += counts["records"]
                result.replayed += counts["records"]
                result.blank_lines += counts.get("blank", 0)
                log.info("batch %s already committed; skipped", batch.batch_id)
                account(batch, counts["records"], handed_at)
                return
            landing = self._prepare(batch, future.result(), dedupe, protector, source)
            settle()
            written = writer_pool.submit(self._write_and_commit, batch, landing, source, elsewhere)
            committing.append((batch, written, handed_at))

        with ThreadPoolExecutor(1, thread_name_prefix="pharmaflow-writer") as writer_pool:

            def drain() -> None:
                while in_flight:
                    finish(writer_pool)
                settle()

            def refresh() -> None:
                self.commits.refresh()
                dedupe.load()

            attach = getattr(source, "attach", None)
            if attach is not None:
                attach(SourceContext(writer, refresh, self.commits.landed_offsets, drain))
            try:
                for batch in source.batches(self.settings.batch_size):
                    if batch.tick:
                        drain()
                        continue
                    now = time.perf_counter()
                    if not first_at:
                        first_at.append(now)
                    future = None
                    if not batch.empty and not self.commits.is_committed(batch.batch_id):
                        future = analyser.submit(batch)
                    in_flight.append((batch, future, now))
                    while len(in_flight) > analyser.workers:
                        finish(writer_pool)
                drain()
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()

    def _prepare(
        self,
        batch: RawBatch,
        analysis: Analysis,
        dedupe: DedupeIndex,
        protector: Protector,
        source: Source,
    ) -> Landing:
        """Dedupe, protect and build every table of one batch (CPU work, in this process)."""
        ingest_time = datetime.now(UTC).replace(tzinfo=None)
        rej = analysis.rejects
        env = analysis.envelope
        offsets = batch.kept_offsets(analysis.keep)
        ok_rows = np.flatnonzero(rej.ok)
        # Admitted ids are remembered at once: the next batch is prepared while this one is
        # written. If the commit fails the run fails, and the in-memory index dies with it.
        ok_take = pa.array(ok_rows)
        admitted, dedupe_gen = dedupe.admit(
            env["event_id"].take(ok_take), env["event_time"].take(ok_take)
        )
        landed = ok_rows[admitted]
        duplicate_types: Counter[str] = Counter()
        if self.metrics is not None and not admitted.all():
            duplicate_types.update(env["event_type"].take(pa.array(ok_rows[~admitted])).to_pylist())
        # Group landed rows by event type (stable: source order within a type), so the bronze
        # table splits into per-type parts by slicing rather than copying.
        types = analysis.envelope["event_type"].take(pa.array(landed)).dictionary_encode()
        codes = types.indices.to_numpy(zero_copy_only=False)
        landed = landed[np.argsort(codes, kind="stable")]
        landed_types = Counter(
            dict(zip(types.dictionary.to_pylist(), np.bincount(codes).tolist(), strict=True))
        )
        protected, rewritten = self._protect(analysis, landed, protector, batch.raw_is_json)
        bad = np.flatnonzero(~rej.ok)
        bad_raw = analysis.raw_records(batch).take(pa.array(bad, pa.int64())).to_pylist()
        keep = analysis.keep
        landed_take = pa.array(landed, pa.int64())
        wants_letters = getattr(source, "dead_letter", None) is not None
        return Landing(
            ingest_time=ingest_time,
            bronze=self._bronze_table(batch, analysis, offsets, landed, rewritten, ingest_time),
            quarantine=(
                self._quarantine_table(batch, analysis, offsets, bad, bad_raw, ingest_time)
                if bad.size
                else None
            ),
            patients=protected.patients_table(),
            name_tokens=protected.name_tokens_table(),
            records=len(analysis),
            blank=0 if keep is None else int((~keep).sum()),
            landed=int(landed.size),
            duplicates=int(ok_rows.size - landed.size),
            quarantined=int(bad.size),
            undeclared_stripped=int(np.isin(analysis.stripped, landed).sum()),
            reasons=rej.reasons(),
            landed_types=landed_types,
            first_offset=int(offsets[0]) if offsets.size else batch.first_offset,
            last_offset=int(offsets[-1]) if offsets.size else batch.first_offset,
            landed_ids=env["event_id"].take(landed_take),
            landed_hours=event_hours(env["event_time"].take(landed_take)),
            dedupe_gen=dedupe_gen,
            duplicate_types=duplicate_types,
            quarantined_types=(
                Counter(
                    zip(
                        [t or "unknown" for t in env["event_type"].take(pa.array(bad)).to_pylist()],
                        rej.code[bad].tolist(),
                        strict=True,
                    )
                )
                if self.metrics is not None and bad.size
                else Counter()
            ),
            dead_letters=(
                self._dead_letters(batch, analysis, offsets, bad, bad_raw)
                if wants_letters and bad.size
                else None
            ),
        )

    def _dead_letters(
        self,
        batch: RawBatch,
        analysis: Analysis,
        offsets: np.ndarray,
        rows: np.ndarray,
        raw: list[bytes],
    ) -> list[DeadLetter]:
        """Invalid records for the source's dead-letter topic, each value SEALED exactly like
        quarantine's `raw_encrypted` (AES-256-GCM under the vault key; header
        `value_protection`), never the clear record.

        Why the sealed original rather than a protected form plus a reference: a dead letter is
        by definition a record the engine could not read — not JSON, not an object, a broken
        envelope, a patient block of the wrong shape — so there is no trustworthy structure to
        protect field by field, and a protected form that depends on parsing what failed to parse
        would leak exactly in the odd cases. Sealing is total (every byte is covered, whatever
        the record is), lossless (a repair tool with vault access, `PhiVault.open_reject`, gets
        the record back byte for byte and can re-publish it) and the same rule as quarantine,
        so there is one way rejects are protected. The reasons (codes, field paths, rule texts,
        never values) stay readable in the headers."""
        rej = analysis.rejects
        topics, keys, partitions = batch.topics, batch.keys, batch.partitions
        assert topics is not None and keys is not None and partitions is not None
        seal = self.vault.sealer.seal
        return [
            DeadLetter(
                topic=topics[i],
                partition=int(partitions[i]),
                offset=int(offsets[i]),
                key=keys[i],
                value=seal(value),
                reason_code=str(rej.code[i]),
                reason_field=rej.field[i],
                reason_detail=str(rej.detail[i]),
            )
            for i, value in zip(rows.tolist(), raw, strict=True)
        ]

    def _write_and_commit(
        self, batch: RawBatch, landing: Landing, source: Source, elsewhere: LandedElsewhere
    ) -> Landing:
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
                return _replayed(landing)
            if shared:
                swept = self.commits.begin(batch.batch_id, landing.ingest_time)
                if swept:
                    log.warning(
                        "batch %s: removed %d parts a dead writer of it left",
                        batch.batch_id,
                        len(swept),
                    )
            dates = event_dates(landing.landed_hours)
            seen = elsewhere.poll(dates, locked=False)
            landing = _without(landing, pa.concat_tables([elsewhere.recent, seen]))
            files = self._write_parts(batch, landing)
            if landing.dead_letters:
                source.dead_letter(batch, landing.dead_letters)  # type: ignore[attr-defined]
            _test_pause()
            with self.commits.lock():
                late = elsewhere.poll(dates, locked=True)
                before = landing.landed
                landing = _without(landing, late)
                if landing.landed != before:
                    log.info(
                        "batch %s: %d events landed meanwhile by another writer; rewritten",
                        batch.batch_id,
                        before - landing.landed,
                    )
                    written = self._write_parts(batch, landing)
                    for path in set(files) - set(written):
                        path.unlink(missing_ok=True)
                    files = written
                self._commit(batch, landing, files)
            if shared:
                self.commits.end(batch.batch_id)
        found = pa.concat_tables([seen, late])
        elsewhere.recent = found
        return replace(landing, elsewhere=found)

    def _write_parts(self, batch: RawBatch, landing: Landing) -> list[Path]:
        """Every data part of the batch (none is visible to readers before the manifest)."""
        when = landing.ingest_time
        files = write_bronze(self.layout, landing.bronze, when, batch.batch_id)
        files += self.event_index.write(batch.batch_id, landing.landed_ids, landing.landed_hours)
        if landing.quarantine is not None:
            path = self.layout.quarantine_part(when, batch.batch_id)
            write_parquet_atomic(landing.quarantine, path)
            files.append(path)
        for table, directory in (
            (landing.patients, self.vault.patients_dir),
            (landing.name_tokens, self.vault.name_tokens_dir),
        ):
            if table.num_rows:
                path = directory / f"part-{batch.batch_id}.parquet"
                write_parquet_atomic(table, path)
                files.append(path)
        return files

    def _commit(self, batch: RawBatch, landing: Landing, files: list[Path]) -> None:
        counts = {
            "undeclared_stripped": landing.undeclared_stripped,
            "records": landing.records,
            "blank": landing.blank,
            "landed": landing.landed,
            "duplicates": landing.duplicates,
            "quarantined": landing.quarantined,
        }
        self.commits.commit(
            batch.batch_id,
            {
                "source": batch.source,
                "source_uri": batch.source_uri,
                "first_offset": landing.first_offset,
                "last_offset": landing.last_offset,
                "ingest_time": landing.ingest_time.isoformat(),
                "counts": counts,
                "quarantine_reasons": dict(landing.reasons),
                "files": [str(_relative(p, self.settings.root)) for p in files],
                **({"offsets": batch.offset_ranges} if batch.offset_ranges else {}),
            },
        )
        log.info("batch %s committed %s reasons=%s", batch.batch_id, counts, dict(landing.reasons))

    def _protect(
        self, validated: Analysis, landed: np.ndarray, protector: Protector, raw_is_json: bool
    ) -> tuple[ProtectedBatch, np.ndarray]:
        """Rewrite landed payloads in place: patients first (they teach the name tokens that
        free-text scrubbing needs), then free text. Returns the vault rows and, per row, whether
        the event must be re-serialised (its raw bytes may not be stored as they arrived)."""
        out = ProtectedBatch()
        n = len(validated)
        is_landed = np.zeros(n, dtype=bool)
        is_landed[landed] = True
        rewritten = np.full(n, not raw_is_json, dtype=bool)
        rewritten[validated.stripped] = True
        work: list[tuple[Contract, np.ndarray]] = []
        for (event_type, version), rows in validated.groups.items():
            rows = rows[is_landed[rows]]
            if rows.size:
                work.append((self.registry.get(event_type, version), rows))  # type: ignore[arg-type]
        env = validated.envelope
        for contract, rows in work:
            if any(f.phi != "free_text" for f in contract.phi_fields):
                take = pa.array(rows)
                protector.protect_patients(
                    [validated.docs[i]["payload"] for i in rows],
                    env["event_id"].take(take).to_pylist(),
                    env["event_time"].take(take).to_pylist(),
                    out,
                )
                rewritten[rows] = True
        for contract, rows in work:
            fields = contract.free_text_fields()
            payloads = [validated.docs[i]["payload"] for i in rows] if fields else []
            for spec in fields:
                # The path below the payload: nested records and lists of strings too.
                changed = protector.scrub_free_text(payloads, spec.path.split(".", 1)[1])
                rewritten[rows[changed]] = True
        return out, rewritten

    @staticmethod
    def _provenance(
        batch: RawBatch, offsets: np.ndarray, rows: np.ndarray, ingest_time: datetime
    ) -> dict[str, Any]:
        n = rows.size
        partitions = (
            pa.array(batch.partitions[rows], pa.int32())
            if batch.partitions is not None
            else pa.nulls(n, pa.int32())
        )
        uris = (
            pa.array(batch.topics, pa.string()).take(pa.array(rows, pa.int64()))
            if batch.topics is not None
            else pa.array([batch.source_uri] * n, pa.string())
        )
        return {
            "ingest_time": pa.array(np.full(n, np.datetime64(ingest_time, "us"))),
            "source": pa.array([batch.source] * n, pa.string()),
            "source_uri": uris,
            "source_partition": partitions,
            "source_offset": pa.array(offsets[rows], pa.int64()),
            "batch_id": pa.array([batch.batch_id] * n, pa.string()),
        }

    def _bronze_table(
        self,
        batch: RawBatch,
        analysis: Analysis,
        offsets: np.ndarray,
        rows: np.ndarray,
        rewritten: np.ndarray,
        ingest_time: datetime,
    ) -> pa.Table:
        """Landed rows: typed envelope, the event as it arrived (re-serialised only where PHI
        protection changed it or the source was not JSON), and provenance."""
        env = analysis.envelope
        take = pa.array(rows, pa.int64())
        event_json = pc.utf8_rtrim_whitespace(
            analysis.raw_records(batch).take(take).cast(pa.string())
        )
        redo = rewritten[rows]
        if redo.any():
            docs = analysis.docs
            fresh = [
                orjson.dumps(docs[i]) if r else None
                for i, r in zip(rows.tolist(), redo.tolist(), strict=True)
            ]
            event_json = pc.if_else(pa.array(redo), pa.array(fresh, pa.string()), event_json)
        columns = {
            "event_id": env["event_id"].take(take),
            "event_type": env["event_type"].take(take),
            "event_version": env["event_version"].take(take).cast(pa.int32()),
            "event_time": env["event_time"].take(take).cast(pa.timestamp("us")),
            "source_system": env["source_system"].take(take),
            "trace_id": env["trace_id"].take(take),
            "key": env["key"].take(take),
            "event_json": event_json,
            **self._provenance(batch, offsets, rows, ingest_time),
        }
        return pa.Table.from_pydict(columns, schema=BRONZE_SCHEMA)

    @cached_property
    def _id_patterns(self) -> tuple[str | None, str | None]:
        """The envelope's `pharmaflow.pattern` for event_id and event_type (None: fallback)."""
        specs = {f.name: f.pattern for f in self.registry.envelope}
        return specs.get("event_id"), specs.get("event_type")

    def _quarantine_table(
        self,
        batch: RawBatch,
        analysis: Analysis,
        offsets: np.ndarray,
        rows: np.ndarray,
        raw: list[bytes],
        ingest_time: datetime,
    ) -> pa.Table:
        """Rejected rows: reasons in the clear, the record itself sealed with the vault key."""
        env = analysis.envelope
        rej = analysis.rejects
        take = pa.array(rows, pa.int64())
        seal = self.vault.sealer.seal
        columns = {
            **self._provenance(batch, offsets, rows, ingest_time),
            # In the clear only when they look like identifiers: a reject's fields are untrusted.
            "event_id": identifiers_only(env["event_id"].take(take), self._id_patterns[0]),
            "event_type": identifiers_only(env["event_type"].take(take), self._id_patterns[1]),
            "reason_code": pa.array(rej.code[rows].tolist(), pa.string()),
            "reason_field": pa.array(rej.field[rows].tolist(), pa.string()),
            "reason_detail": pa.array(rej.detail[rows].tolist(), pa.string()),
            # A line carries its newline; a message is kept byte for byte (it may be binary).
            "raw_encrypted": pa.array(
                [seal(r.rstrip() if batch.blob is not None else r) for r in raw], pa.binary()
            ),
        }
        return pa.Table.from_pydict(columns, schema=QUARANTINE_SCHEMA)


def _test_pause() -> None:
    """Tests only: wait between writing a batch's parts and committing it, so that concurrent
    writers' batches are in flight together (`PHARMAFLOW_TEST_COMMIT_PAUSE`, seconds)."""
    pause = os.environ.get("PHARMAFLOW_TEST_COMMIT_PAUSE")
    if pause:
        time.sleep(float(pause))


def _without(landing: Landing, found: pa.Table) -> Landing:
    """`landing` without the events in `found` (landed by another writer): they become
    duplicates, so the batch's counts still add up to its records."""
    if not found.num_rows or not landing.landed:
        return landing
    drop = pc.is_in(landing.landed_ids, value_set=found["event_id"])
    dropped = pc.sum(drop).as_py() or 0
    if not dropped:
        return landing
    keep = pc.invert(drop)
    bronze = landing.bronze.filter(keep)
    patients = landing.patients
    if patients.num_rows:
        patients = patients.filter(
            pc.invert(pc.is_in(patients["event_id"], value_set=found["event_id"]))
        )
    gone = landing.bronze["event_type"].filter(drop).to_pylist()
    return replace(
        landing,
        bronze=bronze,
        patients=patients,
        landed=landing.landed - dropped,
        duplicates=landing.duplicates + dropped,
        landed_types=Counter(bronze["event_type"].to_pylist()),
        duplicate_types=landing.duplicate_types + Counter(gone),
        landed_ids=landing.landed_ids.filter(keep),
        landed_hours=landing.landed_hours[np.asarray(keep.to_numpy(zero_copy_only=False))],
    )


def _replayed(landing: Landing) -> Landing:
    """`landing`, when another writer committed the same batch (same lines) first: every
    record of it is replayed, as when a later run meets a committed batch."""
    return replace(
        landing,
        landed=0,
        duplicates=0,
        quarantined=0,
        replayed=landing.records,
        undeclared_stripped=0,
        reasons=Counter(),
        landed_types=Counter(),
        duplicate_types=Counter(),
        quarantined_types=Counter(),
        dead_letters=None,
    )


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path
