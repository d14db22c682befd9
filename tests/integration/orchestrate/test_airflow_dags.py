"""The Airflow 3 DAGs: they import (DagBag), are wired like the dbt graph, and run to success
with `dag.test()` on real data — and a failing task notifies a real HTTP server standing in
for Slack, resolved by the next good run.

One migrated SQLite Airflow home per module (`airflow db migrate`); each DAG run in its own
process (tests/airflow_run.py) on a copy of a session data dir.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pharmaflow.orchestrate.dags as dags_package
from pharmaflow.config import Settings
from pharmaflow.orchestrate import dbt_graph
from pharmaflow.warehouse import build_log, publish
from tests.conftest import env_with_keys
from tests.receiver import Receiver

pytestmark = pytest.mark.slow

DAGS_FOLDER = Path(dags_package.__file__).parent
DAG_IDS = {
    "pharma_marts_daily",
    "pharma_reconciliation",
    "pharma_sla_monitoring",
    "pharma_survey_extract",
    "pharma_ml_training",
}


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = env_with_keys(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    migrate = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return env


def _airflow(env: dict[str, str], *args: str, timeout: float = 900) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.airflow_run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parents[3],
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_dag(
    env: dict[str, str], dag_id: str, data_dir: Path, conf: dict | None = None, **extra: str
) -> dict:
    return _airflow(
        {**env, "PHARMAFLOW_DATA_DIR": str(data_dir), **extra},
        "run",
        dag_id,
        json.dumps(conf or {}),
    )


@pytest.fixture(scope="module")
def data_dir(served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the served data dir (built, published, with speed-layer state)."""
    copy = tmp_path_factory.mktemp("airflow-data") / "data"
    shutil.copytree(served.settings.data_dir, copy, symlinks=True)
    return copy


def test_every_dag_imports_without_errors_and_is_wired_like_the_dbt_graph(airflow_env) -> None:
    bag = _airflow(airflow_env, "bag")
    assert bag["import_errors"] == {}
    assert set(bag["dags"]) == DAG_IDS
    for dag_id, dag in bag["dags"].items():
        assert dag["max_active_runs"] == 1 and dag["catchup"] is False, dag_id
        for task_id, t in dag["tasks"].items():
            assert t["on_failure"] == ["on_task_failure"], (dag_id, task_id)
        assert "notify" in dag["tasks"], dag_id
    # the build task retries with exponential backoff; a status report does not retry
    marts = bag["dags"]["pharma_marts_daily"]["tasks"]
    assert marts["dbt_build"]["retries"] == 2 and marts["dbt_build"]["exponential"]
    nodes = dbt_graph.load()
    assert len(marts) == len(nodes) + 2  # dbt_build + a task per node + notify
    ids = {n.name: f"{n.layer}.{n.name}" for n in nodes}
    for node in nodes:
        task = marts[ids[node.name]]
        expected = sorted(ids[p] for p in node.parents) or ["dbt_build"]
        assert task["upstream"] == expected, node.name
        assert task["retries"] == 0
    assert sorted(marts["notify"]["upstream"]) == sorted(ids.values())
    assert {n.layer for n in nodes} >= {"seed", "snapshot", "silver", "gold"}
    # a skipped comparison (no speed layer) still lets the reconciliation's notify run
    reconciliation = bag["dags"]["pharma_reconciliation"]["tasks"]
    assert reconciliation["notify"]["trigger_rule"] == "none_failed"
    assert reconciliation["notify"]["upstream"] == ["compare_speed_and_batch"]


def test_the_shipped_dbt_graph_is_the_projects() -> None:
    """dbt_graph.json is regenerated from the project (`python -m pharmaflow.orchestrate.
    dbt_graph`) whenever a model, a test or a dependency changes."""
    parsed = dbt_graph.parse_project()
    assert parsed == dbt_graph.load()
    assert sum(len(n.tests) for n in parsed) > 200  # the tests are attached, not dropped


