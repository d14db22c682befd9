"""The warehouse as serving reads it: the current published snapshot, a cursor per thread.

Two DuckDB facts shape this module:

* a process may not open the warehouse file while a build writes it, so serving only ever opens
  the read-only copies a build publishes (warehouse/publish.py), and switches to a new one when
  the pointer changes: a request during a build reads the last snapshot, the next request after
  it the new one, and no request ever sees a half-built warehouse;
* a DuckDB connection is not safe to share between threads (FastAPI runs sync routes on a
  thread pool; interleaved queries on one connection return each other's rows), so each
  snapshot has ONE connection per process and each thread its own `cursor()` of it.

`reading()` pins one snapshot for a block (several queries of one request see the same data)
and counts its users, so a superseded snapshot is closed only once its last reader is done.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse import publish

# How often the pointer file is re-read: a new build is served within this time.
CHECK_SECONDS = 0.5


def reader_config(path: Path) -> dict[str, Any]:
    """How serving opens a snapshot: no file access beyond it, spills beside it. (DuckDB
    refuses a second connection to a file with another configuration in the same process:
    anything else in a serving process that opens a snapshot uses this too.)"""
    return {"enable_external_access": False, "temp_directory": f"{path}.tmp"}


class NotBuilt(PharmaflowError):
    """No build has published a snapshot yet (the API answers 503)."""


@dataclass
class OpenSnapshot:
    """One published snapshot, opened read-only, with one cursor per thread."""

    meta: publish.Published
    con: duckdb.DuckDBPyConnection
    users: int = 0
    retired: bool = False
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def id(self) -> str:
        return self.meta.id

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self.con.cursor()
        return cur


class ServingWarehouse:
    """The newest published snapshot of a data dir's warehouse (see the module docstring)."""

    def __init__(self, folder: Path, check_seconds: float = CHECK_SECONDS) -> None:
        self.folder = folder
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._current: OpenSnapshot | None = None
        self._checked = float("-inf")

    def _acquire(self) -> OpenSnapshot:
        """The current snapshot, its user count raised under the same lock that retires
        snapshots (so it cannot be closed in between)."""
        with self._lock:
            snap = self._refresh()
            snap.users += 1
            return snap

    def _refresh(self) -> OpenSnapshot:
        """The current snapshot, re-reading the pointer at most every `check_seconds`. Called
        with the lock held."""
        now = time.monotonic()
        if self._current is not None and now - self._checked < self.check_seconds:
            return self._current
        self._checked = now
        meta = publish.current(self.folder)
        if meta is None:
            if self._current is not None:
                return self._current
            raise NotBuilt(
                "no warehouse snapshot to serve yet: run `pharmaflow build` (or demo) first"
            )
        if self._current is None or self._current.id != meta.id:
            opened = self._open(meta)
            if opened is None:  # pruned between the pointer read and the open: retry soon
                if self._current is not None:
                    return self._current
                raise NotBuilt(f"the snapshot {meta.path} vanished; try again")
            old, self._current = self._current, opened
            if old is not None:
                old.retired = True
                if old.users == 0:
                    old.con.close()
        return self._current

    @staticmethod
    def _open(meta: publish.Published) -> OpenSnapshot | None:
        try:
            con = duckdb.connect(str(meta.path), read_only=True, config=reader_config(meta.path))
        except duckdb.IOException:
            if not meta.path.exists():
                return None
            raise
        with contextlib.suppress(duckdb.InvalidInputException):  # locked by another opener
            con.execute("SET lock_configuration = true")  # (the same database in-process)
        return OpenSnapshot(meta, con)

    @contextmanager
    def reading(self) -> Iterator[OpenSnapshot]:
        """Pin the current snapshot for the block; use `snapshot.cursor()` inside it."""
        snap = self._acquire()
        try:
            yield snap
        finally:
            with self._lock:
                snap.users -= 1
                if snap.retired and snap.users == 0:
                    snap.con.close()

    def close(self) -> None:
        with self._lock:
            snap, self._current = self._current, None
            if snap is not None:
                snap.retired = True
                if snap.users == 0:
                    snap.con.close()
