"""Warehouse targets benchmark: the same lake built on DuckDB and on Spark, side by side.

One simulated lake (all fault knobs off, seed 42) is ingested once; a DuckDB data dir and a
Spark data dir (dbt-spark `session` method, local mode: Spark SQL in this process over the
same Parquet files, the lake shared through a symlink) each build it in full, then ingest the
last `--tail` share of the input and build incrementally. The Spark JVM's start is timed
apart (paid once per process, not per build) and left out of the Spark build times. The
figures are the build times per target and the ratio Spark / DuckDB; the row counts of the
two warehouses must agree.

    python bench/warehouse_targets.py [--scale 0.25] [--days 7] [--tail 0.006] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench_keys import KEYS
from build_warehouse import ingest
from pharmaflow.config import Settings
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from pharmaflow.warehouse import targets
from pharmaflow.warehouse.runner import BuildResult, build


def timed_build(settings: Settings) -> tuple[float, BuildResult]:
    started = time.perf_counter()
    result = build(settings)
    return time.perf_counter() - started, result


def run(scale: float, days: int, tail: float, work: Path) -> dict[str, float | int | bool]:
    source = work / "events.jsonl"
    stats = simulate(SimConfig(seed=42, days=days, scale=scale), source)
    lines = source.read_bytes().splitlines(keepends=True)
    cut = int(len(lines) * (1 - tail))
    head, rest = work / "head.jsonl", work / "tail.jsonl"
    head.write_bytes(b"".join(lines[:cut]))
    rest.write_bytes(b"".join(lines[cut:]))
    del lines

    on_duckdb = Settings(data_dir=work / "duckdb")
    on_spark = Settings(data_dir=work / "spark", warehouse_target="spark")
    on_spark.root.mkdir(parents=True)
    (on_spark.root / "lake").symlink_to(on_duckdb.lake_dir, target_is_directory=True)
    ingest(on_duckdb, head)

    started = time.perf_counter()
    targets.spark_session(on_spark)  # the JVM dbt-spark then reuses (same configuration)
    jvm_s = time.perf_counter() - started

    duckdb_full_s, duckdb_full = timed_build(on_duckdb)
    spark_full_s, spark_full = timed_build(on_spark)
    ingest(on_duckdb, rest)
    duckdb_incremental_s, duckdb_incremental = timed_build(on_duckdb)
    spark_incremental_s, spark_incremental = timed_build(on_spark)
    results = (duckdb_full, spark_full, duckdb_incremental, spark_incremental)
    return {
        "events": stats.lines,
        "tail_events": len(rest.read_bytes().splitlines()),
        "spark_jvm_start_s": round(jvm_s, 1),
        "duckdb_full_s": round(duckdb_full_s, 1),
        "spark_full_s": round(spark_full_s, 1),
        "full_ratio": round(spark_full_s / duckdb_full_s, 1),
        "duckdb_incremental_s": round(duckdb_incremental_s, 1),
        "spark_incremental_s": round(spark_incremental_s, 1),
        "incremental_ratio": round(spark_incremental_s / duckdb_incremental_s, 1),
        "duckdb_models_s": round(duckdb_full.node_seconds.get("model", 0.0), 1),
        "spark_models_s": round(spark_full.node_seconds.get("model", 0.0), 1),
        "duckdb_tests_s": round(duckdb_full.node_seconds.get("test", 0.0), 1),
        "spark_tests_s": round(spark_full.node_seconds.get("test", 0.0), 1),
        "tests": spark_full.tests_passed,
        "tables_agree": spark_incremental.tables == duckdb_incremental.tables,
        "all_tests_passed": all(r.success and r.tests_failed == 0 for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25, help="simulator scale (1 = demo)")
    parser.add_argument("--days", type=int, default=7, help="simulated days")
    parser.add_argument("--tail", type=float, default=1 / 168, help="share built incrementally")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.update(KEYS)
    with tempfile.TemporaryDirectory(prefix="pf-targets-bench-") as tmp:
        r = run(args.scale, args.days, args.tail, Path(tmp))
    if args.json:
        print(json.dumps(r))
        return
    print(
        f"scale {args.scale:g}, {args.days} days: {r['events']:,} events, "
        f"+{r['tail_events']:,} for the incremental build; Spark JVM start "
        f"{r['spark_jvm_start_s']}s (once per process, not in the figures below)\n"
        f"{'build':<14}{'DuckDB':>10}{'Spark':>10}{'Spark/DuckDB':>14}\n"
        f"{'full':<14}{r['duckdb_full_s']:>9}s{r['spark_full_s']:>9}s{r['full_ratio']:>13}x\n"
        f"{'incremental':<14}{r['duckdb_incremental_s']:>9}s{r['spark_incremental_s']:>9}s"
        f"{r['incremental_ratio']:>13}x\n"
        f"{'  full: models':<14}{r['duckdb_models_s']:>9}s{r['spark_models_s']:>9}s\n"
        f"{'  full: tests':<14}{r['duckdb_tests_s']:>9}s{r['spark_tests_s']:>9}s"
        f"   ({r['tests']} dbt tests, node time summed over threads)\n"
        f"tables agree: {r['tables_agree']}, every test passed: {r['all_tests_passed']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
