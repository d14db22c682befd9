"""The API's build and health metrics (serve/api/health_metrics.py): the build log as
counters and gauges, `pharmaflow check` as gauges per rule and subject — cached, in a thread
of its own, and never able to break /metrics."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pharmaflow.config import Settings
from pharmaflow.orchestrate.check import CheckReport, CheckResult
from pharmaflow.serve.api.health_metrics import HealthCollector
from pharmaflow.serve.api.metrics import ApiMetrics
from pharmaflow.warehouse import build_log

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RULES = (
    "freshness_source", "freshness_gold", "consumer_lag", "dead_letter_rate", "delivery_sla",
    "build_age", "failed_tests",
)  # fmt: skip


def record(n: int, outcome: str, seconds: float = 30.0, tests_failed: int = 0):
    finished = T0 + timedelta(minutes=5 * n)
    return build_log.BuildRecord(
        build_id=f"b{n}",
        trace_id="t",
        target="duckdb",
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
        seconds=seconds,
        outcome=outcome,
        tests_failed=tests_failed,
    )


class Checks:
    """A stand-in for run_checks: counts its calls, returns `results` (or raises `error`)."""

    def __init__(self, results: list[CheckResult], delay: float = 0.0) -> None:
        self.results = results
        self.delay = delay
        self.calls = 0
        self.error: Exception | None = None

    def __call__(self, _settings: Settings) -> CheckReport:
        self.calls += 1
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return CheckReport(datetime.now(UTC), list(self.results))


def idle() -> None:
    """Wait for the checks' background run to end."""
    for thread in threading.enumerate():
        if thread.name == "pharmaflow-check-metrics":
            thread.join(10)


