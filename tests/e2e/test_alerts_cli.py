"""`pharmaflow alerts` as an operator runs it: incidents listed from a real store (filtered,
as JSON, limited), a bad rules file refused in one line, and no heavy import for --help."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pharmaflow.realtime.alerts import Alerting
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.snapshot import OrderWaiting, ShipmentState, Snapshot
from tests.conftest import env_with_keys
from tests.e2e.test_cli_startup import heavy, run_importtime

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(COLUMNS="200"),
        timeout=60,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pharmaflow: error:"), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data dir whose default store holds 3 incidents: two firing, one resolved."""
    root = tmp_path_factory.mktemp("alerts-cli") / "data"
    db = Database(root / "realtime" / "state.db")
    alerting = Alerting(db, AlertRules.load(None))  # routes disabled: recorded, not sent
    cold = ShipmentState("SHP-123", "CAR-7", True, 45.0, True, 9.5, 2.0, 8.0, T0)
    stuck = OrderWaiting("ORD-9", "PH-001", "placed", T0 - timedelta(hours=3), 3 * 3600.0)
    alerting.evaluate(Snapshot(T0, T0, shipments=[cold], orders=[stuck]), T0)
    later = T0 + timedelta(minutes=30)
    alerting.evaluate(Snapshot(later, later, orders=[stuck]), later)  # SHP-123 resolves
    cold2 = ShipmentState("SHP-456", "CAR-8", True, 5.0, True, 8.9, 2.0, 8.0, later)
    alerting.evaluate(Snapshot(later, later, orders=[stuck], shipments=[cold2]), later)
    db.close()
    return root


def test_list_shows_every_incident_newest_first(data_dir):
    result = run(data_dir, "alerts", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "3 incidents (2 firing)"
    keys = [k for k in ("SHP-456", "SHP-123", "ORD-9") if k in result.stdout]
    assert keys == ["SHP-456", "SHP-123", "ORD-9"]
    assert result.stdout.index("SHP-456") < result.stdout.index("ORD-9")
    assert "coldchain_excursion:SHP-123" in result.stdout
    assert "2026-03-02 12:00:00" in result.stdout and "2026-03-02 12:30:00" in result.stdout
    assert "Order ORD-9 (pharmacy PH-001) stuck in placed for 3.0 h" in result.stdout


def test_list_filters_by_state_limits_and_prints_json(data_dir, tmp_path):
    firing = run(data_dir, "alerts", "list", "--state", "firing", "--json")
    assert firing.returncode == 0, firing.stderr
    incidents = json.loads(firing.stdout.splitlines()[-1])
    assert sorted(i["key"] for i in incidents) == [
        "coldchain_excursion:SHP-456",
        "order_stuck:ORD-9",
    ]
    assert {i["state"] for i in incidents} == {"firing"}
    assert incidents[0]["events"][0]["event"] == "fired"
    assert incidents[0]["events"][0]["detail"] == "no enabled route"

    resolved = json.loads(run(data_dir, "alerts", "list", "--state", "resolved", "--json").stdout)
    assert [(i["key"], i["resolved_at"]) for i in resolved] == [
        ("coldchain_excursion:SHP-123", "2026-03-02T12:30:00Z")
    ]
    assert [e["event"] for e in resolved[0]["events"]] == ["fired", "resolved"]
    limited = json.loads(run(data_dir, "alerts", "list", "--limit", "1", "--json").stdout)
    assert [i["key"] for i in limited] == ["coldchain_excursion:SHP-456"]

    store = data_dir / "realtime" / "state.db"
    other = run(tmp_path / "elsewhere", "alerts", "list", "--store", str(store), "--json")
    assert len(json.loads(other.stdout)) == 3
    bad = run(data_dir, "alerts", "list", "--state", "open")
    assert bad.returncode == 2 and "'open' is not one of" in bad.stderr


def test_list_without_a_store_is_one_line(tmp_path):
    line = one_error_line(run(tmp_path / "data", "alerts", "list"))
    assert "no realtime store at" in line and "realtime/state.db" in line
    assert not (tmp_path / "data" / "realtime" / "state.db").exists()  # nothing was created


def test_rules_prints_the_shipped_rules_and_a_bad_file_is_one_line(tmp_path):
    shipped = run(tmp_path / "data", "alerts", "rules")
    assert shipped.returncode == 0, shipped.stderr
    assert "rules: default" in shipped.stdout and "6 rules enabled, 2 routes" in shipped.stdout
    assert "DISABLED: environment variable PHARMAFLOW_ALERTS_SLACK_URL is not set" in (
        shipped.stdout
    )
    as_json = json.loads(run(tmp_path / "data", "alerts", "rules", "--json").stdout)
    assert [r["id"] for r in as_json["rules"]][:2] == ["coldchain_excursion", "sensor_out_of_spec"]
    assert as_json["rules"][-1]["thresholds"]["over"] == "1h"

    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - id: order_stuck\n    kind: order_stuck\n    severity: warning\n"
        "    thresholds:\n      hours: {placed: soon}\n"
    )
    line = one_error_line(run(tmp_path / "data", "alerts", "rules", "--file", str(bad)))
    assert line == (
        f"pharmaflow: error: alert rules {bad}: rule 'order_stuck' field "
        "thresholds.hours.placed: Input should be a valid number, unable to parse string as "
        "a number"
    )
    missing = one_error_line(run(tmp_path / "data", "alerts", "rules", "--file", "nope.yaml"))
    assert missing == "pharmaflow: error: alert rules file nope.yaml not found"


def test_alerts_help_loads_no_heavy_module(tmp_path):
    for args in (["alerts", "--help"], ["alerts", "list", "--help"]):
        result, modules = run_importtime(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert heavy(modules) == [], args
