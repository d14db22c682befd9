"""build_age and failed_tests over real build logs, hostile lines included: the log is a file
anyone with access to the data dir can write, and what it says ends up on terminals, in JSON
and in Prometheus labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pharmaflow.config import Settings
from pharmaflow.orchestrate.check import run_checks
from pharmaflow.orchestrate.checks.builds import build_age, failed_tests
from pharmaflow.warehouse import build_log
from tests.factories import build_record

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", check_build_max_age_hours=6.0)


def append_line(settings: Settings, line: bytes) -> None:
    path = build_log.path(settings.warehouse_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        fh.write(line)


def test_no_build_log_is_unknown(settings):
    for rule in (build_age, failed_tests):
        [result] = rule(settings, NOW)
        assert result.status == "unknown" and "pharmaflow build" in result.detail


def test_build_age_is_the_age_of_the_last_success_not_of_the_newest_build(settings):
    build_log.append(settings.warehouse_dir, build_record(NOW - timedelta(hours=8)))
    build_log.append(
        settings.warehouse_dir, build_record(NOW - timedelta(hours=1), "error", error="disk full")
    )
    [result] = build_age(settings, NOW)
    assert result.status == "breach"
    assert result.value == pytest.approx(8.0) and result.threshold == 6.0
    assert result.unit == "hours" and "ended error" in result.detail

    build_log.append(settings.warehouse_dir, build_record(NOW - timedelta(minutes=30)))
    [result] = build_age(settings, NOW)
    assert result.status == "ok" and result.value == pytest.approx(0.5)


def test_only_failed_builds_is_a_breach_without_a_value(settings):
    build_log.append(settings.warehouse_dir, build_record(NOW - timedelta(hours=1), "tests_failed"))
    build_log.append(settings.warehouse_dir, build_record(NOW - timedelta(minutes=5), "error"))
    [result] = build_age(settings, NOW)
    assert result.status == "breach" and result.value is None
    assert "no successful build among the 2" in result.detail


def test_failed_tests_judges_the_newest_build_and_names_its_tests(settings):
    build_log.append(
        settings.warehouse_dir,
        build_record(
            NOW - timedelta(hours=2), "tests_failed", tests_failed=1, failed_tests=["old_test"]
        ),
    )
    build_log.append(
        settings.warehouse_dir,
        build_record(
            NOW - timedelta(hours=1),
            "tests_failed",
            tests_passed=400,
            tests_failed=2,
            failed_tests=["unique_fact_shipment_shipment_id", "not_null_dim_lot_lot_number"],
        ),
    )
    [result] = failed_tests(settings, NOW)
    assert result.status == "breach" and result.value == 2 and result.threshold == 0
    assert "not_null_dim_lot_lot_number, unique_fact_shipment_shipment_id" in result.detail
    assert "old_test" not in result.detail and "400 passed" in result.detail

    build_log.append(settings.warehouse_dir, build_record(NOW, tests_passed=402))
    [result] = failed_tests(settings, NOW)
    assert result.status == "ok" and result.value == 0


def test_a_threshold_of_tolerated_failures(settings):
    build_log.append(
        settings.warehouse_dir,
        build_record(NOW, "tests_failed", tests_failed=2, failed_tests=["a", "b"]),
    )
    tolerant = settings.model_copy(update={"check_failed_tests_max": 2})
    assert failed_tests(tolerant, NOW)[0].status == "ok"


def test_an_errored_newest_build_ran_no_tests_so_failed_tests_is_unknown(settings):
    build_log.append(
        settings.warehouse_dir,
        build_record(NOW, "error", error="dbt could not start\nTraceback (most recent call last)"),
    )
    [result] = failed_tests(settings, NOW)
    assert result.status == "unknown"
    assert "dbt could not start" in result.detail and "\n" not in result.detail


def test_hostile_lines_are_skipped_or_defused(settings):
    """Torn lines, foreign JSON, wrong types, control characters and floods of names: the
    rules still answer, on one line each, with a bounded detail."""
    good = build_record(NOW - timedelta(hours=1), tests_passed=10)
    build_log.append(settings.warehouse_dir, good)
    for line in (
        b'{"build_id": "torn", "outcome": "succ',  # torn (a crash mid-write)
        b"\n[1, 2, 3]\n",  # foreign JSON
        b'"just a string"\n',
        b"null\n",
        b'{"build_id": "x"}\n',  # missing fields
        b'{"build_id": 1, "trace_id": "t", "target": "duckdb", "started_at": 5, '
        b'"finished_at": "yesterday", "seconds": 1, "outcome": "success"}\n',  # bad times
        b"\xff\xfe not utf-8\n",
    ):
        append_line(settings, line)
    [age] = build_age(settings, NOW)
    assert age.status == "ok" and age.value == pytest.approx(1.0)

    raw = good.to_dict() | {
        "build_id": "hostile",
        "finished_at": (NOW - timedelta(minutes=1)).replace(tzinfo=None).isoformat(),  # naive
        "outcome": "tests_failed",
        "tests_failed": "3",  # not a count
        "failed_tests": ["evil\nname\x1b[2J", 42, None, "", "y" * 5000]
        + [f"test_{i:04d}" for i in range(2000)],
    }
    append_line(settings, orjson.dumps(raw) + b"\n")
    [result] = failed_tests(settings, NOW)
    assert result.status == "breach"
    assert result.value == 2002  # the count is unreadable: the names it lists count
    assert "\n" not in result.detail and "\x1b" not in result.detail
    assert "evil name" in result.detail and "and 1997 more" in result.detail
    assert len(result.detail) <= 300

    append_line(settings, orjson.dumps(raw | {"failed_tests": "a string", "tests_failed": -1}))
    append_line(settings, b"\n")
    [result] = failed_tests(settings, NOW)
    assert result.status == "unknown" and "unreadable" in result.detail


def test_a_build_finished_in_the_future_is_not_stale(settings):
    build_log.append(settings.warehouse_dir, build_record(NOW + timedelta(hours=3)))
    [result] = build_age(settings, NOW)
    assert result.status == "ok" and result.value == 0


def test_an_unreadable_log_is_unknown_and_the_other_rules_still_run(settings):
    build_log.path(settings.warehouse_dir).mkdir(parents=True)  # a folder where the log goes
    report = run_checks(settings, now=NOW, only=["build_age", "failed_tests", "freshness_source"])
    by_rule = {r.check: r for r in report.results}
    assert by_rule["build_age"].status == "unknown"
    assert "could not run: IsADirectoryError" in by_rule["build_age"].detail
    assert by_rule["failed_tests"].status == "unknown"
    assert by_rule["freshness_source"].detail == "no event landed in the lake yet"