def registry_with(collector: HealthCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return registry


@pytest.fixture
def data_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def test_registering_does_not_run_the_checks(data_settings):
    checks = Checks([])
    registry_with(HealthCollector(data_settings, run_checks=checks))
    assert checks.calls == 0


def test_the_build_log_becomes_runs_by_outcome_and_the_newest_builds_figures(data_settings):
    registry = registry_with(HealthCollector(data_settings, run_checks=Checks([])))
    sample = registry.get_sample_value
    for outcome in ("success", "tests_failed", "error"):  # no log yet: zeros, no gauges
        assert sample("pharmaflow_build_runs_total", {"outcome": outcome}) == 0
    assert sample("pharmaflow_build_duration_seconds") is None
    assert sample("pharmaflow_build_last_success_timestamp_seconds") is None

    build_log.append(data_settings.warehouse_dir, record(1, "success", 40.0))
    build_log.append(data_settings.warehouse_dir, record(2, "error", 3.0))
    build_log.append(data_settings.warehouse_dir, record(3, "tests_failed", 55.0, tests_failed=4))
    assert sample("pharmaflow_build_runs_total", {"outcome": "success"}) == 1
    assert sample("pharmaflow_build_runs_total", {"outcome": "error"}) == 1
    assert sample("pharmaflow_build_runs_total", {"outcome": "tests_failed"}) == 1
    assert sample("pharmaflow_build_duration_seconds") == 55.0
    assert sample("pharmaflow_build_tests_failed") == 4
    assert (
        sample("pharmaflow_build_last_timestamp_seconds") == record(3, "x").finished_at.timestamp()
    )
    assert sample("pharmaflow_build_last_success_timestamp_seconds") == (
        record(1, "x").finished_at.timestamp()
    )

    # the next build passes: read again because the file changed; a torn line is skipped
    with build_log.path(data_settings.warehouse_dir).open("ab") as log:
        log.write(b'{"build_id": "torn"')
        log.write(b"\n")
    build_log.append(data_settings.warehouse_dir, record(4, "success", 20.0))
    assert sample("pharmaflow_build_runs_total", {"outcome": "success"}) == 2
    assert sample("pharmaflow_build_tests_failed") == 0
    assert sample("pharmaflow_build_last_success_timestamp_seconds") == (
        record(4, "x").finished_at.timestamp()
    )


def test_check_results_become_value_threshold_and_breached_per_rule_and_subject(data_settings):
    checks = Checks(
        [
            CheckResult("freshness_gold", "fact_order_lifecycle", "breach", 7.5, 2.0, "h"),
            CheckResult("freshness_gold", "dim_lot", "ok", 0.5, 2.0, "h"),
            CheckResult("consumer_lag", "pharmaflow-ingest", "unknown", None, 10_000.0, "records"),
            CheckResult("delivery_sla", "all", "ok", 0.01, None, "ratio"),
            CheckResult("delivery_sla", "all", "breach", 0.9, 0.1, "ratio"),  # a duplicate key
        ]
    )
    registry = registry_with(HealthCollector(data_settings, run_checks=checks))
    sample = registry.get_sample_value
    gold = {"check": "freshness_gold", "subject": "fact_order_lifecycle"}
    assert sample("pharmaflow_check_value", gold) == 7.5
    assert sample("pharmaflow_check_threshold", gold) == 2.0
    assert sample("pharmaflow_check_breached", gold) == 1
    assert (
        sample("pharmaflow_check_breached", {"check": "freshness_gold", "subject": "dim_lot"}) == 0
    )
    lag = {"check": "consumer_lag", "subject": "pharmaflow-ingest"}
    assert sample("pharmaflow_check_value", lag) is None  # unknown: no value, not a made-up 0
    assert sample("pharmaflow_check_threshold", lag) == 10_000
    assert sample("pharmaflow_check_breached", lag) == 0
    sla = {"check": "delivery_sla", "subject": "all"}
    assert sample("pharmaflow_check_threshold", sla) is None
    assert sample("pharmaflow_check_breached", sla) == 0  # the first of a duplicated key
    assert sample("pharmaflow_check_run_errors_total") == 0
    assert sample("pharmaflow_check_last_run_timestamp_seconds") == pytest.approx(
        time.time(), abs=60
    )
    generate_latest(registry)  # one sample per series: the exposition is valid


def test_checks_run_at_most_once_per_ttl(data_settings):
    checks = Checks([CheckResult("build_age", "warehouse", "ok", 1.0, 6.0, "h")])
    registry = registry_with(HealthCollector(data_settings, run_checks=checks, check_ttl=30))
    for _ in range(5):
        assert (
            registry.get_sample_value(
                "pharmaflow_check_breached", {"check": "build_age", "subject": "warehouse"}
            )
            == 0
        )
    assert checks.calls == 1
    fresh = registry_with(HealthCollector(data_settings, run_checks=checks, check_ttl=0))
    generate_latest(fresh)  # no result yet: waits for the first
    generate_latest(fresh)  # a result to show: refreshes in the background
    idle()
    assert checks.calls == 3


def test_a_failing_check_is_counted_and_never_breaks_the_scrape(data_settings, caplog):
    checks = Checks([CheckResult("build_age", "warehouse", "breach", 9.0, 6.0, "h")])
    checks.error = RuntimeError("the lake is on fire\nsecond line")
    registry = registry_with(HealthCollector(data_settings, run_checks=checks, check_ttl=0))
    text = generate_latest(registry).decode()  # no result yet: the scrape waits for the run
    assert "pharmaflow_check_run_errors_total 1.0" in text
    assert "pharmaflow_build_runs_total" in text  # the rest of the page is there
    assert "pharmaflow_check_breached{" not in text
    assert "RuntimeError the lake is on fire" in caplog.text and "second line" not in caplog.text

    breached = 'pharmaflow_check_breached{check="build_age",subject="warehouse"} 1.0'
    checks.error = None  # it recovers at the next run
    text = generate_latest(registry).decode()
    assert breached in text and "pharmaflow_check_run_errors_total 1.0" in text

    checks.error = ValueError("again")  # a failure keeps the last good result on show
    generate_latest(registry)  # a result to show: the run goes on in the background
    idle()
    text = generate_latest(registry).decode()
    assert breached in text
    errors = re.search(r"^pharmaflow_check_run_errors_total (\S+)$", text, flags=re.M)
    assert errors is not None and float(errors.group(1)) >= 2


def test_a_slow_check_does_not_hold_up_the_scrape(data_settings):
    checks = Checks([CheckResult("failed_tests", "warehouse", "ok", 0.0, 0.0, "tests")], delay=4.0)
    collector = HealthCollector(data_settings, run_checks=checks, check_wait=0.1)
    registry = registry_with(collector)
    started = time.monotonic()
    text = generate_latest(registry).decode()
    assert time.monotonic() - started < 3.0  # the check itself takes 4 s
    assert "pharmaflow_check_breached{" not in text  # nothing yet, and no error either
    assert "pharmaflow_check_run_errors_total 0.0" in text
    deadline = time.monotonic() + 10
    while (
        registry.get_sample_value(
            "pharmaflow_check_breached", {"check": "failed_tests", "subject": "warehouse"}
        )
        is None
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert checks.calls == 1
    assert not [t for t in threading.enumerate() if t.name == "pharmaflow-check-metrics"]


def test_the_api_registry_carries_the_health_metrics_when_given_settings(data_settings):
    build_log.append(data_settings.warehouse_dir, record(1, "success"))
    with_health = ApiMetrics(data_settings)
    assert with_health.health is not None
    assert (
        with_health.registry.get_sample_value("pharmaflow_build_runs_total", {"outcome": "success"})
        == 1
    )
    plain = ApiMetrics()
    assert plain.health is None
    assert b"pharmaflow_build_" not in plain.response().body


def test_the_real_checks_on_a_real_data_dir_export_a_result_per_rule(settings):
    """`orchestrate.check.run_checks` itself, on a data dir with a lake and a build log (and
    no broker): every rule gives at least one result, and none raised."""
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.simulate.config import SimConfig
    from pharmaflow.simulate.simulator import simulate

    events = settings.root.parent / "events.jsonl"
    simulate(SimConfig(seed=5, days=1, scale=0.02), events)
    run_ingest(settings, str(events))
    build_log.append(settings.warehouse_dir, record(1, "success"))
    registry = registry_with(HealthCollector(settings, check_wait=60))
    text = generate_latest(registry).decode()
    assert "pharmaflow_check_run_errors_total 0.0" in text, "run_checks raised: see the log"
    breached = {
        s.labels["check"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "pharmaflow_check_breached"
    }
    assert breached == set(RULES)
