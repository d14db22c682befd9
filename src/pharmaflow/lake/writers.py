"""Who is writing to the lake right now, so recovery never deletes a live writer's files.

Several ingest processes (Kafka consumers of one group) write into one lake at once. A part
without a manifest is debris only if the process that wrote it is gone: a live writer's part
is simply not committed *yet*. Each writer holds an exclusive `flock` on
`_writers/<writer>.lock` while it runs; the kernel drops the lock when the process dies, even
by `kill -9`, so "can I take its lock?" is an exact liveness test on one machine.

Batch ids name their writer (`<writer>~<id>`); ids without `~` belong to the file writer.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from pharmaflow.errors import PharmaflowError

FILE_WRITER = "files"
_SEP = "~"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def writer_of(batch_id: str) -> str:
    return batch_id.split(_SEP, 1)[0] if _SEP in batch_id else FILE_WRITER


def batch_id(writer: str, suffix: str) -> str:
    """A batch id that names its writer (stream sources; file batches are content-named)."""
    return f"{writer}{_SEP}{suffix}"


class WriterLock:
    """An exclusive claim on one writer id, held for the life of an ingest run."""

    def __init__(self, lake_dir: Path, writer: str) -> None:
        if not _SAFE.match(writer):
            raise PharmaflowError(f"writer id {writer!r} may only hold letters, digits, . _ -")
        self.writer = writer
        self.path = lake_dir / "_writers" / f"{writer}.lock"
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PharmaflowError(
                f"another ingest is already writing as {self.writer!r} into this lake"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


class SharedWriterLock:
    """The file writer's claim, shared by every file ingest running on the lake at once.

    File (and PostgreSQL) batches all belong to the one writer `files` (their ids are content-
    named), so several file ingests share its lock: each holds it shared, and `alone` says
    whether this one found no other file ingest running when it started. Only then may its
    recovery delete `files` debris: another file ingest's uncommitted parts are work in
    progress. `writers.is_live("files")` stays true while any of them runs."""

    def __init__(self, lake_dir: Path, writer: str = FILE_WRITER) -> None:
        self.path = WriterLock(lake_dir, writer).path  # validates the name, same file
        self.alone = False
        self._fd: int | None = None

    def __enter__(self) -> SharedWriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.alone = True
        except BlockingIOError:
            self.alone = False
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits while one of them is still recovering
        self._fd = fd
        return self

    def share(self) -> None:
        """After recovery: let other file ingests start (a conversion to a shared lock; one
        that was waiting for it may then run its own recovery, before it writes anything)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_live(lake_dir: Path, writer: str) -> bool:
    """True while some process holds `writer`'s lock (our own lock counts as live)."""
    path = lake_dir / "_writers" / f"{writer}.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe lock if we got it
    return False
