"""Run the shipped Airflow DAGs for the tests, in a process of their own.

Why a subprocess: Airflow reads AIRFLOW_HOME and its configuration once, at import, and keeps
a database session; each run gets a clean process pointed at the session's migrated SQLite
home (tests/integration/orchestrate/conftest.py) and the data dir in PHARMAFLOW_DATA_DIR.

    python -m tests.airflow_run bag                    # DagBag: DAGs, tasks, edges, errors
    python -m tests.airflow_run run DAG_ID [CONF_JSON]  # dag.test(): run state, task states

Prints one JSON object on its last line. Retries are set to 0 for `run` (a test must not wait
out a two-minute retry delay); the retry settings themselves are checked in `bag`.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _bag() -> object:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def bag() -> dict[str, object]:
    b = _bag()
    return {
        "import_errors": {str(k): str(v) for k, v in b.import_errors.items()},
        "parse_seconds": {
            os.path.basename(s.file): s.duration.total_seconds() for s in b.dagbag_stats
        },
        "dags": {
            dag_id: {
                "schedule": str(dag.schedule) if hasattr(dag, "schedule") else None,
                "max_active_runs": dag.max_active_runs,
                "catchup": dag.catchup,
                "tasks": {
                    t.task_id: {
                        "upstream": sorted(t.upstream_task_ids),
                        "retries": t.retries,
                        "exponential": bool(t.retry_exponential_backoff),
                        "on_failure": [c.__name__ for c in _callbacks(t.on_failure_callback)],
                        "trigger_rule": getattr(t.trigger_rule, "value", str(t.trigger_rule)),
                    }
                    for t in dag.tasks
                },
            }
            for dag_id, dag in b.dags.items()
        },
    }


def _callbacks(value: object) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def run(dag_id: str, conf: dict[str, object]) -> dict[str, object]:
    dag = _bag().dags[dag_id]
    for t in dag.tasks:
        t.retries = 0
    started = time.perf_counter()
    dag_run = dag.test(run_conf=conf or None)
    seconds = time.perf_counter() - started
    return {
        "state": str(dag_run.state),
        "seconds": round(seconds, 2),
        "tasks": {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()},
    }


if __name__ == "__main__":
    if sys.argv[1] == "bag":
        out = bag()
    else:
        out = run(sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
    print(json.dumps(out))
