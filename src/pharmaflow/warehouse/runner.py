"""Run the dbt project over a data dir's lake and report what it built and tested.

The project ships inside the package; each build copies it into the data dir (so target/, logs/
and partial-parse state never touch the install, and two data dirs never share them) and lays
the user's own reference CSVs over the shipped seeds when `PHARMAFLOW_REFERENCE_DIR` is set.
dbt runs in-process through `dbtRunner`, reporting each finished node to a progress callback.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from pharmaflow import logs, tracing
from pharmaflow.config import Settings
from pharmaflow.datadir import DIR_MODE
from pharmaflow.errors import PharmaflowError, says_disk_full
from pharmaflow.warehouse import build_log, build_state, history, publish, targets
from pharmaflow.warehouse.dbt_env import dbt_runner
from pharmaflow.warehouse.set_aside import (
    FailedTest,
    SetAside,
    describe_failed_test,
    load_manifest_nodes,
    set_aside_counts,
)
from pharmaflow.warehouse.targets import warehouse_lock

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).parent / "dbt"
REFERENCE_FILES = ("products.csv", "facilities.csv", "equipment.csv", "carriers.csv", "payers.csv")

NodeDone = Callable[[str, str, str], None]
# How long a build waits, by default, for readers (`pharmaflow sql`, `trace`) of the DuckDB
# warehouse to finish before it refuses: DuckDB allows one writer or many readers, never both.
READER_WAIT_SECONDS = 60.0
# Node kinds whose success means dbt changed a table (tests only read).
_WRITING_NODES = frozenset({"model", "seed", "snapshot"})


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
    dbt_log: Path | None = None  # dbt's own log of the build: the details behind `failures`

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
            "dbt_log": str(self.dbt_log) if self.dbt_log is not None else None,
        }


def prepare_project(settings: Settings) -> Path:
    """Copy the dbt project into the data dir, overlay user reference data, write the profile."""
    work = settings.warehouse_dir / "dbt"
    project = work / "project"
    if project.exists():
        shutil.rmtree(project)
    # Contents only: copying the installed package's modes (0644/0755) would open the data
    # dir's copy to other users; files get the owner-only mode a new file gets (umask), and
    # copytree's own copystat of each folder is undone below.
    shutil.copytree(
        PROJECT_DIR,
        project,
        ignore=shutil.ignore_patterns("target", "logs", "__pycache__"),
        copy_function=shutil.copyfile,
    )
    for folder in [project, *(p for p in project.rglob("*") if p.is_dir())]:
        folder.chmod(DIR_MODE)
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
                "lake_dir": _lake_location(settings),
                "late_lookback_hours": settings.late_lookback_hours,
                # the calendar starts where ingest's plausible-timestamp window does, so every
                # event ingest accepts has its day in gold.dim_date (macros/calendar.sql)
                "calendar_start": settings.time_window.minimum.date().isoformat(),
            }
        ).decode(),
        "--threads",
        str(settings.dbt_threads),
    ]


def _lake_location(settings: Settings) -> str:
    """Where dbt reads the lake: the data dir's, or for Spark on a cluster the URI the cluster
    reads it at (`spark_lake_uri`: the same files on gs://, s3://, ...)."""
    if settings.warehouse_target == "spark" and settings.spark_lake_uri:
        return settings.spark_lake_uri.rstrip("/")
    return str(settings.lake_dir)


def _prepare_spark(settings: Settings) -> None:
    """Local Spark: its warehouse dir, and the lake's `bronze/` and `_manifests/` (which the
    bronze hook lists through Spark tables located there: Spark would create a missing one
    itself, open to other users), made owner-only like the rest of the data dir; the JVM
    binds loopback (targets.prepare_spark_process)."""
    targets.prepare_spark_process(settings)
    if not targets.spark_is_local(settings):
        return
    for folder in (
        settings.spark_dir,
        settings.lake_dir / "bronze",
        settings.lake_dir / "_manifests",
    ):
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def dbt_log_path(settings: Settings) -> Path:
    """dbt's own log of a build (every SQL statement and error), for when a summary is not
    enough."""
    return settings.warehouse_dir / "dbt" / "logs" / "dbt.log"


def _disk_full(settings: Settings) -> PharmaflowError:
    return PharmaflowError(
        f"disk full: no space left on the device holding {settings.warehouse_dir} during the "
        f"build; free space and run `pharmaflow build` again (nothing committed is lost; "
        f"dbt's log: {dbt_log_path(settings)})"
    )


@contextmanager
def _quiet_logging_errors() -> Iterator[None]:
    """dbt logs to a file through `logging`: when that file cannot be written (a full disk)
    each record would print a traceback on stderr (18,973 lines in one build). The failure
    itself is reported once, from dbt's result."""
    before = logging.raiseExceptions
    logging.raiseExceptions = False
    try:
        yield
    finally:
        logging.raiseExceptions = before


def build(
    settings: Settings,
    on_node: NodeDone | None = None,
    full_refresh: bool = False,
    *,
    reader_wait: float = READER_WAIT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> BuildResult:
    """`dbt build` (seeds, snapshots, models, tests) over the data dir's lake.

    Incremental unless `full_refresh`, or the project or reference data changed since the last
    successful build (build_state), in which case silver and gold are rebuilt from bronze.
    On DuckDB the build first takes the warehouse's write lock, waiting up to `reader_wait`
    seconds for readers to finish (`on_wait` says so once), and holds it to the end, so no
    reader can make dbt fail half-way (and a refusal costs a second, not a dbt start)."""
    started = time.perf_counter()
    started_at = build_log.now()
    build_id = f"{started_at:%Y%m%dT%H%M%S%fZ}-{os.getpid()}"
    # a caller's trace (a scheduler task, `pharmaflow up`) is kept; else the build starts one
    trace_id = logs.current_trace_id() or tracing.new_trace_id()
    with logs.bind(trace_id=trace_id, build_id=build_id):
        logs.event(log, "build_started", target=settings.warehouse_target, full=full_refresh)
        try:
            with warehouse_lock(settings, reader_wait, on_wait), _quiet_logging_errors():
                result = _build(settings, on_node, full_refresh)
        except PharmaflowError as exc:
            seconds = time.perf_counter() - started
            _record(settings, build_id, trace_id, started_at, seconds, None, exc)
            raise
        result.seconds = time.perf_counter() - started
        _record(settings, build_id, trace_id, started_at, result.seconds, result, None)
    return result


def _record(
    settings: Settings,
    build_id: str,
    trace_id: str,
    started_at: datetime,
    seconds: float,
    result: BuildResult | None,
    error: PharmaflowError | None,
) -> None:
    """One line in the build log (warehouse/build_log.py); a log that cannot be written
    (a full disk) must not turn a good build into a failed one."""
    outcome = "error"
    if result is not None and result.success:
        outcome = "success"
    elif result is not None and result.tests_failed:
        outcome = "tests_failed"
    record = build_log.BuildRecord(
        build_id=build_id,
        trace_id=trace_id,
        target=settings.warehouse_target,
        started_at=started_at,
        finished_at=build_log.now(),
        seconds=seconds,
        outcome=outcome,
        error=str(error).splitlines()[0] if error is not None and str(error) else None,
        **(
            {
                "full_refresh_reason": result.full_refresh_reason,
                "models_built": result.models_built,
                "tests_passed": result.tests_passed,
                "tests_failed": result.tests_failed,
                "failed_tests": [f.name for f in result.failed_tests],
                "failures": result.failures[:50],
                "rows_set_aside": result.rows_set_aside,
            }
            if result is not None
            else {}
        ),
    )
    try:
        build_log.append(settings.warehouse_dir, record)
    except OSError as exc:
        log.warning("could not write the build log: %s", exc.strerror or exc)
    logs.event(
        log,
        "build_finished",
        outcome=outcome,
        seconds=round(seconds, 3),
        models_built=record.models_built,
        tests_passed=record.tests_passed,
        tests_failed=record.tests_failed,
        failed_tests=record.failed_tests[:20],
        error=record.error,
    )


def _build(settings: Settings, on_node: NodeDone | None, full_refresh: bool) -> BuildResult:
    dbtRunner = dbt_runner()

    project = prepare_project(settings)
    target = settings.warehouse_target
    current = build_state.fingerprint(project, target)
    reason = "requested" if full_refresh else None
    reason = reason or build_state.needs_full_refresh(settings.warehouse_dir, target, current)
    if settings.warehouse_target == "postgres":
        # PostgreSQL cannot read the Parquet lake: bronze is loaded (new batches only) first
        from pharmaflow.warehouse.load_postgres import load_bronze

        load_bronze(settings)
    if settings.warehouse_target == "bigquery":
        # BigQuery reads its own storage: committed batches are loaded, exactly once, first
        from pharmaflow.warehouse import load_bigquery

        load_bigquery.load_bronze(settings)
    if settings.warehouse_target == "spark":
        _prepare_spark(settings)

    def callback(event: Any) -> None:
        if on_node is None or event.info.name != "NodeFinished":
            return
        node = event.data.node_info
        on_node(node.resource_type, node.node_name, node.node_status)

    runner = dbtRunner(callbacks=[callback])
    # dbt writes nothing on the terminal (its errors are summarised from the results, and
    # every detail is in its own log file)
    args = [*dbt_args(settings, project, "build"), "--log-level", "none"]
    args += ["--log-level-file", "debug"]
    if reason is not None:
        args.append("--full-refresh")
    build_state.mark_unfinished(settings.warehouse_dir, target)
    res = runner.invoke(args)
    node_results = list(getattr(res.result, "results", None) or [])
    if not any(
        r.node.resource_type in _WRITING_NODES and str(r.status) == "success" for r in node_results
    ):
        build_state.restore(settings.warehouse_dir, target)  # no table changed
    _raise_when_dbt_did_not_run(settings, res, node_results)
    result = BuildResult(
        success=bool(res.success), full_refresh_reason=reason, dbt_log=dbt_log_path(settings)
    )
    try:
        targets.checkpoint(settings)
    except duckdb.Error as exc:  # the build stays unfinished: the next one rebuilds
        if says_disk_full(str(exc)):
            raise _disk_full(settings) from None
        lines = str(exc).strip().splitlines()
        raise PharmaflowError(
            f"could not write the warehouse {settings.warehouse_path}: "
            f"{lines[0] if lines else type(exc).__name__}"
        ) from None
    if result.success:
        build_state.record(settings.warehouse_dir, target, current)
    _summarise(settings, project, node_results, result)
    if result.success:  # serving switches to it; a failed build leaves the last good one
        publish.publish(settings)
    return result


def _raise_when_dbt_did_not_run(settings: Settings, res: Any, node_results: list[Any]) -> None:
    """One line instead of a build summary: dbt could not start, or the disk is full (then
    every later node fails for the same reason, and the tests report nothing true)."""
    exc = res.exception
    if exc is not None and res.result is None:
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or says_disk_full(str(exc)):
            raise _disk_full(settings)
        lines = str(exc).strip().splitlines()
        # a connection error may quote the target's credentials: never in a message or log
        first = targets.redact_secrets(settings, lines[0]) if lines else type(exc).__name__
        raise PharmaflowError(f"dbt could not run: {first} (dbt's log: {dbt_log_path(settings)})")
    if any(says_disk_full(str(getattr(r, "message", "") or "")) for r in node_results):
        raise _disk_full(settings)


def _summarise(
    settings: Settings, project: Path, node_results: list[Any], result: BuildResult
) -> None:
    """Counts per node kind and status, the failures in words, rows per table, set-asides."""
    query = targets.warehouse_query(settings)
    manifest_nodes: dict[str, Any] | None = None
    statuses: Counter[tuple[str, str]] = Counter()
    for node_result in node_results:
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
            result.failures.append(
                targets.redact_secrets(settings, _node_failure(node_result, status))
            )
    result.tests_passed = statuses[("test", "pass")]
    result.tests_failed = sum(
        n for (k, s), n in statuses.items() if k == "test" and s in ("fail", "error", "warn")
    )
    result.models_built = statuses[("model", "success")]
    result.seeds_loaded = statuses[("seed", "success")]
    result.tables = targets.table_counts(settings)
    if query is not None:
        result.set_aside = set_aside_counts(query)


def _node_failure(node_result: Any, status: str) -> str:
    """`<node>: error: <first line of dbt's message>` (the rest is in dbt's log)."""
    message = str(getattr(node_result, "message", "") or "").strip()
    first = message.splitlines()[0] if message else ""
    return f"{node_result.node.name}: {status}" + (f": {first}" if first else "")
