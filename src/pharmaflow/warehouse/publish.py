"""Publish a read-only copy of the DuckDB warehouse after each successful build, for serving.

DuckDB allows one read-write process or many read-only ones, never both: an API holding the
warehouse open would make every build fail, and a build would lock the API out for its whole
run. So the build never shares its file. Once dbt has finished and the log is checkpointed into
the file (the file alone is then the whole warehouse), the build, still holding the write lock,
copies it to `warehouse/snapshots/<id>.duckdb` and switches `snapshots/current.json` to it with
one `os.replace`: a reader sees the old snapshot or the new one, never a half-written one.
Readers open snapshots read-only (serve/snapshots.py) and pick up a new one on their next
request; a snapshot that readers still hold stays readable after it is pruned (an open file
outlives its name on POSIX).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pharmaflow.config import Settings
from pharmaflow.datadir import DIR_MODE, FILE_MODE
from pharmaflow.errors import PharmaflowError

POINTER = "current.json"
SUFFIX = ".duckdb"


@dataclass(frozen=True)
class Published:
    """One published snapshot: `id` orders snapshots (UTC time of publication, then PID)."""

    id: str
    path: Path
    built_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.path.name, "built_at": self.built_at.isoformat()}


def publish(settings: Settings) -> Published | None:
    """Copy the (checkpointed) warehouse to a new snapshot and make it current. Call it with
    the warehouse's write lock held, so nothing writes the file while it is copied. Other
    targets serve from their own database: nothing to do (None)."""
    if settings.warehouse_target != "duckdb" or not settings.warehouse_path.exists():
        return None
    folder = settings.snapshots_dir
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    built_at = datetime.now(UTC)
    snap_id = f"{built_at:%Y%m%dT%H%M%S%fZ}-{os.getpid()}"
    final = folder / f"{snap_id}{SUFFIX}"
    partial = folder / f".{snap_id}{SUFFIX}.partial"
    try:
        shutil.copyfile(settings.warehouse_path, partial)
        os.chmod(partial, FILE_MODE)  # it holds what the warehouse holds: owner-only
        _fsync(partial)
        os.replace(partial, final)
        _write_pointer(folder, Published(snap_id, final, built_at))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise PharmaflowError(
            f"built, but could not publish the warehouse for serving in {folder}: "
            f"{exc.strerror or exc}"
        ) from None
    prune(folder, settings.snapshots_kept)
    return Published(snap_id, final, built_at)


def current(folder: Path) -> Published | None:
    """The snapshot serving should read now (None: no build has published one yet)."""
    try:
        meta = orjson.loads((folder / POINTER).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise PharmaflowError(
            f"cannot read the serving pointer {folder / POINTER}: {exc}; build again to "
            "publish a fresh snapshot"
        ) from None
    return Published(
        id=str(meta["id"]),
        path=folder / str(meta["file"]),
        built_at=datetime.fromisoformat(str(meta["built_at"])),
    )


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the `keep` newest snapshots (never the current one) and partial copies a
    crashed publish left. Readers holding a removed file keep reading it until they close."""
    now = current(folder)
    snaps = sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.name, reverse=True)
    doomed = [p for p in snaps[keep:] if now is None or p != now.path]
    stale = time.time() - 3600
    doomed += [p for p in folder.glob(f".*{SUFFIX}.partial") if p.stat().st_mtime < stale]
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(f"{path}.tmp")  # a reader's spill directory
    return doomed


def _write_pointer(folder: Path, snap: Published) -> None:
    tmp = folder / f".{POINTER}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(snap.to_dict()))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / POINTER)
    _fsync(folder)


def _fsync(path: Path) -> None:
    """Durable contents of a file, or durable names of a folder."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
