"""What the scheduled pipelines do, as plain functions (no Airflow import): the DAGs in
`orchestrate/dags/` are thin wrappers over these, and any other scheduler can call them.

Every function reads its `Settings` from the environment (PHARMAFLOW_*), returns a small JSON-
serialisable summary (what Airflow keeps as the task's XCom), and is idempotent: a retry or a
re-run of a day does no harm —

* builds are incremental (a retry rebuilds what the failed attempt did not finish, from
  bronze, docs/warehouse in README), and take the warehouse lock;
* the survey extract reads only rows newer than what bronze holds (exactly once by batch id);
* the checks and the reconciliation only read;
* training registers a new model version each time, promoted only when it beats the champion,
  and scoring replaces the score tables in one transaction.

A failure raises `TaskFailed` (one line: what failed and where to look), which the scheduler
retries and finally reports through the alert routes (orchestrate/notify.py).
"""

from __future__ import annotations

from typing import Any

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError


class TaskFailed(PharmaflowError):
    """A pipeline step finished but its outcome is a failure (a breached check, a failed
    test): the message says what, in one line."""


def settings() -> Settings:
    return Settings()


def build_marts(full_refresh: bool = False) -> dict[str, Any]:
    """`pharmaflow build`: seeds, snapshots, silver, gold and every dbt test, published for
    serving when it passes. Returns the summary plus each node's status by name (`nodes`),
    which the per-model tasks report. Raises only when dbt could not run: failed tests are
    reported by the tasks of the models they test."""
    from pharmaflow.warehouse.runner import build

    statuses: dict[str, str] = {}

    def on_node(kind: str, name: str, status: str) -> None:
        statuses[name] = status

    result = build(settings(), on_node=on_node, full_refresh=full_refresh)
    summary = result.to_dict()
    summary.pop("tables", None)  # row counts per table: in the build log, not the XCom
    summary["nodes"] = statuses
    return summary


def node_outcome(build_summary: dict[str, Any], name: str, tests: list[str]) -> str:
    """The outcome of one dbt node in a build: raises TaskFailed when it errored or one of
    its tests failed; 'skipped' when dbt did not run it; else 'success'."""
    nodes = build_summary.get("nodes", {})
    status = nodes.get(name)
    if status in ("error", "fail"):
        raise TaskFailed(f"{name}: {status} (dbt's log: {build_summary.get('dbt_log')})")
    failed = sorted(t for t in tests if nodes.get(t) in ("fail", "error"))
    if failed:
        shown = ", ".join(failed[:5]) + (" …" if len(failed) > 5 else "")
        raise TaskFailed(f"{name}: {len(failed)} test(s) failed: {shown}")
    if status is None or status == "skipped":
        return "skipped"
    return "success"


def check_slas(only: list[str] | None = None) -> dict[str, Any]:
    """`pharmaflow check`: raises TaskFailed naming every breached rule."""
    from pharmaflow.orchestrate.check import run_checks

    report = run_checks(settings())
    results = [r for r in report.results if only is None or r.check in only]
    breached = [r for r in results if r.status == "breach"]
    summary = {
        "checked_at": report.checked_at.isoformat(),
        "results": [r.to_dict() for r in results],
        "breached": len(breached),
    }
    if breached:
        raise TaskFailed(f"{len(breached)} check(s) breached: {_name_breaches(breached)}")
    return summary


def _name_breaches(breached: list[Any]) -> str:
    """Every breached rule, with its first subjects: `build_age (warehouse: 30 > 6 hours);
    freshness_gold (15: gold.fact_shipment, gold.kpi_quality …)`."""
    by_rule: dict[str, list[Any]] = {}
    for r in breached:
        by_rule.setdefault(r.check, []).append(r)
    parts = []
    for rule, results in by_rule.items():
        if len(results) == 1:
            r = results[0]
            parts.append(f"{rule} ({r.subject}: {_num(r.value)} > {_num(r.threshold)} {r.unit})")
        else:
            names = ", ".join(r.subject for r in results[:3])
            parts.append(f"{rule} ({len(results)}: {names}{' …' if len(results) > 3 else ''})")
    return "; ".join(parts)


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"


def reconcile_layers() -> dict[str, Any]:
    """Speed layer vs batch layer over closed windows (orchestrate/reconcile.py): raises when
    the stream counted events the warehouse does not hold."""
    from pharmaflow.orchestrate.reconcile import reconcile

    result = reconcile(settings())
    if not result.agrees:
        raise TaskFailed(
            f"speed layer counted {result.missing_events} events in {result.speed_more} closed "
            f"windows that the warehouse does not hold (first: {result.disagreements[:1]})"
        )
    return result.to_dict()


SURVEY_TABLE = "survey_data.survey_responses"


def extract_surveys(table: str = SURVEY_TABLE) -> dict[str, Any]:
    """New rows of the survey table (PHARMAFLOW_SURVEY_DSN) into bronze."""
    from pharmaflow.ingest.pipeline import IngestEngine
    from pharmaflow.ingest.sources import open_sources
    from pharmaflow.urls import redact_url

    s = settings()
    joiner = "&" if "?" in s.survey_dsn else "?"
    source = f"{s.survey_dsn}{joiner}table={table}"
    engine = IngestEngine(s)
    result = engine.run(open_sources(source, engine.registry, settings=s))
    summary = result.to_dict()
    summary["source"] = redact_url(source)
    return summary


def train_models() -> list[dict[str, Any]]:
    """Train, evaluate and register every model (promoted only when it beats the champion)."""
    from pharmaflow.ml.train import train

    return [o.to_dict() for o in train(settings())]


def score_models() -> list[dict[str, Any]]:
    """Score with each champion into gold and check its inputs for drift."""
    from pharmaflow.ml.score import score

    return [r.to_dict() for r in score(settings())]
