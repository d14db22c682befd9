"""The Airflow 3 DAGs, built here and instantiated by the files in `orchestrate/dags/`.

Thin wrappers: every task calls one function of `orchestrate/tasks.py` (or `notify.py`), so
what a DAG does is what `pharmaflow build`, `check`, `ingest`, `train` and `score` do. Shared:
retries with exponential backoff, the failure callback that notifies the alert routes, a
closing `notify` task that resolves the DAG's open failures, `max_active_runs=1` (builds take
the warehouse lock; two runs would only wait on each other), no catch-up (each run works on
everything that has landed, not on one interval), and no `sla=` (Airflow 3 removed SLAs:
`pharma_sla_monitoring` runs `pharmaflow check` instead).

The marts DAG shows every dbt node as a task without paying for one dbt start per node: one
task runs the whole incremental `dbt build` through `pharmaflow.warehouse.runner.build` (lock,
PostgreSQL bronze load, publish — what a plain dbt invocation would skip), recording each
node's status; then one light task per node, wired like the dbt graph (read from the
pre-compiled `dbt_graph.json`, so parsing never starts dbt), turns that status into the task's
state: a model that errored or whose tests failed is a failed task (and notifies), its
downstream nodes `upstream_failed`, exactly as dbt skipped them. (astronomer-cosmos' per-model
mode starts dbt once per node: several times a plain build on this project.)

Import only this module's light dependencies at parse time: the package's heavy imports
(dbt, duckdb, pandas) happen inside the tasks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from pharmaflow.orchestrate import dbt_graph, notify, tasks

START = datetime(2026, 1, 1)
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "pharmaflow",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "on_failure_callback": notify.on_task_failure,
    "on_retry_callback": notify.on_task_retry,
}


def _dag(dag_id: str, schedule: str, doc: str, **kwargs: Any) -> DAG:
    return DAG(
        dag_id,
        schedule=schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        doc_md=doc,
        tags=["pharmaflow"],
        **kwargs,
    )


def _notify_task(dag_id: str) -> Any:
    @task(task_id="notify", retries=1)
    def notify_done() -> list[str]:
        """Resolve this DAG's open failure incidents (RESOLVED goes to the routes)."""
        return notify.dag_succeeded(tasks.settings(), dag_id)

    return notify_done()


def _skip_when(summary: dict[str, Any]) -> dict[str, Any]:
    if summary.get("skipped"):
        raise AirflowSkipException(str(summary["skipped"]))
    return summary


def _node_tasks(build: Any) -> list[Any]:
    """One task per dbt node, in groups by layer, wired like the dbt graph after `build`."""
    made: dict[str, Any] = {}
    groups: dict[str, TaskGroup] = {}
    nodes = dbt_graph.load()
    for node in nodes:
        group = groups.get(node.layer)
        if group is None:
            group = groups[node.layer] = TaskGroup(group_id=node.layer)

        @task(task_id=node.name, task_group=group, retries=0, doc=f"dbt {node.kind} {node.name}")
        def report(name: str = node.name, tests: tuple[str, ...] = node.tests) -> str:
            ti = get_current_context()["ti"]
            outcome = tasks.node_outcome(ti.xcom_pull(task_ids="dbt_build"), name, list(tests))
            if outcome == "skipped":
                raise AirflowSkipException(f"dbt did not run {name}")
            return outcome

        made[node.name] = report()
    for node in nodes:
        upstream = [made[p] for p in node.parents if p in made] or [build]
        for parent in upstream:
            parent >> made[node.name]
    return list(made.values())


