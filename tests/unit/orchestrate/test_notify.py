"""Pipeline failures through the alert store to a real HTTP receiver standing in for Slack:
fired once per failing task, resolved when the DAG next succeeds, never touched by the speed
layer's evaluator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.orchestrate import notify
from pharmaflow.realtime.alerts import IncidentStore, list_incidents
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database
from tests.receiver import Receiver

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _settings(tmp_path: Path, slack: Receiver, rule: str = "") -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "routes:\n"
        f"  - {{name: slack, type: slack, url: '{slack.url('/slack')}'}}\n"
        "defaults: {routes: [slack], repeat_interval: 4h}\n"
        "delivery: {timeout: 2s}\n"
        "rules:\n"
        "  - {id: coldchain_excursion, kind: coldchain_excursion, severity: critical}\n" + rule
    )
    return Settings(
        data_dir=tmp_path / "data", alert_rules=rules, realtime_store=str(tmp_path / "a.db")
    )


def _firing(settings: Settings) -> list[dict]:
    db = Database(settings.realtime_store_url)
    try:
        return list_incidents(db, "firing")
    finally:
        db.close()


def test_a_failed_task_fires_once_and_a_good_run_resolves_it(tmp_path, slack) -> None:
    settings = _settings(tmp_path, slack)
    error = PharmaflowError("2 check(s) breached: build_age warehouse: 30 h > 26 h\nsecond line")
    events = notify.task_failed(
        settings, "pharma_sla_monitoring", "check", run_id="r1", try_number=3, error=error, now=T0
    )
    assert events == ["fired"]
    (message,) = slack.bodies("/slack")
    assert message["text"].startswith("[CRITICAL] Pipeline task pharma_sla_monitoring.check")
    assert "build_age warehouse" in message["text"] and "second line" not in str(message)
    # the same task failing again within the repeat interval notifies nobody
    again = notify.task_failed(
        settings, "pharma_sla_monitoring", "check", error=error, now=T0 + timedelta(minutes=15)
    )
    assert again == [] and len(slack.bodies("/slack")) == 1
    # the speed layer's evaluator (every open incident not of a snapshot rule) leaves it open
    rules = AlertRules.load(settings.alert_rules)
    db = Database(settings.realtime_store_url)
    try:
        IncidentStore(db, rules).record({}, T0 + timedelta(minutes=20))
    finally:
        db.close()
    assert [i["key"] for i in _firing(settings)] == ["pipeline_failure:pharma_sla_monitoring.check"]
    # another DAG's success does not resolve it; its own does
    assert notify.dag_succeeded(settings, "pharma_marts_daily", now=T0 + timedelta(hours=1)) == []
    resolved = notify.dag_succeeded(settings, "pharma_sla_monitoring", now=T0 + timedelta(hours=1))
    assert resolved == ["pipeline_failure:pharma_sla_monitoring.check"]
    assert _firing(settings) == []
    assert slack.bodies("/slack")[-1]["text"].startswith("[RESOLVED]")
    # nothing open: a good run sends nothing
    assert (
        notify.dag_succeeded(settings, "pharma_sla_monitoring", now=T0 + timedelta(hours=2)) == []
    )
    assert len(slack.bodies("/slack")) == 2


def test_the_rules_file_chooses_severity_or_silences_pipeline_alerts(tmp_path, slack) -> None:
    warn = _settings(
        tmp_path / "w", slack, "  - {id: jobs, kind: pipeline_failure, severity: warning}\n"
    )
    notify.task_failed(warn, "pharma_marts_daily", "dbt_build", error="dbt could not run", now=T0)
    assert slack.bodies("/slack")[-1]["text"].startswith("[WARNING] Pipeline task")
    off = _settings(
        tmp_path / "o",
        slack,
        "  - {id: jobs, kind: pipeline_failure, severity: warning, enabled: false}\n",
    )
    assert notify.task_failed(off, "pharma_marts_daily", "dbt_build", now=T0) == []
    assert len(slack.bodies("/slack")) == 1


def test_the_reserved_rule_id_needs_its_kind(tmp_path) -> None:
    with pytest.raises(PharmaflowError, match=r"pipeline_failure.*kept for the pipeline failure"):
        AlertRules.parse(
            "rules:\n  - {id: pipeline_failure, kind: coldchain_excursion, severity: critical}\n"
        )


def test_callbacks_never_raise(tmp_path, monkeypatch) -> None:
    """A notification that cannot be recorded must not change the task's outcome."""
    monkeypatch.setenv("PHARMAFLOW_REALTIME_STORE", str(tmp_path / "missing-dir" / "x" / "a.db"))
    monkeypatch.setenv("PHARMAFLOW_ALERT_RULES", str(tmp_path / "no-such-rules.yaml"))

    class Ti:
        dag_id, task_id, run_id, try_number = "d", "t", "r", 1

    notify.on_task_failure({"ti": Ti(), "exception": RuntimeError("boom")})
    notify.on_task_retry({"ti": Ti(), "exception": RuntimeError("boom")})
