"""The ingest engine: raw batches in, committed bronze/quarantine/vault parts out.

Per batch: decode → validate (envelope, contract) → dedupe → protect PHI → route, then one
atomic commit. Every record ends in exactly one bucket — landed, duplicate or quarantined — or,
when the batch was committed by an earlier run, is counted as replayed and skipped. So
`input == landed + duplicates + quarantined + replayed` holds for every run, and is checked.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from pharmaflow.config import Settings
from pharmaflow.contracts.model import Contract
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.dedupe import DedupeIndex
from pharmaflow.ingest.phi.keys import load_key
from pharmaflow.ingest.phi.protect import ProtectedBatch, Protector
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.phi.vault import PhiVault
from pharmaflow.ingest.sources.base import RawBatch, Source
from pharmaflow.ingest.validate import Validated, validate
from pharmaflow.lake.bronze import BRONZE_SCHEMA, landed_event_ids, write_bronze
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.files import write_parquet_atomic
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.lake.quarantine import QUARANTINE_SCHEMA

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
    batches: int = 0
    recovered_files: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    landed_by_type: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def conserved(self) -> bool:
        return self.input == self.landed + self.duplicates + self.quarantined + self.replayed

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["quarantine_reasons"] = dict(sorted(self.quarantine_reasons.items()))
        out["landed_by_type"] = dict(sorted(self.landed_by_type.items()))
        out["conserved"] = self.conserved
        return out


def _check_protectable(contract: Contract) -> None:
    """Fail closed: refuse a contract whose PHI fields this protector does not know how to treat."""
    for spec in contract.phi_fields:
        top_level_text = spec.phi == "free_text" and spec.path.count(".") == 1
        patient = spec.phi != "free_text" and spec.path.startswith("payload.patient.")
        if not (top_level_text or patient):
            raise PharmaflowError(
                f"{contract.event_type} v{contract.version}: PHI field {spec.path} "
                f"({spec.phi}) has no protection rule"
            )


class IngestEngine:
    def __init__(self, settings: Settings, registry: ContractRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or default_registry()
        for contract in self.registry:
            _check_protectable(contract)
        self.layout = LakeLayout(settings.lake_dir)
        self.vault = PhiVault(
            settings.vault_dir, load_key(settings.vault_key, settings.secrets_dir / "vault.key",
                                         "vault"))
        self.tokenizer = Tokenizer(
            load_key(settings.hmac_key, settings.secrets_dir / "hmac.key", "HMAC"))
        self.commits = CommitLog(self.layout, [self.vault.patients_dir,
                                               self.vault.name_tokens_dir])

    def run(self, sources: Iterable[Source], progress: Progress | None = None) -> IngestResult:
        started = time.perf_counter()
        result = IngestResult()
        removed = self.commits.recover()
        result.recovered_files = len(removed)
        if removed:
            log.warning("recovery removed %d files of uncommitted batches", len(removed))
        dedupe = DedupeIndex(landed_event_ids(self.layout).chunks)
        protector = Protector(self.tokenizer, self.vault.sealer, self.vault.load_name_tokens())
        for source in sources:
            log.info("ingest start source=%s", source.description)
            for batch in source.batches(self.settings.batch_size):
                result.input += len(batch)
                if self.commits.is_committed(batch.batch_id):
                    result.replayed += len(batch)
                    log.info("batch %s already committed; skipped", batch.batch_id)
                else:
                    self._land(batch, dedupe, protector, result)
                source.ack(batch)
                if progress:
                    progress(len(batch))
            result.blank_lines += source.blank_records
        result.seconds = time.perf_counter() - started
        if not result.conserved:  # a bug, never bad input: fail loudly
            raise AssertionError(f"ingest lost or doubled events: {result.to_dict()}")
        log.info("ingest done %s", orjson.dumps(result.to_dict()).decode())
        return result

    def _land(self, batch: RawBatch, dedupe: DedupeIndex, protector: Protector,
              result: IngestResult) -> None:
        ingest_time = datetime.now(UTC).replace(tzinfo=None)
        validated = validate(batch.decode(batch.records), self.registry)
        ok_rows = np.flatnonzero(validated.rejects.ok)
        first = dedupe.first_arrivals(validated.envelope["event_id"].take(pa.array(ok_rows)))
        landed = ok_rows[first]
        protected = self._protect(validated, landed, protector)

        files = write_bronze(self.layout, self._bronze_table(batch, validated, landed,
                                                             ingest_time), ingest_time,
                             batch.batch_id)
        bad = np.flatnonzero(~validated.rejects.ok)
        if bad.size:
            path = self.layout.quarantine_part(ingest_time, batch.batch_id)
            write_parquet_atomic(self._quarantine_table(batch, validated, bad, ingest_time), path)
            files.append(path)
        for table, directory in ((protected.patients_table(), self.vault.patients_dir),
                                 (protected.name_tokens_table(), self.vault.name_tokens_dir)):
            if table.num_rows:
                path = directory / f"part-{batch.batch_id}.parquet"
                write_parquet_atomic(table, path)
                files.append(path)

        reasons = validated.rejects.reasons()
        landed_types = Counter(validated.envelope["event_type"].take(pa.array(landed)).to_pylist())
        counts = {"records": len(batch), "landed": int(landed.size),
                  "duplicates": int(ok_rows.size - landed.size), "quarantined": int(bad.size)}
        self.commits.commit(batch.batch_id, {
            "source": batch.source,
            "source_uri": batch.source_uri,
            "first_offset": int(batch.offsets[0]),
            "last_offset": int(batch.offsets[-1]),
            "ingest_time": ingest_time.isoformat(),
            "counts": counts,
            "quarantine_reasons": dict(reasons),
            "files": [str(_relative(p, self.settings.root)) for p in files],
        })
        dedupe.add(validated.envelope["event_id"].take(pa.array(landed)))
        result.batches += 1
        result.landed += counts["landed"]
        result.duplicates += counts["duplicates"]
        result.quarantined += counts["quarantined"]
        result.quarantine_reasons.update(reasons)
        result.landed_by_type.update(landed_types)
        log.info("batch %s committed %s reasons=%s", batch.batch_id, counts, dict(reasons))

    def _protect(self, validated: Validated, landed: np.ndarray,
                 protector: Protector) -> ProtectedBatch:
        """Rewrite landed payloads in place: patients first (they teach the name tokens that
        free-text scrubbing needs), then free text."""
        out = ProtectedBatch()
        is_landed = np.zeros(len(validated.payloads), dtype=bool)
        is_landed[landed] = True
        work: list[tuple[Contract, np.ndarray]] = []
        for (event_type, version), rows in validated.groups.items():
            rows = rows[is_landed[rows]]
            if rows.size:
                work.append((self.registry.get(event_type, version), rows))  # type: ignore[arg-type]
        env = validated.envelope
        for contract, rows in work:
            if any(f.phi != "free_text" for f in contract.phi_fields):
                take = pa.array(rows)
                protector.protect_patients([validated.payloads[i] for i in rows],
                                           env["event_id"].take(take).to_pylist(),
                                           env["event_time"].take(take).to_pylist(), out)
        for contract, rows in work:
            for spec in contract.free_text_fields():
                protector.scrub_free_text([validated.payloads[i] for i in rows], spec.name)
        return out

    @staticmethod
    def _provenance(batch: RawBatch, rows: np.ndarray, ingest_time: datetime) -> dict[str, Any]:
        n = rows.size
        partitions = (pa.array(batch.partitions[rows], pa.int32()) if batch.partitions is not None
                      else pa.nulls(n, pa.int32()))
        return {
            "ingest_time": pa.array(np.full(n, np.datetime64(ingest_time, "us"))),
            "source": pa.array([batch.source] * n, pa.string()),
            "source_uri": pa.array([batch.source_uri] * n, pa.string()),
            "source_partition": partitions,
            "source_offset": pa.array(batch.offsets[rows], pa.int64()),
            "batch_id": pa.array([batch.batch_id] * n, pa.string()),
        }

    def _bronze_table(self, batch: RawBatch, validated: Validated, rows: np.ndarray,
                      ingest_time: datetime) -> pa.Table:
        env = validated.envelope
        take = pa.array(rows, pa.int64())
        dumps = orjson.dumps
        payloads = validated.payloads
        columns = {
            "event_id": env["event_id"].take(take),
            "event_type": env["event_type"].take(take),
            "event_version": env["event_version"].take(take).cast(pa.int32()),
            "event_time": env["event_time"].take(take).cast(pa.timestamp("us")),
            "source_system": env["source_system"].take(take),
            "trace_id": env["trace_id"].take(take),
            "key": env["key"].take(take),
            "payload": pa.array([dumps(payloads[i]) for i in rows], pa.string()),
            **self._provenance(batch, rows, ingest_time),
        }
        return pa.Table.from_pydict(columns, schema=BRONZE_SCHEMA)

    def _quarantine_table(self, batch: RawBatch, validated: Validated, rows: np.ndarray,
                          ingest_time: datetime) -> pa.Table:
        env = validated.envelope
        rej = validated.rejects
        take = pa.array(rows, pa.int64())
        seal = self.vault.sealer.seal
        columns = {
            **self._provenance(batch, rows, ingest_time),
            "event_id": env["event_id"].take(take),
            "event_type": env["event_type"].take(take),
            "reason_code": pa.array(rej.code[rows].tolist(), pa.string()),
            "reason_field": pa.array(rej.field[rows].tolist(), pa.string()),
            "reason_detail": pa.array(rej.detail[rows].tolist(), pa.string()),
            "raw_encrypted": pa.array([seal(batch.records[i].rstrip(b"\r\n")) for i in rows],
                                      pa.binary()),
        }
        return pa.Table.from_pydict(columns, schema=QUARANTINE_SCHEMA)


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path
