"""Decode and validate one batch: the CPU-heavy half of ingest, run in worker processes.

Decoding JSON is per-record work that holds the GIL, so it scales across cores only as
processes. A worker gets the batch's raw records and returns only what the landing
process needs: per-row verdicts and typed envelope columns (Arrow, cheap to pickle), plus the
decoded documents of the few rows that PHI protection must rewrite. Everything else is
stored as it arrived, straight from the raw records the landing process still holds.
"""

from __future__ import annotations

import signal
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from pharmaflow.config import TimeWindow
from pharmaflow.contracts.model import Contract, FieldSpec, Kind
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.ingest.decode import Undecodable, decode
from pharmaflow.ingest.lifetime import die_with_parent
from pharmaflow.ingest.reasons import ReasonCode
from pharmaflow.ingest.rejects import Rejects
from pharmaflow.ingest.sources.base import RawBatch
from pharmaflow.ingest.validate import validate


@dataclass
class Analysis:
    """What the landing process needs of one batch.

    The raw records come back either as an Arrow array (message sources) or, for a blob, as
    the start of each kept line: the landing process still holds the blob and views its lines
    without a copy, so a batch's bytes never travel back from the worker."""

    size: int
    keep: np.ndarray | None  # for a blob: which of its lines are records (not blank)
    starts: np.ndarray | None  # for a blob: byte offset of each kept line, then the blob's end
    raw: pa.BinaryArray | None  # for message sources: the records as they arrived
    rejects: Rejects
    envelope: dict[str, pa.Array]
    groups: dict[tuple[str, int], np.ndarray]
    docs: dict[int, dict[str, Any]]  # valid rows the landing process must re-serialise
    stripped: np.ndarray  # valid rows that carried undeclared fields (now removed)

    def __len__(self) -> int:
        return self.size

    def raw_records(self, batch: RawBatch) -> pa.BinaryArray:
        """Each record's bytes. For a blob a record runs to the next kept line, so it carries
        its newline (and any blank lines after it): strip trailing whitespace to get the line."""
        if self.raw is not None:
            return self.raw
        assert batch.blob is not None and self.starts is not None
        offsets = pa.py_buffer(self.starts.astype(np.int32))
        return pa.Array.from_buffers(
            pa.binary(), self.size, [None, offsets, pa.py_buffer(batch.blob)]
        )


def split_lines(blob: bytes) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """A blob's lines without blank ones (empty or whitespace only), the keep mask, and the
    byte offset where each kept line starts (plus the blob's length at the end)."""
    lines = blob.split(b"\n")
    keep = np.fromiter(map(bool, map(bytes.strip, lines)), dtype=bool, count=len(lines))
    starts = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)) + 1, out=starts[1:])
    starts = np.append(starts[:-1][keep], len(blob))
    if keep.all():
        return lines, keep, starts
    return [line for line, k in zip(lines, keep, strict=True) if k], keep, starts


def analyse(
    payload: bytes | list[bytes],
    fmt: str,
    columns: tuple[str, ...],
    registry: ContractRegistry,
    decode_errors: dict[int, tuple[ReasonCode, str]] | None = None,
    window: TimeWindow | None = None,
) -> Analysis:
    """`decode_errors`: rows the source already knows cannot be decoded, with (code, detail).
    `window`: the plausible span of timestamps, made absolute at the time of this analysis."""
    now = datetime.now(UTC)
    keep = starts = raw = None
    blob = None
    if isinstance(payload, bytes):
        records, keep, starts = split_lines(payload)
        blob = payload
    else:
        records = payload
        raw = pa.array(records, pa.binary())
    docs = decode(records, fmt, columns, registry, blob)
    for row, (code, detail) in (decode_errors or {}).items():
        docs[row] = Undecodable(detail, code)
    validated = validate(docs, registry, window, now)
    ok = validated.rejects.ok
    needed: dict[int, dict[str, Any]] = {}
    stripped: list[np.ndarray] = []
    for (event_type, version), rows in validated.groups.items():
        contract = registry.get(event_type, version)
        assert contract is not None
        valid = rows[ok[rows]]
        valid_docs = [validated.docs[i] for i in valid.tolist()]
        changed = strip_undeclared(contract.payload, [d["payload"] for d in valid_docs])
        changed |= _strip_keys(valid_docs, _envelope_keys(contract))
        stripped.append(valid[changed])
        rewrite = valid if fmt != "json" or contract.phi_fields else valid[changed]
        for i in rewrite.tolist():
            needed[i] = validated.docs[i]
    return Analysis(
        len(records),
        keep,
        starts,
        raw,
        validated.rejects,
        validated.envelope,
        validated.groups,
        needed,
        np.concatenate(stripped) if stripped else np.zeros(0, dtype=np.int64),
    )


