"""File locks between pharmaflow processes: `flock`, which the kernel drops when a process
dies by any signal (even `kill -9`), so a lock is never left behind by a crash.

Used for the lake's commit lock and batch claims, the key files' exactly-once creation and the
key-rotation lease. (Writer liveness, `lake.writers`, holds its lock for a whole run instead.)
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pharmaflow.datadir import DIR_MODE, FILE_MODE


@contextmanager
def locked(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[int]:
    """Hold an flock on `path` (created owner-only if missing). With `wait=False`, raise
    BlockingIOError at once when another process holds it."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        fcntl.flock(fd, flags)
        yield fd
    finally:
        os.close(fd)  # releases the lock
