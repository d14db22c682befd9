"""Atomic file writes: a reader sees a whole file or none, never half of one.

Write to a hidden temporary name in the same directory, flush to disk, then rename over the
final name (rename is atomic on POSIX filesystems). Readers glob `*.parquet`, so `.tmp-*`
files are invisible to them and are swept up after a crash.

Lake files hold events (and sealed patient data): created owner-only whatever the process's
umask (`pharmaflow.datadir`), for callers that use the library without the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pharmaflow.datadir import DIR_MODE, FILE_MODE, fsync_dir
from pharmaflow.lake.layout import TMP_PREFIX


def _tmp_for(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")


def _open_new(path: Path) -> int:
    """A fresh owner-only file for writing (a stale temporary of a dead run is replaced)."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    tmp = _tmp_for(path)
    with os.fdopen(_open_new(tmp), "wb") as fh:
        pq.write_table(table, fh, compression="zstd", compression_level=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    tmp = _tmp_for(path)
    with os.fdopen(_open_new(tmp), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