def _envelope_keys(contract: Contract) -> frozenset[str]:
    return frozenset([*(f.name for f in contract.envelope), "payload"])


def _strip_keys(dicts: list[dict[str, Any]], known: frozenset[str]) -> np.ndarray:
    """Delete keys outside `known` (in place); True where a dict lost one."""
    changed = np.zeros(len(dicts), dtype=bool)
    if all(map(known.issuperset, dicts)):  # one C-level pass, nothing allocated
        return changed
    for i, d in enumerate(dicts):
        extra = d.keys() - known
        if extra:
            for key in extra:
                del d[key]
            changed[i] = True
    return changed


def strip_undeclared(spec: FieldSpec, dicts: list[dict[str, Any]]) -> np.ndarray:
    """Drop fields the contract does not declare, at every level (in place).

    Producers may add fields ahead of the contract (Avro readers ignore them too), but an
    undeclared field is one nobody has classified for PHI, so it is not stored. Returns True
    where a record lost a field (that event must be re-serialised, not stored raw)."""
    changed = _strip_keys(dicts, frozenset(c.name for c in spec.children))
    for child in spec.children:
        if child.kind is Kind.RECORD:
            nested = [
                (i, d[child.name]) for i, d in enumerate(dicts) if type(d.get(child.name)) is dict
            ]
            if nested:
                at = np.array([i for i, _ in nested])
                changed[at] |= strip_undeclared(child, [d for _, d in nested])
    return changed


_worker_registry: ContractRegistry | None = None
_worker_window: TimeWindow | None = None


def _init_worker(registry: ContractRegistry, window: TimeWindow) -> None:
    global _worker_registry, _worker_window
    die_with_parent(signal.SIGKILL)
    _worker_registry = registry
    _worker_window = window


def _analyse_in_worker(
    payload: bytes | list[bytes],
    fmt: str,
    columns: tuple[str, ...],
    decode_errors: dict[int, tuple[ReasonCode, str]],
) -> Analysis:
    registry = _worker_registry or default_registry()
    return analyse(payload, fmt, columns, registry, decode_errors, _worker_window)


class Analyser:
    """Runs `analyse` inline (workers=0) or on a pool of worker processes. `window` (the
    plausible span of timestamps, `Settings.time_window`) reaches the workers once, at start."""

    def __init__(
        self, registry: ContractRegistry, workers: int, window: TimeWindow | None = None
    ) -> None:
        self.registry = registry
        self.workers = workers
        self.window = window or TimeWindow()
        self._pool: Executor | None = None

    def __enter__(self) -> Analyser:
        if self.workers > 0:
            self._pool = ProcessPoolExecutor(
                self.workers, initializer=_init_worker, initargs=(self.registry, self.window)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, batch: RawBatch) -> Future[Analysis]:
        if self._pool is not None:
            return self._pool.submit(
                _analyse_in_worker, batch.payload, batch.format, batch.columns, batch.decode_errors
            )
        done: Future[Analysis] = Future()
        done.set_result(
            analyse(
                batch.payload,
                batch.format,
                batch.columns,
                self.registry,
                batch.decode_errors,
                self.window,
            )
        )
        return done