def test_marts_daily_builds_every_node_and_publishes(airflow_env, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    before = publish.current(settings.snapshots_dir)
    builds_before = len(build_log.read(settings.warehouse_dir))
    out = run_dag(airflow_env, "pharma_marts_daily", data_dir)
    assert out["state"] == "success", out
    assert set(out["tasks"].values()) == {"success"}
    assert len(out["tasks"]) == len(dbt_graph.load()) + 2
    records = build_log.read(settings.warehouse_dir)
    assert len(records) == builds_before + 1 and records[-1].success
    assert records[-1].tests_failed == 0 and records[-1].tests_passed > 200
    after = publish.current(settings.snapshots_dir)
    assert after is not None and before is not None and after.built_at > before.built_at


def test_reconciliation_rebuilds_then_finds_both_layers_agree(airflow_env, data_dir) -> None:
    from pharmaflow.orchestrate.reconcile import reconcile

    out = run_dag(airflow_env, "pharma_reconciliation", data_dir)
    assert out["state"] == "success", out
    assert out["tasks"] == {
        "rebuild_late": "success",
        "compare_speed_and_batch": "success",
        "notify": "success",
    }
    # what the compare task judged: hundreds of closed windows, none where the stream saw more
    result = reconcile(Settings(data_dir=data_dir))
    assert result.skipped is None and result.windows > 100
    assert result.speed_more == 0 and result.equal > 0


def test_reconciliation_is_skipped_without_a_speed_layer(data_dir: Path, tmp_path: Path) -> None:
    """What the compare task turns into a skipped task (AirflowSkipException) and `notify`
    (trigger rule none_failed) runs after."""
    from pharmaflow.orchestrate.reconcile import reconcile

    missing = Settings(data_dir=data_dir, realtime_store=str(tmp_path / "none" / "state.db"))
    result = reconcile(missing)
    assert result.skipped is not None and "no speed layer state" in result.skipped
    assert result.windows == 0 and result.agrees


def test_survey_extract_lands_new_rows_once(airflow_env, tmp_path: Path) -> None:
    from pharmaflow.serve.surveys import SurveyStore
    from tests.pg import PG_DSN, scratch_schema
    from tests.phi_scan import lake_strings, leaks

    with scratch_schema() as schema, SurveyStore(PG_DSN, schema) as store:
        store.ensure_schema()
        store.submit_many(
            {
                "survey_id": f"S-{i:03d}",
                "order_id": f"ORD-{i}",
                "rating": 1 + i % 5,
                "nps": i % 11,
                "comment": "Call me on (415) 555-0134, Zuleika Okonkwo",
                "submitted_at": "2026-11-02T12:00:00Z",
            }
            for i in range(40)
        )
        data = tmp_path / "data"
        conf = {"table": f"{schema}.survey_responses"}
        env = {**airflow_env, "PHARMAFLOW_SURVEY_DSN": PG_DSN}
        first = run_dag(env, "pharma_survey_extract", data, conf)
        assert first["state"] == "success", first
        settings = Settings(data_dir=data)
        landed = _landed_surveys(settings)
        assert landed == 40
        again = run_dag(env, "pharma_survey_extract", data, conf)  # idempotent: nothing new
        assert again["state"] == "success"
        assert _landed_surveys(settings) == 40
        assert leaks(lake_strings(settings.lake_dir), {"(415) 555-0134"}, {"Okonkwo"}) == []


def _landed_surveys(settings: Settings) -> int:
    import orjson

    total = 0
    for manifest in settings.lake_dir.glob("_manifests/*.json"):
        counts = orjson.loads(manifest.read_bytes()).get("counts", {})
        total += int(counts.get("landed", 0))
    return total


def test_ml_training_trains_registers_and_scores(airflow_env, ml_warehouse, tmp_path: Path) -> None:
    import duckdb

    data = tmp_path / "ml"
    shutil.copytree(ml_warehouse.settings.data_dir, data, symlinks=True)
    out = run_dag(
        airflow_env,
        "pharma_ml_training",
        data,
        PHARMAFLOW_MLFLOW_TRACKING_URI="",
        **{k: str(v) for k, v in _ml_env(ml_warehouse).items()},
    )
    assert out["state"] == "success", out
    assert out["tasks"] == {"train": "success", "score": "success", "notify": "success"}
    settings = Settings(data_dir=data)
    current = publish.current(settings.snapshots_dir)
    assert current is not None
    with duckdb.connect(str(current.path), read_only=True) as con:
        for table in ("ml_shipment_delay_scores", "ml_demand_forecast", "ml_price_elasticity"):
            (rows,) = con.execute(f"select count(*) from gold.{table}").fetchone()
            assert rows > 0, table


def _ml_env(ml_warehouse) -> dict[str, object]:
    """The settings the ML fixture was built with, as the environment a worker would have."""
    s = ml_warehouse.settings
    return {"PHARMAFLOW_ML_SEED": s.ml_seed}


@pytest.fixture
def slack() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _rules(tmp_path: Path, slack: Receiver) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "routes:\n"
        f"  - {{name: slack, type: slack, url: '{slack.url('/slack')}'}}\n"
        "defaults: {routes: [slack], repeat_interval: 4h}\n"
        "delivery: {timeout: 2s, backoff_initial: 1s}\n"
        "rules:\n"
        "  - {id: pipeline_failure, kind: pipeline_failure, severity: critical}\n"
    )
    return rules


