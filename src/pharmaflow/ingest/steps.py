"""The ingest steps, shared by ingest and the speed layer: dedupe → protect PHI → tables.

Decoding and validating happen first, in worker processes (`ingest/analyse.py`); this is the
second half, in the process that owns the batch: drop duplicates (first arrival wins), protect
patient data (tokenise the patient block, scrub free text), and build the batch's tables —
bronze rows (the event as it may be stored: as it arrived, or re-serialised where protection
changed it), quarantine rows (reasons in the clear, the record sealed), the vault's rows and,
for a source that has a dead-letter sink, dead letters. Ingest writes all of them; the speed
layer reads the bronze rows (already protected) and counts the rest, writing none.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow.contracts.model import Contract
from pharmaflow.contracts.registry import ContractRegistry
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.analyse import Analysis
from pharmaflow.ingest.counts import BatchCounts
from pharmaflow.ingest.dedupe import event_hours
from pharmaflow.ingest.landing import Landing
from pharmaflow.ingest.phi.identifiers import identifiers_only
from pharmaflow.ingest.phi.protect import ProtectedBatch, Protector
from pharmaflow.ingest.phi.vault import Sealer
from pharmaflow.ingest.sources.base import DeadLetter, RawBatch
from pharmaflow.lake.bronze import BRONZE_SCHEMA
from pharmaflow.lake.quarantine import QUARANTINE_SCHEMA


class Dedupe(Protocol):
    """First arrival wins: ingest's `DedupeIndex` (backed by the lake's event index), the
    speed layer's `RealtimeDedupe` (backed by its store)."""

    def admit(self, ids: pa.Array, times: pa.Array) -> tuple[np.ndarray, int]: ...

    def release(self, gen: int) -> None: ...


def check_protectable(contract: Contract) -> None:
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


class EventSteps:
    """The steps for one registry and one set of keys (`tokenizer`, `sealer`)."""

    def __init__(self, registry: ContractRegistry, sealer: Sealer) -> None:
        for contract in registry:
            check_protectable(contract)
        self.registry = registry
        self.sealer = sealer

    def prepare(
        self,
        batch: RawBatch,
        analysis: Analysis,
        dedupe: Dedupe,
        protector: Protector,
        dead_letters: bool = False,
    ) -> Landing:
        """Dedupe, protect and build every table of one batch (CPU work, in this process).
        `dead_letters`: also make the batch's dead letters (its source has a sink for them)."""
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
        if not admitted.all():
            duplicate_types.update(env["event_type"].take(pa.array(ok_rows[~admitted])).to_pylist())
        # Group landed rows by event type (stable: source order within a type), so the bronze
        # table splits into per-type parts by slicing rather than copying.
        types = analysis.envelope["event_type"].take(pa.array(landed)).dictionary_encode()
        codes = types.indices.to_numpy(zero_copy_only=False)
        landed = landed[np.argsort(codes, kind="stable")]
        landed_types = Counter(
            dict(zip(types.dictionary.to_pylist(), np.bincount(codes).tolist(), strict=True))
        )
        protected, rewritten = self.protect(analysis, landed, protector, batch.raw_is_json)
        bad = np.flatnonzero(~rej.ok)
        bad_raw = analysis.raw_records(batch).take(pa.array(bad, pa.int64())).to_pylist()
        keep = analysis.keep
        landed_take = pa.array(landed, pa.int64())
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
            counts=BatchCounts(
                records=len(analysis),
                blank=0 if keep is None else int((~keep).sum()),
                landed=int(landed.size),
                duplicates=int(ok_rows.size - landed.size),
                quarantined=int(bad.size),
                undeclared_stripped=int(np.isin(analysis.stripped, landed).sum()),
                reasons=rej.reasons(),
                landed_types=landed_types,
                duplicate_types=duplicate_types,
                quarantined_types=Counter(
                    zip(
                        [t or "unknown" for t in env["event_type"].take(pa.array(bad)).to_pylist()],
                        rej.code[bad].tolist(),
                        strict=True,
                    )
                ),
            ),
            first_offset=int(offsets[0]) if offsets.size else batch.first_offset,
            last_offset=int(offsets[-1]) if offsets.size else batch.first_offset,
            landed_ids=env["event_id"].take(landed_take),
            landed_hours=event_hours(env["event_time"].take(landed_take)),
            dedupe_gen=dedupe_gen,
            dead_letters=(
                self._dead_letters(batch, analysis, offsets, bad, bad_raw)
                if dead_letters and bad.size
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
        """Invalid records for the source's dead-letter sink, each value SEALED exactly like
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
        seal = self.sealer.seal
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

    def protect(
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
        seal = self.sealer.seal
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
