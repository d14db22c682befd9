"""`pharmaflow check` as a scheduler runs it: exit 0 with nothing breached, 1 on a breach, 2
for a bad `--only` (one line naming the valid rules), the `--json` object, thresholds from the
environment, and no heavy import for `--help`.

The data dir is made the way an operator makes one: `simulate` a window up to today and
`ingest` it (no build: the warehouse rules are then unknown, which is no breach); a build log
record of failed tests is appended with the build log's own API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pharmaflow.orchestrate.checks import RULES
from pharmaflow.warehouse import build_log
from pharmaflow.warehouse.build_log import BuildRecord
from tests.conftest import env_with_keys
from tests.e2e.test_cli_startup import heavy, run_importtime


def run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(COLUMNS="200", KAFKA_BOOTSTRAP_SERVERS="", **env),
        timeout=120,
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with a fresh ingest (events from yesterday to tomorrow), never built."""
    folder = tmp_path_factory.mktemp("check-cli")
    root, events = folder / "data", folder / "events.jsonl"
    start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    simulated = run(
        root, "simulate", "--out", str(events), "--start", start, "--days", "2", "--scale", "0.03"
    )
    assert simulated.returncode == 0, simulated.stderr
    landed = run(root, "ingest", "--source", str(events), "--json")
    assert landed.returncode == 0, landed.stderr
    return root


def test_nothing_breached_exits_0_and_prints_the_table(ingested):
    started = time.monotonic()
    result = run(ingested, "check")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "freshness_source" in result.stdout and "pharmacy.order.placed" in result.stdout
    assert "0 breached" in result.stdout
    assert took < 10  # the command, interpreter start included (measured ~1 s)


def test_json_is_one_object_with_every_result(ingested):
    result = run(ingested, "check", "--json")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.strip().splitlines()
    report = json.loads(line)
    assert set(report) == {"checked_at", "ok", "breached", "results"}
    assert report["ok"] is True and report["breached"] == 0
    assert datetime.fromisoformat(report["checked_at"]).tzinfo is not None
    assert {r["check"] for r in report["results"]} == set(RULES)
    for r in report["results"]:
        assert set(r) == {"check", "subject", "status", "value", "threshold", "unit", "detail"}
        assert r["status"] in ("ok", "unknown")
    statuses = {(r["check"], r["status"]) for r in report["results"]}
    assert ("freshness_source", "ok") in statuses and ("dead_letter_rate", "ok") in statuses
    assert ("build_age", "unknown") in statuses  # never built: unknown, not a breach


def test_a_breach_exits_1(ingested, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(ingested, root)
    now = datetime.now(UTC)
    build_log.append(
        root / "warehouse",
        BuildRecord(
            build_id="b1",
            trace_id="t",
            target="duckdb",
            started_at=now - timedelta(minutes=2),
            finished_at=now - timedelta(minutes=1),
            seconds=60.0,
            outcome="tests_failed",
            tests_passed=10,
            tests_failed=1,
            failed_tests=["unique_fact_shipment_shipment_id"],
        ),
    )
    result = run(root, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    # the failed tests, and no successful build at all
    assert "2 breached" in result.stdout and "breach" in result.stdout

    as_json = run(root, "check", "--json", "--only", "failed_tests")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["breached"] == 1
    assert [(r["check"], r["status"]) for r in report["results"]] == [("failed_tests", "breach")]
    assert "unique_fact_shipment_shipment_id" in report["results"][0]["detail"]


def test_thresholds_come_from_the_environment(ingested):
    strict = run(
        ingested, "check", "--only", "freshness_source", "--json",
        PHARMAFLOW_CHECK_SOURCE_MAX_AGE_MINUTES="0.0001",
    )  # fmt: skip
    assert strict.returncode == 1
    results = json.loads(strict.stdout)["results"]
    assert results and all(r["status"] == "breach" and r["threshold"] == 0.0001 for r in results)


def test_only_filters_and_repeats(ingested):
    result = run(ingested, "check", "--json", "--only", "build_age", "--only", "dead_letter_rate")
    assert result.returncode == 0, result.stderr
    checks = [r["check"] for r in json.loads(result.stdout)["results"]]
    assert checks == ["dead_letter_rate", "build_age"]  # in rule order


def test_a_bad_only_is_one_line_naming_the_valid_rules_and_exits_2(ingested):
    result = run(ingested, "check", "--only", "freshness")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pharmaflow: error:"), result.stderr
    assert all(rule in lines[0] for rule in RULES)


def test_check_help_loads_no_heavy_module(tmp_path):
    result, modules = run_importtime("check", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--only" in result.stdout and "--json" in result.stdout
    assert heavy(modules) == []
