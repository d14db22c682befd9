"""Run the dbt project over a data dir's lake and report what it built and tested.

The project ships inside the package; each build copies it into the data dir (so target/, logs/
and partial-parse state never touch the install, and two data dirs never share them) and lays
the user's own reference CSVs over the shipped seeds when `PHARMAFLOW_REFERENCE_DIR` is set.
dbt runs in-process through `dbtRunner`, reporting each finished node to a progress callback.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse.dbt_env import quiet_dbt

PROJECT_DIR = Path(__file__).parent / "dbt"
REFERENCE_FILES = ("products.csv", "facilities.csv", "equipment.csv", "carriers.csv", "payers.csv")

NodeDone = Callable[[str, str, str], None]


@dataclass
class BuildResult:
    success: bool
    tests_passed: int = 0
    tests_failed: int = 0
    models_built: int = 0
    seeds_loaded: int = 0
    failures: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed,
            "models_built": self.models_built,
            "seeds_loaded": self.seeds_loaded,
            "failures": self.failures,
            "tables": self.tables,
            "seconds": round(self.seconds, 3),
        }


def prepare_project(settings: Settings) -> Path:
    """Copy the dbt project into the data dir, overlay user reference data, write the profile."""
    work = settings.warehouse_dir / "dbt"
    project = work / "project"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(
        PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "__pycache__")
    )
    if settings.reference_dir is not None:
        for name in REFERENCE_FILES:
            src = settings.reference_dir / name
            if src.exists():
                shutil.copyfile(src, project / "seeds" / name)
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    profile = {
        "pharmaflow": {
            "target": "duckdb",
            "outputs": {
                "duckdb": {
                    "type": "duckdb",
                    "path": str(settings.warehouse_path),
                    "threads": settings.dbt_threads,
                }
            },
        }
    }
    (work / "profiles.yml").write_bytes(orjson.dumps(profile))  # JSON is valid YAML
    return project


def dbt_args(settings: Settings, project: Path, command: str) -> list[str]:
    work = project.parent
    return [
        command,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(work),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--vars",
        orjson.dumps({"lake_dir": str(settings.lake_dir)}).decode(),
        "--threads",
        str(settings.dbt_threads),
    ]


def build(settings: Settings, on_node: NodeDone | None = None) -> BuildResult:
    """`dbt build` (seeds, models, tests) over the data dir's lake."""
    quiet_dbt()
    from dbt.cli.main import dbtRunner  # heavy import: only when building

    started = time.perf_counter()
    project = prepare_project(settings)

    def callback(event: Any) -> None:
        if on_node is None or event.info.name != "NodeFinished":
            return
        node = event.data.node_info
        on_node(node.resource_type, node.node_name, node.node_status)

    runner = dbtRunner(callbacks=[callback])
    res = runner.invoke([*dbt_args(settings, project, "build"), "--quiet"])
    if res.exception is not None and res.result is None:
        raise PharmaflowError(f"dbt could not run: {res.exception}")
    result = BuildResult(success=bool(res.success))
    statuses: Counter[tuple[str, str]] = Counter()
    for node_result in getattr(res.result, "results", []) or []:
        kind = node_result.node.resource_type
        status = str(node_result.status)
        statuses[(kind, status)] += 1
        if status in ("fail", "error"):
            result.failures.append(f"{node_result.node.name}: {status}")
    result.tests_passed = statuses[("test", "pass")]
    result.tests_failed = sum(
        n for (k, s), n in statuses.items() if k == "test" and s in ("fail", "error", "warn")
    )
    result.models_built = statuses[("model", "success")]
    result.seeds_loaded = statuses[("seed", "success")]
    result.tables = table_counts(settings.warehouse_path)
    result.seconds = time.perf_counter() - started
    return result


def table_counts(path: Path, schemas: tuple[str, ...] = ("silver", "gold")) -> dict[str, int]:
    """Rows per table in the given schemas.

    Opened with the default (read-write) configuration on purpose: dbt ran in this process and
    its DuckDB instance may still be open, and DuckDB only shares an instance with connections
    of the same configuration. Nothing is written."""
    if not path.exists():
        return {}
    with duckdb.connect(str(path)) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in (select unnest($1::varchar[])) and table_type = 'BASE TABLE' "
            "order by 1, 2",
            [list(schemas)],
        ).fetchall()
        return {
            f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
            for s, t in names
        }
