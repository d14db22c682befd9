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

import orjson

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse import build_state, history, targets
from pharmaflow.warehouse.dbt_env import quiet_dbt
from pharmaflow.warehouse.set_aside import (
    FailedTest,
    SetAside,
    describe_failed_test,
    load_manifest_nodes,
    set_aside_counts,
)

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
    full_refresh_reason: str | None = None  # None: an incremental build
    # dbt's own execution time summed per node kind (model, test, snapshot, seed): where the
    # time of a build goes, apart from dbt's start and parse
    node_seconds: dict[str, float] = field(default_factory=dict)
    # rows silver._rejected / gold._rejected hold, per (model, rule): events left out of the
    # warehouse instead of failing the build
    set_aside: list[SetAside] = field(default_factory=list)
    # the failed tests with the events (or keys) they found; `failures` says the same in words
    failed_tests: list[FailedTest] = field(default_factory=list)

    @property
    def rows_set_aside(self) -> int:
        return sum(s.rows for s in self.set_aside)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "full_refresh": self.full_refresh_reason is not None,
            "full_refresh_reason": self.full_refresh_reason,
            "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed,
            "models_built": self.models_built,
            "seeds_loaded": self.seeds_loaded,
            "failures": self.failures,
            "tables": self.tables,
            "seconds": round(self.seconds, 3),
            "node_seconds": {k: round(v, 3) for k, v in sorted(self.node_seconds.items())},
            "rows_set_aside": self.rows_set_aside,
            "set_aside": [s.to_dict() for s in self.set_aside],
            "failed_tests": [f.to_dict() for f in self.failed_tests],
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
                history.copy_reference_file(src, project / "seeds" / name)
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    targets.check_target(settings)
    profile = {
        "pharmaflow": {
            "target": settings.warehouse_target,
            "outputs": targets.profile_outputs(settings),
        }
    }
    profiles = work / "profiles.yml"
    profiles.touch(mode=0o600)  # it may hold the warehouse password
    profiles.chmod(0o600)
    profiles.write_bytes(orjson.dumps(profile))  # JSON is valid YAML
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
        orjson.dumps(
            {
                "lake_dir": str(settings.lake_dir),
                "late_lookback_hours": settings.late_lookback_hours,
                # the calendar starts where ingest's plausible-timestamp window does, so every
                # event ingest accepts has its day in gold.dim_date (macros/calendar.sql)
                "calendar_start": settings.time_window.minimum.date().isoformat(),
            }
        ).decode(),
        "--threads",
        str(settings.dbt_threads),
    ]


def build(
    settings: Settings, on_node: NodeDone | None = None, full_refresh: bool = False
) -> BuildResult:
    """`dbt build` (seeds, snapshots, models, tests) over the data dir's lake.

    Incremental unless `full_refresh`, or the project or reference data changed since the last
    successful build (build_state), in which case silver and gold are rebuilt from bronze."""
    quiet_dbt()
    from dbt.cli.main import dbtRunner  # heavy import: only when building

    started = time.perf_counter()
    project = prepare_project(settings)
    target = settings.warehouse_target
    current = build_state.fingerprint(project, target)
    reason = "requested" if full_refresh else None
    reason = reason or build_state.needs_full_refresh(settings.warehouse_dir, target, current)
    if settings.warehouse_target == "postgres":
        # PostgreSQL cannot read the Parquet lake: bronze is loaded (new batches only) first
        from pharmaflow.warehouse.load_postgres import load_bronze

        load_bronze(settings)

    def callback(event: Any) -> None:
        if on_node is None or event.info.name != "NodeFinished":
            return
        node = event.data.node_info
        on_node(node.resource_type, node.node_name, node.node_status)

    runner = dbtRunner(callbacks=[callback])
    args = [*dbt_args(settings, project, "build"), "--quiet"]
    if reason is not None:
        args.append("--full-refresh")
    build_state.forget(settings.warehouse_dir, target)
    res = runner.invoke(args)
    if res.exception is not None and res.result is None:
        raise PharmaflowError(f"dbt could not run: {res.exception}")
    result = BuildResult(success=bool(res.success), full_refresh_reason=reason)
    targets.checkpoint(settings)
    if result.success:
        build_state.record(settings.warehouse_dir, target, current)
    query = targets.warehouse_query(settings)
    manifest_nodes: dict[str, Any] | None = None
    statuses: Counter[tuple[str, str]] = Counter()
    for node_result in getattr(res.result, "results", []) or []:
        kind = node_result.node.resource_type
        status = str(node_result.status)
        statuses[(kind, status)] += 1
        seconds = getattr(node_result, "execution_time", 0.0) or 0.0
        result.node_seconds[str(kind)] = result.node_seconds.get(str(kind), 0.0) + seconds
        if status not in ("fail", "error"):
            continue
        if kind == "test":
            if manifest_nodes is None:
                manifest_nodes = load_manifest_nodes(project.parent / "target")
            failed = describe_failed_test(query, node_result.node, status, manifest_nodes)
            result.failed_tests.append(failed)
            result.failures.append(failed.describe())
        else:
            result.failures.append(f"{node_result.node.name}: {status}")
    result.tests_passed = statuses[("test", "pass")]
    result.tests_failed = sum(
        n for (k, s), n in statuses.items() if k == "test" and s in ("fail", "error", "warn")
    )
    result.models_built = statuses[("model", "success")]
    result.seeds_loaded = statuses[("seed", "success")]
    result.tables = targets.table_counts(settings)
    if query is not None:
        result.set_aside = set_aside_counts(query)
    result.seconds = time.perf_counter() - started
    return result
