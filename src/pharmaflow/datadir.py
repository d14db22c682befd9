"""The data dir as the operating system sees it: owner-only, and checked before anything runs.

The data dir holds patient data in several forms (the vault, quarantined raw events, free-text
comments in the warehouse, key files for local runs), so nothing in it is for other users of
the host: every file is created 0600 and every folder 0700. A CLI run sets the process umask
to `OWNER_ONLY_UMASK` first, which covers what other libraries create there too (DuckDB's
file, dbt's project copy and logs), and the worker processes it forks inherit it.

A mistyped `--data-dir` (a file) or a read-only copy are told apart before a command starts:
the first is one line; the second is fine for commands that only read (`sql`, `trace`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pharmaflow.errors import PharmaflowError

OWNER_ONLY_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
# Folders a pharmaflow data dir holds: a folder with one of them is ours to tighten.
_OURS = ("lake", "vault", "warehouse", "secrets", "logs", "broker", "realtime", "serve")


def owner_only() -> None:
    """Create every later file owner-only in this process (and the processes it starts)."""
    os.umask(OWNER_ONLY_UMASK)


@dataclass(frozen=True)
class DataDirState:
    root: Path
    writable: bool


def check_data_dir(root: Path) -> DataDirState:
    """Create the data dir (0700) if it is missing; refuse a path that is not a folder; tell
    whether this process can write in it (a read-only copy is readable, not an error)."""
    if root.exists() and not root.is_dir():
        raise PharmaflowError(f"data dir {root} is a file, not a folder: pass --data-dir a folder")
    if not root.exists():
        try:
            root.mkdir(mode=DIR_MODE, parents=True)
        except FileExistsError:
            pass  # another process made it meanwhile
        except OSError as exc:
            raise PharmaflowError(
                f"cannot create data dir {root}: {exc.strerror}; pick a writable --data-dir"
            ) from None
    writable = _writable(root)
    if writable:
        _tighten(root)
    return DataDirState(root, writable)


def _writable(root: Path) -> bool:
    """`access(W_OK)` answers for a read-only mount even as root (EROFS); a probe file is the
    last word for what permission bits cannot tell (e.g. an ACL or a full quota)."""
    if not os.access(root, os.W_OK | os.X_OK):
        return False
    probe = root / f".write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return True
    except OSError:
        return False
    os.close(fd)
    probe.unlink(missing_ok=True)
    return True


def _tighten(root: Path) -> None:
    """Close a data dir that others can enter (made before files were owner-only): once the
    root is 0700, nothing below it is reachable by other users, whatever its own mode."""
    info = root.stat()
    if info.st_uid != os.geteuid() or not info.st_mode & 0o077:
        return
    if any((root / name).exists() for name in _OURS) or not any(root.iterdir()):
        root.chmod(stat.S_IMODE(info.st_mode) & ~0o077)


def fsync_dir(directory: Path) -> None:
    """Make a new name (a rename, a created file) in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
