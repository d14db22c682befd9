"""Scheduler callbacks → the platform's alert routes (Slack, webhooks).

A task that fails for good (its retries spent) fires the incident
`pipeline_failure:<dag>.<task>` through the alert store (realtime/alerts/external.py): the
routes of the `pipeline_failure` rule get it (critical on the default routes when the rules file
has none), `pharmaflow alerts list` shows it, and a route that is down is retried like any
alert. A retry notifies nobody (it is logged). When the DAG next runs to its end, its `notify`
task resolves the DAG's open incidents, so the routes get a RESOLVED — a healthy run that had
nothing open sends nothing (no message every 15 minutes).

Callbacks never raise: a failing notification must not change a task's outcome (it is logged).
Messages carry the DAG, task, run and the exception's first line — our errors are one-line
summaries with counts and ids of batches or tests, never row values.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pharmaflow.config import Settings

log = logging.getLogger(__name__)
_MAX_ERROR = 300


def _first_line(exc: BaseException | str | None) -> str:
    text = str(exc or "").strip()
    line = text.splitlines()[0] if text else ""
    return line[:_MAX_ERROR] + ("…" if len(line) > _MAX_ERROR else "")


def task_failed(
    settings: Settings,
    dag_id: str,
    task_id: str,
    *,
    run_id: str = "",
    try_number: int | None = None,
    error: BaseException | str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Fire `pipeline_failure:<dag>.<task>`; the transitions recorded (event names)."""
    from pharmaflow.realtime.alerts import external
    from pharmaflow.realtime.alerts.rules import AlertRules

    rules = AlertRules.load(settings.alert_rules)
    rule = rules.pipeline_rule
    key = f"{rule.id}:{dag_id}.{task_id}"
    reason = _first_line(error) or "failed"
    details: dict[str, Any] = {"dag": dag_id, "task": task_id, "run": run_id, "error": reason}
    if try_number is not None:
        details["try"] = try_number
    summary = f"Pipeline task {dag_id}.{task_id} failed: {reason}"
    raised = external.record(
        settings, rules, rule, {key: (summary, details)}, {key}, now or datetime.now(UTC)
    )
    return [t.kind for t in raised.transitions]


def dag_succeeded(settings: Settings, dag_id: str, *, now: datetime | None = None) -> list[str]:
    """Resolve the open `pipeline_failure` incidents of `dag_id`; the keys resolved."""
    from pharmaflow.realtime.alerts import external
    from pharmaflow.realtime.alerts.rules import AlertRules

    rules = AlertRules.load(settings.alert_rules)
    rule = rules.pipeline_rule
    keys = external.open_keys(settings, rule.id, f"{rule.id}:{dag_id}.")
    external.record(settings, rules, rule, {}, keys, now or datetime.now(UTC))
    return sorted(keys)


def on_task_failure(context: Any) -> None:
    """Airflow `on_failure_callback`."""
    try:
        ti = context["ti"]
        task_failed(
            Settings(),
            ti.dag_id,
            ti.task_id,
            run_id=str(context.get("run_id") or getattr(ti, "run_id", "")),
            try_number=getattr(ti, "try_number", None),
            error=context.get("exception"),
        )
    except Exception:  # a notification must never change the task's outcome
        log.exception("could not notify the failure of a pipeline task")


def on_task_retry(context: Any) -> None:
    """Airflow `on_retry_callback`: logged only (the final failure notifies)."""
    ti = context.get("ti")
    log.warning(
        "pipeline task %s.%s failed, will retry: %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        _first_line(context.get("exception")),
    )
