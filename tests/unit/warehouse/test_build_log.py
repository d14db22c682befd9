"""The build log: one line per build, readable after torn writes, bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pharmaflow.warehouse import build_log
from tests.factories import build_record

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def record(i: int, outcome: str = "success", **kw: object) -> build_log.BuildRecord:
    return build_record(
        T0 + timedelta(hours=i, seconds=30), outcome, build_id=f"b{i}", seconds=30.0, **kw
    )


def test_records_round_trip_and_last_finds_by_outcome(tmp_path: Path) -> None:
    build_log.append(tmp_path, record(1))
    build_log.append(
        tmp_path, record(2, "tests_failed", tests_failed=2, failed_tests=["unique_x", "nn_y"])
    )
    records = build_log.read(tmp_path)
    assert [r.build_id for r in records] == ["b1", "b2"]
    assert records[1].failed_tests == ["unique_x", "nn_y"] and not records[1].success
    assert build_log.last(tmp_path).build_id == "b2"
    assert build_log.last(tmp_path, success=True).build_id == "b1"
    assert build_log.last(tmp_path, success=True).finished_at == T0 + timedelta(hours=1, seconds=30)
    assert oct(build_log.path(tmp_path).stat().st_mode & 0o777) == "0o600"


def test_a_torn_or_foreign_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    build_log.append(tmp_path, record(1))
    with build_log.path(tmp_path).open("ab") as f:
        f.write(b'{"build_id": "b2", "outcome": "succ')  # a crash mid-write
        f.write(b"\nnot json\n[1, 2]\n" + b'{"build_id": "x"}\n' + "\u2028é\n".encode())
    build_log.append(tmp_path, record(3))
    assert [r.build_id for r in build_log.read(tmp_path)] == ["b1", "b3"]


def test_no_log_means_no_builds(tmp_path: Path) -> None:
    assert build_log.read(tmp_path / "missing") == []
    assert build_log.last(tmp_path / "missing") is None


def test_the_log_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_log, "MAX_BYTES", 5_000)
    monkeypatch.setattr(build_log, "KEEP_RECORDS", 10)
    for i in range(100):
        build_log.append(tmp_path, record(i, failures=["x" * 50]))
    records = build_log.read(tmp_path)
    assert 10 <= len(records) < 30
    assert records[-1].build_id == "b99"
    assert build_log.path(tmp_path).stat().st_size <= 5_000 + 1_000
