"""File sources: JSON Lines and CSV, read in batches of lines.

A batch's id is derived from its content and first line number, so re-reading the same file
gives the same batches — which is how a re-run recognises what it already landed.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources.base import RawBatch


def _batch_id(kind: str, records: list[bytes], first_line: int) -> str:
    digest = hashlib.blake2b(b"\n".join(records), digest_size=10).hexdigest()
    return f"{kind}-{digest}-{first_line:010d}"


_BLOCK = 16 << 20  # bytes read at a time; batches are cut by line count, not by block


class _LineFileSource:
    kind = "file"
    format = "json"
    _skip_header = False

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(path)
        self.path = path
        self.description = str(path)
        self.blank_records = 0

    def _columns(self, header: bytes | None) -> tuple[str, ...]:
        return ()

    def _lines(self, fh: BinaryIO, first_line: int) -> Iterator[tuple[list[bytes], np.ndarray]]:
        """Non-blank lines (without their newline) and their line numbers, block by block.

        Reading big blocks and splitting them in C is several times faster than iterating
        the file line by line in Python."""
        line_no = first_line
        carry = b""
        while True:
            block = fh.read(_BLOCK)
            if block:
                lines = (carry + block).split(b"\n")
                carry = lines.pop()  # the unfinished last line, or b"" after a newline
            elif carry:
                lines, carry = [carry], b""
            else:
                return
            offsets = np.arange(line_no, line_no + len(lines), dtype=np.int64)
            line_no += len(lines)
            if lines and min(map(len, lines)) <= 2:  # possibly blank ("", "\r", " ")
                keep = np.fromiter((bool(line.strip()) for line in lines), dtype=bool,
                                   count=len(lines))
                self.blank_records += int((~keep).sum())
                lines = [line for line, k in zip(lines, keep, strict=True) if k]
                offsets = offsets[keep]
            yield lines, offsets

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        uri = str(self.path.resolve())
        with open(self.path, "rb") as fh:
            header = fh.readline() if self._skip_header else None
            columns = self._columns(header)
            records: list[bytes] = []
            offsets = np.zeros(0, dtype=np.int64)
            for lines, line_offsets in self._lines(fh, 2 if header is not None else 1):
                records.extend(lines)
                offsets = np.concatenate([offsets, line_offsets])
                while len(records) >= batch_size:
                    yield self._batch(records[:batch_size], offsets[:batch_size], uri, columns)
                    records, offsets = records[batch_size:], offsets[batch_size:]
            if records:
                yield self._batch(records, offsets, uri, columns)

    def _batch(self, records: list[bytes], offsets: np.ndarray, uri: str,
               columns: tuple[str, ...]) -> RawBatch:
        return RawBatch(
            batch_id=_batch_id(self.kind, records, int(offsets[0])),
            records=records,
            offsets=offsets,
            source="file",
            source_uri=uri,
            format=self.format,
            columns=columns,
        )

    def ack(self, batch: RawBatch) -> None:
        """Files need no acknowledgement: the lake's commit log is the bookmark."""


class JsonlFileSource(_LineFileSource):
    """One JSON envelope per line (CONTRACTS.md)."""


class CsvFileSource(_LineFileSource):
    """Flat event types as CSV: the envelope columns, then one column per payload field
    (decoded by `pharmaflow.ingest.decode.decode_csv`)."""

    kind = "csv"
    format = "csv"
    _skip_header = True

    def _columns(self, header: bytes | None) -> tuple[str, ...]:
        columns = tuple(next(csv.reader([(header or b"").decode("utf-8-sig")]), []))
        missing = [c for c in ("event_type", "event_id") if c not in columns]
        if missing:
            raise PharmaflowError(f"{self.path}: CSV header lacks {', '.join(missing)}")
        return columns
