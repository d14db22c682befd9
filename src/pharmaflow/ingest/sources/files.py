"""File sources: JSON Lines and CSV, read in batches of lines.

A batch's id is derived from its content and first line number, so re-reading the same file
gives the same batches — which is how a re-run recognises what it already landed.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pharmaflow.contracts.model import Kind
from pharmaflow.contracts.registry import ContractRegistry
from pharmaflow.ingest.decode import Undecodable, decode_json
from pharmaflow.ingest.sources.base import RawBatch

ENVELOPE_COLUMNS = ("event_id", "event_type", "event_version", "event_time", "source_system",
                    "trace_id", "key")


def _batch_id(kind: str, records: list[bytes], first_line: int) -> str:
    digest = hashlib.blake2b(b"".join(records), digest_size=10).hexdigest()
    return f"{kind}-{digest}-{first_line:010d}"


class _LineFileSource:
    kind = "file"
    _skip_header = False

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(path)
        self.path = path
        self.description = str(path)
        self.blank_records = 0

    def _decoder(self, header: bytes | None) -> Callable[[list[bytes]], list[Any]]:
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        records: list[bytes] = []
        offsets: list[int] = []
        uri = str(self.path.resolve())
        with open(self.path, "rb") as fh:
            header = fh.readline() if self._skip_header else None
            decode = self._decoder(header)
            for line_no, line in enumerate(fh, start=2 if header is not None else 1):
                if not line.strip():
                    self.blank_records += 1
                    continue
                records.append(line)
                offsets.append(line_no)
                if len(records) >= batch_size:
                    yield self._batch(records, offsets, uri, decode)
                    records, offsets = [], []
        if records:
            yield self._batch(records, offsets, uri, decode)

    def _batch(self, records: list[bytes], offsets: list[int], uri: str,
               decode: Callable[[list[bytes]], list[Any]]) -> RawBatch:
        return RawBatch(
            batch_id=_batch_id(self.kind, records, offsets[0]),
            records=records,
            offsets=np.asarray(offsets, dtype=np.int64),
            source="file",
            source_uri=uri,
            decode=decode,
        )

    def ack(self, batch: RawBatch) -> None:
        """Files need no acknowledgement: the lake's commit log is the bookmark."""


class JsonlFileSource(_LineFileSource):
    """One JSON envelope per line (CONTRACTS.md)."""

    def _decoder(self, header: bytes | None) -> Callable[[list[bytes]], list[Any]]:
        return decode_json


_INT = re.compile(r"^[+-]?\d+$")


def _to_int(text: str) -> Any:
    return int(text) if _INT.match(text) else text


def _to_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _to_bool(text: str) -> Any:
    return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), text)


def _to_list(text: str) -> Any:
    return [item for item in text.split("|") if item]


_CONVERT: dict[Kind, Callable[[str], Any]] = {
    Kind.INT: _to_int,
    Kind.DOUBLE: _to_float,
    Kind.DECIMAL: _to_float,
    Kind.BOOLEAN: _to_bool,
    Kind.STRING_LIST: _to_list,
}


class CsvFileSource(_LineFileSource):
    """Flat event types as CSV: the envelope columns, then one column per payload field.

    Values are text; each is converted to its contract type here, and a value that does not
    convert is passed on as text so the validator reports it (`wrong_type`) like any other.
    Lists are `|`-separated; an empty cell is null. One record per line (no embedded newlines).
    """

    kind = "csv"
    _skip_header = True

    def __init__(self, path: Path, registry: ContractRegistry) -> None:
        super().__init__(path)
        self.registry = registry

    def _decoder(self, header: bytes | None) -> Callable[[list[bytes]], list[Any]]:
        columns = next(csv.reader([(header or b"").decode("utf-8-sig")]), [])
        missing = [c for c in ("event_type", "event_id") if c not in columns]
        if missing:
            raise ValueError(f"{self.path}: CSV header lacks {', '.join(missing)}")
        registry = self.registry

        def decode(records: list[bytes]) -> list[Any]:
            return [_csv_record(r, columns, registry) for r in records]

        return decode


def _csv_record(raw: bytes, columns: list[str], registry: ContractRegistry) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Undecodable("not valid UTF-8")
    rows = list(csv.reader([text]))
    if len(rows) != 1 or len(rows[0]) != len(columns):
        return Undecodable(f"expected {len(columns)} CSV columns")
    cells = {c: (v if v != "" else None) for c, v in zip(columns, rows[0], strict=True)}
    envelope: dict[str, Any] = {c: cells.pop(c, None) for c in ENVELOPE_COLUMNS}
    if envelope["event_version"] is not None:
        envelope["event_version"] = _to_int(envelope["event_version"])
    version = envelope["event_version"] if isinstance(envelope["event_version"], int) else None
    contract = registry.get(envelope["event_type"] or "", version)
    if contract is not None:
        for spec in contract.payload.children:
            value = cells.get(spec.name)
            if value is not None and spec.kind in _CONVERT:
                cells[spec.name] = _CONVERT[spec.kind](value)
    envelope["payload"] = cells
    return envelope
