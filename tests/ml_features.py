"""What the feature-table tests (tests/integration/ml/test_*_features.py) share: a data dir
built from a file, the same file cut at an instant (the point-in-time check), reads of gold,
and a leaky copy of a built warehouse whose dbt project a test edits and builds again."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd

from pharmaflow.config import Settings
from pharmaflow.warehouse import runner
from tests.ml_data import ml_settings

MODEL_DIR = Path("models") / "gold" / "ml"


def build_from(settings: Settings, events: Path) -> None:
    """Ingest `events` into the data dir and build its warehouse: every test passes."""
    from pharmaflow.cli.ingest import run_ingest

    run_ingest(settings, str(events))
    result = runner.build(settings)
    assert result.success, result.failures
    assert result.tests_failed == 0


def at_or_before(lines: list[bytes], cutoff: datetime) -> list[bytes]:
    """The lines whose event time is at or before the cutoff (naive UTC): what a warehouse
    would have held then. Unreadable lines stay (ingest quarantines them either way)."""
    kept = []
    for line in lines:
        try:
            stamp = datetime.fromisoformat(orjson.loads(line)["event_time"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            kept.append(line)
            continue
        if stamp.tzinfo is None or stamp <= cutoff.replace(tzinfo=UTC):
            kept.append(line)
    return kept


def read_gold(settings: Settings, sql: str) -> pd.DataFrame:
    # default configuration: dbt ran in this process and DuckDB shares its open instance
    with duckdb.connect(str(settings.warehouse_path)) as con:
        return con.execute(sql).df()


def leaky_copy(built: Settings, folder: Path) -> tuple[Settings, Path]:
    """A data dir over a copy of `built`'s warehouse (its lake linked, not copied) and the
    dbt project prepared for it, for a test to edit: (settings, project folder)."""
    copy = ml_settings(folder)
    copy.warehouse_path.parent.mkdir(parents=True)
    shutil.copyfile(built.warehouse_path, copy.warehouse_path)
    copy.lake_dir.parent.mkdir(parents=True, exist_ok=True)
    copy.lake_dir.symlink_to(built.lake_dir, target_is_directory=True)
    return copy, runner.prepare_project(copy)


def build_model(settings: Settings, project: Path, model: str) -> tuple[Any, dict[str, Any]]:
    """`dbt build --select model` in `project`: dbt's result and its node results by name."""
    from dbt.cli.main import dbtRunner

    args = [*runner.dbt_args(settings, project, "build"), "--select", model]
    res = dbtRunner().invoke([*args, "--log-level", "none"])
    return res, {r.node.name: r for r in res.result.results}


def failing_columns(settings: Settings, guard: Any) -> list[tuple[Any, ...]]:
    """The rows a failed guard test found (its compiled SQL run on the warehouse)."""
    with duckdb.connect(str(settings.warehouse_path)) as con:
        return con.execute(guard.node.compiled_code).fetchall()
