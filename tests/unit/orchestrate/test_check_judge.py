"""The pure part of `pharmaflow check`: thresholds, ages, one-line details, the report's JSON,
the rule filter, and the CLI's rendering of a value against its threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pharmaflow.cli.check import measured
from pharmaflow.config import Settings
from pharmaflow.orchestrate.check import (
    CheckReport,
    CheckResult,
    UnknownRule,
    run_checks,
)
from pharmaflow.orchestrate.checks import RULES
from pharmaflow.orchestrate.checks.judge import (
    age,
    count_list,
    judged,
    one_line,
    status_of,
    unknown,
    utc,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "threshold", "status"),
    [
        (None, 5.0, "unknown"),
        (None, None, "unknown"),
        (0.0, 0.0, "ok"),
        (5.0, 5.0, "ok"),  # at the threshold: still ok
        (5.0001, 5.0, "breach"),
        (1.0, 0.0, "breach"),
        (3.0, None, "ok"),  # nothing to exceed
    ],
)
def test_a_value_above_its_threshold_is_a_breach_and_no_value_is_unknown(value, threshold, status):
    assert status_of(value, threshold) == status
    assert judged("build_age", "warehouse", value, threshold, "hours").status == status


def test_unknown_is_never_a_breach():
    report = CheckReport(NOW, [unknown("consumer_lag", "kafka", "no Kafka configured")])
    assert report.ok and report.breached == []
    report.results.append(judged("build_age", "warehouse", 7.0, 6.0, "hours"))
    assert not report.ok and [r.check for r in report.breached] == ["build_age"]


def test_ages_are_in_units_and_never_negative():
    assert age(NOW, NOW - timedelta(minutes=90), 60.0) == pytest.approx(90.0)
    assert age(NOW, NOW - timedelta(hours=3), 3600.0) == pytest.approx(3.0)
    assert age(NOW, NOW + timedelta(hours=1), 3600.0) == 0.0  # a clock ahead is not staleness


def test_naive_times_are_utc_and_aware_ones_are_converted():
    naive = datetime(2026, 12, 2, 12, 0)
    assert utc(naive) == NOW
    assert utc(datetime(2026, 12, 2, 13, 0, tzinfo=timezone(timedelta(hours=1)))) == NOW
    assert age(NOW, naive, 1.0) == 0.0


def test_details_are_one_short_line_whatever_they_are_made_of():
    hostile = "line one\nline two\r\x1b[31mred\x1b[0m\u2028sep\ttab\x00nul"
    flat = one_line(hostile)
    assert "\n" not in flat and "\r" not in flat and "\x1b" not in flat and "\x00" not in flat
    assert "\u2028" not in flat and "\t" not in flat
    assert flat.startswith("line one line two")
    long = one_line("x" * 10_000, 50)
    assert len(long) == 50 and long.endswith("…")
    assert one_line(None) == "None"
    assert judged("x", "y", 1, 2, "u", "a\nb").detail == "a b"


def test_count_lists_show_the_largest_first_and_say_how_many_more():
    assert count_list({"b": 2, "a": 2, "c": 9}) == "c 9, a 2, b 2"
    many = {f"r{i}": i for i in range(8)}
    assert count_list(many, 3) == "r7 7, r6 6, r5 5 and 5 more"


def test_the_report_json_names_checked_at_ok_breached_and_every_result():
    results = [
        judged("build_age", "warehouse", 1.5, 6.0, "hours", "fine"),
        judged("failed_tests", "warehouse", 2, 0, "tests", "two"),
        unknown("consumer_lag", "kafka", "no Kafka configured", 10.0, "records"),
    ]
    out = CheckReport(NOW, results).to_dict()
    assert out["checked_at"] == NOW.isoformat()
    assert out["ok"] is False and out["breached"] == 1
    assert [r["status"] for r in out["results"]] == ["ok", "breach", "unknown"]
    assert set(out["results"][0]) == {
        "check", "subject", "status", "value", "threshold", "unit", "detail",
    }  # fmt: skip
    assert out["results"][2]["value"] is None


def test_only_runs_the_rules_named_and_refuses_a_stranger(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    report = run_checks(settings, now=NOW, only=["build_age", "failed_tests"])
    assert [r.check for r in report.results] == ["build_age", "failed_tests"]
    with pytest.raises(UnknownRule, match="freshness_source"):
        run_checks(settings, now=NOW, only=["build_age", "no_such_rule"])


def test_an_empty_data_dir_is_all_unknown_and_not_breached(tmp_path):
    """Nothing ingested, built or configured: every rule says why it cannot judge."""
    settings = Settings(data_dir=tmp_path / "data", kafka_bootstrap_servers=None)
    report = run_checks(settings, now=NOW)
    assert report.ok
    assert {r.check for r in report.results} == set(RULES)
    assert all(r.status == "unknown" and r.detail for r in report.results), report.results
    assert report.checked_at == NOW
    assert not (tmp_path / "data" / "warehouse").exists()  # a check creates nothing


def test_a_naive_now_is_utc():
    settings = Settings(data_dir="/nonexistent/data")
    report = run_checks(settings, now=datetime(2026, 12, 2, 12, 0), only=["build_age"])
    assert report.checked_at == NOW


@pytest.mark.parametrize(
    ("result", "shown"),
    [
        (CheckResult("a", "b", "ok", 18.2737, 60.0, "minutes"), "18.3 / 60 min"),
        (CheckResult("a", "b", "breach", 2049.0, 50.0, "orders"), "2,049 / 50 orders"),
        (CheckResult("a", "b", "ok", 0.005, 0.05, "ratio"), "0.50% / 5.00%"),
        (CheckResult("a", "b", "unknown", None, 6.0, "hours"), "— / 6 h"),
        (CheckResult("a", "b", "unknown", None, None, ""), "—"),
    ],
)
def test_the_table_shows_value_against_threshold(result, shown):
    assert measured(result) == shown
