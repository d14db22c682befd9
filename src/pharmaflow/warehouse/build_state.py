"""When an incremental build would be wrong, and a full refresh is needed instead.

Incremental silver and gold (dbt/macros/incremental.sql) are only correct while the code that
made the existing rows and the reference data they joined are the ones in force. So each
successful build records a fingerprint of the prepared dbt project (models, macros, snapshots,
seeds after the user's reference files are laid over them, and the target); a build whose
fingerprint differs rebuilds silver and gold from bronze. Reference history is not lost: the
snapshots keep every version and a full refresh does not touch them, so facts rebuilt after a
region change still join the region valid at their event time.

A build marks the state "unfinished" before dbt may change a table (so a build killed half-way
is followed by a full refresh), and puts the previous record back when dbt changed nothing
(it could not start, or failed before any seed, snapshot or model ran): a reader holding the
warehouse or a full disk at the first write never costs a full refresh.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

STATE_FILE = "build-state.json"
# What decides the rows: everything but docs and dbt's own state.
HASHED_DIRS = ("models", "macros", "snapshots", "seeds", "tests")
UNFINISHED = "the last build did not finish"


def fingerprint(project: Path, target: str) -> str:
    digest = hashlib.sha256()
    digest.update(target.encode())
    digest.update((project / "dbt_project.yml").read_bytes())
    for folder in HASHED_DIRS:
        for path in sorted((project / folder).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(project)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _state_path(warehouse_dir: Path, target: str) -> Path:
    return warehouse_dir / f"{target}-{STATE_FILE}"


def _unfinished_path(warehouse_dir: Path, target: str) -> Path:
    return warehouse_dir / f"{target}-build-unfinished"


def needs_full_refresh(warehouse_dir: Path, target: str, current: str) -> str | None:
    """Why the next build must be a full refresh, or None when incremental is safe."""
    if _unfinished_path(warehouse_dir, target).exists():
        return UNFINISHED
    path = _state_path(warehouse_dir, target)
    if not path.exists():
        return "first build"
    try:
        state = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        state = None
    if not isinstance(state, dict):
        return "the build state file is unreadable"
    if state.get("fingerprint") != current:
        return "the dbt project or the reference data changed since the last build"
    return None


def record(warehouse_dir: Path, target: str, current: str) -> None:
    """Remember the fingerprint of a successful build (written atomically)."""
    path = _state_path(warehouse_dir, target)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"fingerprint": current}))
    tmp.replace(path)
    _unfinished_path(warehouse_dir, target).unlink(missing_ok=True)


def mark_unfinished(warehouse_dir: Path, target: str) -> None:
    """Before dbt may change a table: until a build succeeds, the next one is a full refresh
    (a build that stops half-way leaves some tables updated and others not). A marker beside
    the record, so `restore` needs no disk space (the disk may be what is full)."""
    _unfinished_path(warehouse_dir, target).touch()


def restore(warehouse_dir: Path, target: str) -> None:
    """A build that changed no table: the state is what it was before it started."""
    _unfinished_path(warehouse_dir, target).unlink(missing_ok=True)
