"""File sources: JSON Lines and CSV, read in batches of lines.

A batch's id is derived from its bytes and first line number, so re-reading the same file
gives the same batches — which is how a re-run recognises what it already landed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources.base import RawBatch, Source


def fingerprint(blob: bytes) -> str:
    """Content identity of a run of lines: CRC-32 of every byte (fast, C, and any change in the
    middle flips it), a keyed-free BLAKE2 of the head and tail, and the length. Two different
    runs would have to agree on all three to be taken for the same batch."""
    edges = hashlib.blake2b(blob[:65536] + blob[-65536:], digest_size=8).hexdigest()
    return f"{zlib.crc32(blob):08x}{edges}{len(blob):x}"


_BLOCK = 4 << 20  # bytes read at a time; batches are cut by line count, not by block
_NEWLINE = 10
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark: some Windows tools write it; not part of a line


def _test_pause() -> None:
    """Tests only: before reading the second block, create `<dir>/paused` and wait (up to a
    minute) for `<dir>/resume`, so a test can change the file between two reads
    (`PHARMAFLOW_TEST_READ_PAUSE=<dir>`)."""
    folder = os.environ.get("PHARMAFLOW_TEST_READ_PAUSE")
    if not folder or (Path(folder) / "paused").exists():
        return
    (Path(folder) / "paused").touch()
    deadline = time.monotonic() + 60
    while not (Path(folder) / "resume").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


class _LineFileSource(Source):
    kind = "file"
    format = "json"
    _skip_header = False

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(path)
        self.path = path
        self.description = str(path)

    def _columns(self, header: bytes | None) -> tuple[str, ...]:
        return ()

    def _blobs(self, fh: BinaryIO, batch_size: int) -> Iterator[tuple[bytes, int]]:
        """Runs of `batch_size` lines (the last may be shorter) as (bytes, line count).

        The file is read a block at a time with ordinary reads (not memory-mapped: a file
        truncated under a map kills the process with SIGBUS) and newlines are found with
        numpy, so reading costs a few C-level passes over the bytes and nothing per line.
        Only the bytes present when reading began are read (lines appended meanwhile are for
        the next run); a file that shrinks meanwhile stops the run with one line, after the
        batches already handed over (`_changed`)."""
        begin = fh.tell()
        size = os.fstat(fh.fileno()).st_size
        position, reads = begin, 0
        pending = b""  # bytes after the last run handed over, starting at a line
        newlines = np.zeros(0, dtype=np.int64)  # positions in `pending`
        while position < size:
            if reads:
                _test_pause()
            try:
                block = fh.read(min(_BLOCK, size - position))
            except OSError as exc:
                raise PharmaflowError(
                    f"{self.path} could not be read ({exc.strerror or exc}); nothing after the "
                    "last committed batch was landed; re-run to resume"
                ) from exc
            if not block:
                raise self._changed(size, fh)
            reads += 1
            position += len(block)
            found = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == _NEWLINE)
            newlines = np.concatenate([newlines, found + len(pending)])
            pending += block
            if newlines.size < batch_size:
                continue
            start, used = 0, 0
            while newlines.size - used >= batch_size:
                end = int(newlines[used + batch_size - 1])
                yield pending[start:end], batch_size
                start, used = end + 1, used + batch_size
            pending = pending[start:]
            newlines = newlines[used:] - start
        if pending:
            ends_line = pending.endswith(b"\n")
            yield (pending[:-1] if ends_line else pending), newlines.size + (not ends_line)

    def _changed(self, size: int, fh: BinaryIO) -> PharmaflowError:
        """The file ended before the size it had when reading began: it was truncated or
        replaced. Batches handed over before are committed as usual; nothing after them is."""
        try:
            now = f"{os.fstat(fh.fileno()).st_size:,}"
        except OSError:
            now = "?"
        return PharmaflowError(
            f"{self.path} changed while it was read (truncated from {size:,} to {now} bytes); "
            "nothing after the last committed batch was landed; restore it and re-run to resume"
        )

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        uri = str(self.path.resolve())
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 (closed below, after the generator)
        except FileNotFoundError as exc:
            raise PharmaflowError(
                f"{self.path} vanished before it was read; restore it and re-run"
            ) from exc
        with fh:
            if fh.read(len(_BOM)) != _BOM:
                fh.seek(0)
            header = fh.readline() if self._skip_header else None
            columns = self._columns(header)
            line_no = 2 if header is not None else 1
            for blob, lines in self._blobs(fh, batch_size):
                digest = fingerprint(blob)
                yield RawBatch(
                    batch_id=f"{self.kind}-{digest}-{line_no:010d}",
                    source="file",
                    source_uri=uri,
                    blob=blob,
                    first_offset=line_no,
                    format=self.format,
                    columns=columns,
                )
                line_no += lines

    def ack(self, batch: RawBatch) -> None:
        """Files need no acknowledgement: the lake's commit log is the bookmark."""


class JsonlFileSource(_LineFileSource):
    """One JSON envelope per line (docs/contracts.md)."""


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
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:  # which cell would count? Refuse the file rather than guess.
            raise PharmaflowError(f"{self.path}: CSV header repeats {', '.join(repeated)}")
        return columns
