"""The build log: one JSON line per `pharmaflow build`, in `<warehouse dir>/builds.jsonl`.

Why a file of its own: a published snapshot says when the last *good* build finished, but a
scheduler, `pharmaflow check` and the metrics also need the builds that failed — their tests,
their errors, how long they took — and the age of the last success must survive a restart of
every process. The log is append-only (one `write` of one line per build, so a crash leaves at
most one torn last line, which readers skip) and bounded: past `MAX_BYTES` the newest
`KEEP_RECORDS` records are kept.

A record holds counts, names of failed tests and the first line of an error — never row
values, so it can be shown on a dashboard.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

FILE = "builds.jsonl"
MAX_BYTES = 2_000_000
KEEP_RECORDS = 1_000


@dataclass(frozen=True)
class BuildRecord:
    """One build: how it ended (`outcome`: success, tests_failed or error) and what it did."""

    build_id: str
    trace_id: str
    target: str
    started_at: datetime
    finished_at: datetime
    seconds: float
    outcome: str
    full_refresh_reason: str | None = None
    models_built: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    failed_tests: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    rows_set_aside: int = 0
    error: str | None = None

    @property
    def success(self) -> bool:
        return self.outcome == "success"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat()
        out["seconds"] = round(self.seconds, 3)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BuildRecord:
        values = dict(raw)
        for key in ("started_at", "finished_at"):
            values[key] = datetime.fromisoformat(values[key])
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in names})


def path(warehouse_dir: Path) -> Path:
    return warehouse_dir / FILE


def append(warehouse_dir: Path, record: BuildRecord) -> None:
    """Add one record (one write in append mode), trimming the file when it grew too big."""
    target = path(warehouse_dir)
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    line = orjson.dumps(record.to_dict()) + b"\n"
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    if target.stat().st_size > MAX_BYTES:
        _trim(target)


def _trim(target: Path) -> None:
    keep = target.read_bytes().splitlines()[-KEEP_RECORDS:]
    partial = target.with_suffix(".jsonl.partial")
    partial.write_bytes(b"".join(line + b"\n" for line in keep))
    os.replace(partial, target)


def read(warehouse_dir: Path) -> list[BuildRecord]:
    """Every readable record, oldest first (a torn or foreign line is skipped)."""
    try:
        raw = path(warehouse_dir).read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in raw.splitlines():
        try:
            records.append(BuildRecord.from_dict(orjson.loads(line)))
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            continue
    return records


def last(warehouse_dir: Path, *, success: bool | None = None) -> BuildRecord | None:
    """The newest record (or the newest successful / failed one)."""
    for record in reversed(read(warehouse_dir)):
        if success is None or record.success == success:
            return record
    return None


def now() -> datetime:
    return datetime.now(UTC)
