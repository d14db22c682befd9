"""`pharmaflow score`: batch scores of each champion model, written to gold.

Scoring reads the current snapshot, scores with each task's champion (a task without one is
skipped and says so), stamps every row with the model name and version and the time, then,
under the warehouse's write lock, replaces the task's gold table (created by dbt's
on-run-start hook with a fixed schema, macros/ml_scores.sql) and, for sentiment, sets the
sentiment columns of gold.fact_survey. The warehouse is then checkpointed and published as a
new snapshot, so the API and dashboards see the scores at once. A score frame whose columns
do not match its table is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ml.data import MlData
from pharmaflow.ml.tasks import load_task, task_names
from pharmaflow.warehouse import publish, targets

SENTIMENT_TABLE = "gold.ml_survey_sentiment"
STAMP = ("model_name", "model_version", "scored_at")
# Drift: the newest this many days of a task's features against the last REFERENCE_DAYS of
# the data its model was trained on (the start of a window has less history behind its
# rolling features than the rest: it would look like drift that is only warm-up).
CURRENT_DAYS = 7
REFERENCE_DAYS = 28


@dataclass
class Scored:
    task: str
    table: str | None
    model_name: str
    version: str | None  # None: no champion, nothing scored
    rows: int = 0
    note: str = ""
    drift: object | None = None  # pharmaflow.ml.drift.DriftReport, where the task checks drift
    frame: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """What `pharmaflow score --json` prints and the training DAG passes on."""
        return {
            "task": self.task,
            "table": self.table,
            "model_name": self.model_name,
            "version": self.version,
            "rows": self.rows,
            "note": self.note,
            "drifted": list(getattr(self.drift, "drifted", []) or []),
        }


def score(
    settings: Settings,
    names: list[str] | None = None,
    *,
    reader_wait: float = 30.0,
    on_done: Callable[[Scored], None] | None = None,
) -> list[Scored]:
    """Score every chosen task with its champion and write the scores to gold."""
    from pharmaflow.ml import registry  # imports MLflow: only when scoring

    if settings.warehouse_target != "duckdb":
        raise PharmaflowError(
            f"scoring writes to the DuckDB warehouse; the {settings.warehouse_target} target "
            "is not supported yet (docs/ml.md)"
        )
    results: list[Scored] = []
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    with MlData(settings) as data:
        for name in task_names(names):
            task = load_task(name)
            version = registry.champion_version(settings, task.MODEL_NAME)
            result = Scored(task.TASK, task.SCORES_TABLE, task.MODEL_NAME, version)
            if version is None:
                result.note = "no champion yet: run `pharmaflow train` first"
            elif task.SCORES_TABLE is not None:
                model = registry.load_model(settings, task.MODEL_NAME, version)
                frame = task.score(model, data).copy()
                frame["model_name"] = task.MODEL_NAME
                frame["model_version"] = version
                frame["scored_at"] = scored_at
                result.frame, result.rows = frame, len(frame)
                result.drift = check_task_drift(settings, data, task, version)
            results.append(result)
    write_scores(settings, [r for r in results if r.version is not None], reader_wait)
    for result in results:
        if on_done is not None:
            on_done(result)
    return results


def check_task_drift(settings: Settings, data: MlData, task: object, version: str) -> object:
    """The drift check of a task that declares `DRIFT = (features table, time column,
    features)`, alerted through the platform's alert routes (drift.raise_drift_alert); None
    for a task without one (sentiment reads free text, elasticity scores no batch)."""
    from pharmaflow.ml import registry
    from pharmaflow.ml.drift import check_drift, raise_drift_alert

    spec = getattr(task, "DRIFT", None)
    model_name = str(getattr(task, "MODEL_NAME", ""))
    window = registry.train_window(settings, model_name, version) if spec else None
    if spec is None or window is None:
        return None
    table, time_column, features = spec
    columns = ", ".join(f'"{f}"' for f in features)
    day = f"cast({time_column} as date)"
    newest = data.frame(f"select max({day}) as d from {table}")["d"].iloc[0]
    if newest is None or pd.isna(newest):
        return None
    current = data.frame(
        f"select {columns} from {table} where {day} > cast(? as date) - {CURRENT_DAYS}",
        [newest],
    )
    reference = data.frame(
        f"select {columns} from {table} where {day} between "
        f"cast(? as date) - {REFERENCE_DAYS - 1} and cast(? as date)",
        [window[1], window[1]],
    )
    if current.empty or reference.empty:
        return None
    report = check_drift(reference, current, features, alpha=settings.ml_drift_alpha)
    raise_drift_alert(settings, model_name, version, report)
    return report


def write_scores(settings: Settings, results: list[Scored], reader_wait: float = 30.0) -> None:
    """Replace each result's gold table with its frame, in one transaction, then publish."""
    if not results:
        return
    with targets.warehouse_lock(settings, reader_wait):
        with duckdb.connect(str(settings.warehouse_path)) as con:
            con.execute("begin")
            try:
                for result in results:
                    if result.table is None:
                        continue
                    _replace(con, result.table, result.frame)
                    if result.table == SENTIMENT_TABLE:
                        _sentiment_onto_surveys(con)
                con.execute("commit")
            except Exception:
                con.execute("rollback")
                raise
            con.execute("checkpoint")
        publish.publish(settings)


def _replace(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    expected = [
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_schema = ? "
            "and table_name = ? order by ordinal_position",
            table.split(".", 1),
        ).fetchall()
    ]
    if not expected:
        raise PharmaflowError(f"{table} does not exist: run `pharmaflow build` first")
    if sorted(expected) != sorted(frame.columns):
        raise PharmaflowError(
            f"scores for {table} have columns {sorted(frame.columns)}, the table has "
            f"{sorted(expected)}: nothing was written"
        )
    con.register("pf_scores", frame[expected])
    try:
        con.execute(f"delete from {table}")
        con.execute(f"insert into {table} by name select * from pf_scores")
    finally:
        con.unregister("pf_scores")


def _sentiment_onto_surveys(con: duckdb.DuckDBPyConnection) -> None:
    """The same values gold.fact_survey's own join gives on its next build (fact_survey.sql)."""
    con.execute(
        f"""
        update gold.fact_survey as survey set
            sentiment_label = scores.sentiment_label,
            sentiment_score = scores.sentiment_score,
            sentiment_model_version = scores.model_version
        from (
            select fact.survey_id, s.sentiment_label, s.sentiment_score, s.model_version
            from gold.fact_survey as fact
            left join {SENTIMENT_TABLE} as s on s.survey_id = fact.survey_id
        ) as scores
        where scores.survey_id = survey.survey_id
        """
    )