def marts_daily() -> DAG:
    """`pharma_marts_daily`: the warehouse build (incremental unless asked) at 02:00 UTC."""
    dag_id = "pharma_marts_daily"
    with _dag(
        dag_id,
        "0 2 * * *",
        "Build silver and gold and run every dbt test (one `pharmaflow build`), one task per "
        "dbt node reporting its outcome, then notify.",
        params={"full_refresh": Param(False, type="boolean")},
    ) as dag:

        @task(task_id="dbt_build", execution_timeout=timedelta(hours=3))
        def dbt_build() -> dict[str, Any]:
            params = get_current_context()["params"]
            return tasks.build_marts(full_refresh=bool(params.get("full_refresh", False)))

        build = dbt_build()
        nodes = _node_tasks(build)
        done = _notify_task(dag_id)
        for node in nodes:
            node >> done
    return dag


def reconciliation() -> DAG:
    """`pharma_reconciliation`: every 4 hours, rebuild what late events touched, then compare
    the speed layer's closed windows with the batch layer."""
    dag_id = "pharma_reconciliation"
    with _dag(
        dag_id,
        "0 */4 * * *",
        "Incremental build (re-reads the batches that landed late, PHARMAFLOW_LATE_LOOKBACK_"
        "HOURS), then speed layer vs batch layer per event type per closed window.",
    ) as dag:

        @task(task_id="rebuild_late", execution_timeout=timedelta(hours=2))
        def rebuild_late() -> dict[str, Any]:
            summary = tasks.build_marts()
            if not summary["success"]:
                raise tasks.TaskFailed(
                    f"build failed: {'; '.join(summary['failures'][:3])} "
                    f"(dbt's log: {summary['dbt_log']})"
                )
            summary.pop("nodes", None)
            return summary

        @task(task_id="compare_speed_and_batch")
        def compare() -> dict[str, Any]:
            return _skip_when(tasks.reconcile_layers())

        @task(task_id="notify", trigger_rule="none_failed", retries=1)
        def notify_done() -> list[str]:
            return notify.dag_succeeded(tasks.settings(), dag_id)

        rebuild_late() >> compare() >> notify_done()
    return dag


def sla_monitoring() -> DAG:
    """`pharma_sla_monitoring`: `pharmaflow check` every 15 minutes; a breach fails the task
    (and notifies)."""
    dag_id = "pharma_sla_monitoring"
    with _dag(
        dag_id,
        "*/15 * * * *",
        "Freshness, consumer lag, dead-letter rate, delivery SLAs, build age and failed tests "
        "against their thresholds (`pharmaflow check`).",
        dagrun_timeout=timedelta(minutes=14),
    ) as dag:

        @task(task_id="check", retries=0)
        def check() -> dict[str, Any]:
            return tasks.check_slas()

        check() >> _notify_task(dag_id)
    return dag


def survey_extract() -> DAG:
    """`pharma_survey_extract`: new survey responses from PostgreSQL into bronze, hourly."""
    dag_id = "pharma_survey_extract"
    with _dag(
        dag_id,
        "0 * * * *",
        "New rows of the survey table (PHARMAFLOW_SURVEY_DSN; param `table`) into bronze, "
        "exactly once; the daily marts build picks them up.",
        params={"table": Param(tasks.SURVEY_TABLE, type="string")},
    ) as dag:

        @task(task_id="extract")
        def extract() -> dict[str, Any]:
            params = get_current_context()["params"]
            return tasks.extract_surveys(str(params.get("table") or tasks.SURVEY_TABLE))

        extract() >> _notify_task(dag_id)
    return dag


def ml_training() -> DAG:
    """`pharma_ml_training`: weekly retraining, then scoring with the champions."""
    dag_id = "pharma_ml_training"
    with _dag(
        dag_id,
        "0 4 * * 0",
        "Train and register every model (promoted only when it beats its baseline and the "
        "champion), then score with the champions and check drift.",
    ) as dag:

        @task(task_id="train", execution_timeout=timedelta(hours=2))
        def train() -> list[dict[str, Any]]:
            return tasks.train_models()

        @task(task_id="score")
        def score() -> list[dict[str, Any]]:
            return tasks.score_models()

        train() >> score() >> _notify_task(dag_id)
    return dag