def test_a_failing_task_notifies_slack_and_the_next_good_run_resolves_it(
    airflow_env, data_dir: Path, slack: Receiver, tmp_path: Path
) -> None:
    env = {
        **airflow_env,
        "PHARMAFLOW_ALERT_RULES": str(_rules(tmp_path, slack)),
        "PHARMAFLOW_REALTIME_STORE": str(tmp_path / "alerts.db"),
    }
    # every other rule within generous limits; a build older than a second is a breach
    breach = {**_passing_thresholds(), "PHARMAFLOW_CHECK_BUILD_MAX_AGE_HOURS": "0.0003"}
    failed = run_dag(env, "pharma_sla_monitoring", data_dir, **breach)
    assert failed["state"] == "failed", failed
    assert failed["tasks"]["check"] == "failed"
    assert failed["tasks"]["notify"] == "upstream_failed"
    messages = slack.bodies("/slack")
    assert len(messages) == 1
    text = json.dumps(messages[0])
    assert "CRITICAL" in messages[0]["text"] and "pharma_sla_monitoring.check" in text
    assert "build_age" in text and "pipeline_failure" in text

    passed = run_dag(env, "pharma_sla_monitoring", data_dir, **_passing_thresholds())
    assert passed["state"] == "success", passed
    messages = slack.bodies("/slack")
    assert len(messages) == 2 and messages[1]["text"].startswith("[RESOLVED]")
    assert "pharma_sla_monitoring.check" in json.dumps(messages[1])

    again = run_dag(env, "pharma_sla_monitoring", data_dir, **_passing_thresholds())
    assert again["state"] == "success"
    assert len(slack.bodies("/slack")) == 2  # a healthy run with nothing open sends nothing


def _passing_thresholds() -> dict[str, str]:
    """Generous limits for the served data dir (simulated a week back, no Kafka)."""
    return {
        "PHARMAFLOW_CHECK_BUILD_MAX_AGE_HOURS": "48",
        "PHARMAFLOW_CHECK_SOURCE_MAX_AGE_MINUTES": str(60 * 24 * 365),
        "PHARMAFLOW_CHECK_GOLD_MAX_AGE_HOURS": str(24 * 365),
        "PHARMAFLOW_CHECK_DELIVERY_SLA_MAX_BREACHES": "1000000",
        "PHARMAFLOW_CHECK_DEAD_LETTER_MAX_RATE": "1",
        "KAFKA_BOOTSTRAP_SERVERS": "",
    }
