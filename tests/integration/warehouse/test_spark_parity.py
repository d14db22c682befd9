"""The dbt project builds on Spark exactly as on DuckDB (docs/warehouse-targets.md).

One simulated input (every fault knob on) is ingested in two halves into one lake; after each
half the lake is built on DuckDB and on Spark (dbt-spark's `session` method: Spark SQL in this
process, local mode, Parquet tables and a Derby metastore under the data dir), a full build
then an incremental one. Every build must pass every dbt test; in the end every silver and
gold table must hold the same row count on both, the same columns and the same aggregates of
its values, and the KPI models (`gold.kpi_*`) must be equal row for row.

Tolerance: values are compared after `tests.warehouse_parity.normalise` (numbers as floats
rounded to 4 decimals). Every KPI and fact measure is a decimal computed exactly on both
engines (macros/spark/sql_helpers.sql), so those compare equal; the only floats are the sums of
the aggregate check over double columns (temperatures, sensor values, ML features), whose last
bits depend on the order Spark's partitions are added in: they match to 1e-9 relative or 1e-4
absolute (`tests.warehouse_parity.same`).

Spark starts one JVM per process and keeps it (a local session cannot change its warehouse or
metastore after start): the whole test session uses one SparkSession, the one these builds
start. Needs Java 17 (the Makefile's `java` target) and the `spark` extra.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse import targets
from pharmaflow.warehouse.runner import BuildResult, build
from tests.conftest import TEST_KEYS
from tests.warehouse_parity import (
    aggregates_sql,
    duckdb_tables,
    ingest,
    normalise,
    parity_settings,
    quoted,
    same,
    sort_key,
    split_in_halves,
)

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
# what Spark and Derby write into the working directory unless told otherwise
LOCAL_SPARK_LEFTOVERS = ("metastore_db", "derby.log", "spark-warehouse")


@dataclass
class _Builds:
    duckdb: BuildResult  # the second (incremental) builds
    spark: BuildResult
    first_duckdb: BuildResult  # the first (full) builds
    first_spark: BuildResult
    duckdb_path: Path
    spark_settings: Settings
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, faulty_input) -> Iterator[_Builds]:
    """The faulty demo input built on DuckDB and on Spark, both data dirs sharing one lake:
    the first half ingested and built (a full build), then the rest ingested and built again
    (an incremental build: only the new bronze batches are read on both)."""
    path, _ = faulty_input
    root = tmp_path_factory.mktemp("spark-parity")
    halves = split_in_halves(path, root)
    seconds: dict[str, float] = {}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TEST_KEYS.items():
            mp.setenv(name, value)
        on_duckdb = parity_settings(root / "duckdb")
        on_spark = parity_settings(root / "spark", warehouse_target="spark")
        on_spark.root.mkdir(parents=True)
        (on_spark.root / "lake").symlink_to(on_duckdb.lake_dir, target_is_directory=True)
        results: list[tuple[BuildResult, BuildResult]] = []
        for label, half in zip(("full", "incremental"), halves, strict=True):
            ingest(on_duckdb, half)
            started = time.perf_counter()
            on_duck = build(on_duckdb)
            seconds[f"duckdb {label}"] = time.perf_counter() - started
            started = time.perf_counter()
            on_spark_result = build(on_spark)
            seconds[f"spark {label}"] = time.perf_counter() - started
            results.append((on_duck, on_spark_result))
        print(  # the figures docs/warehouse-targets.md quotes; shown with -s
            "\nbuild seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
        )
        (first_duck, first_spark), (duck_result, spark_result) = results
        yield _Builds(
            duck_result,
            spark_result,
            first_duck,
            first_spark,
            on_duckdb.warehouse_path,
            on_spark,
            seconds,
        )


def _spark_tables(settings: Settings) -> dict[str, list[str]]:
    """Every silver and gold table and view of the Spark warehouse, with its columns."""
    spark = targets.spark_session(settings)
    tables: dict[str, list[str]] = {}
    for schema in ("silver", "gold"):
        for table in spark.catalog.listTables(schema):
            if not table.isTemporary:
                name = f"{schema}.{table.name}"
                tables[name] = list(spark.table(f"`{schema}`.`{table.name}`").columns)
    return tables


@pytest.fixture(scope="module")
def warehouses(builds: _Builds) -> Iterator[tuple[duckdb.DuckDBPyConnection, Any]]:
    """The DuckDB warehouse and a query function on the Spark one (ANSI SQL identifiers)."""
    # default (read-write) configuration: dbt's in-process DuckDB instance may still be open
    with duckdb.connect(str(builds.duckdb_path)) as duck:
        query = targets.warehouse_query(builds.spark_settings)
        assert query is not None
        yield duck, query


def test_both_builds_pass_every_test(builds: _Builds) -> None:
    for name, result in (
        ("duckdb, full", builds.first_duckdb),
        ("spark, full", builds.first_spark),
        ("duckdb, incremental", builds.duckdb),
        ("spark, incremental", builds.spark),
    ):
        assert result.success, f"{name}: {result.failures}"
        assert result.failures == [] and result.tests_failed == 0, name
        assert result.tests_passed > 0 and result.models_built > 0, name
    assert builds.first_spark.full_refresh_reason is not None  # a new warehouse
    assert builds.duckdb.full_refresh_reason is None
    assert builds.spark.full_refresh_reason is None
    assert builds.spark.tests_passed == builds.duckdb.tests_passed
    assert builds.spark.models_built == builds.duckdb.models_built
    assert builds.spark.seeds_loaded == builds.duckdb.seeds_loaded
    assert builds.spark.set_aside == builds.duckdb.set_aside


def test_every_silver_and_gold_table_has_the_same_rows_and_columns(builds: _Builds, warehouses):
    duck, _ = warehouses
    on_duckdb = duckdb_tables(duck)
    on_spark = _spark_tables(builds.spark_settings)
    assert any(t.startswith("gold.") for t in on_duckdb)
    assert {t: [c.name for c in cols] for t, cols in on_duckdb.items()} == on_spark
    # rows per table, as the runner counts them in each warehouse
    assert builds.spark.tables == builds.duckdb.tables
    assert any(t.startswith("gold.") for t in builds.duckdb.tables)


def test_every_table_has_the_same_value_aggregates(warehouses):
    """Sums, counts, minima and maxima of every column of every silver and gold table: the
    KPIs (daily summaries, facts, rates, yields) computed the same way on both engines."""
    duck, spark_query = warehouses
    differences: list[str] = []
    for table, columns in sorted(duckdb_tables(duck).items()):
        on_duckdb_sql, labels = aggregates_sql(table, columns)
        on_spark_sql, _ = aggregates_sql(table, columns, float_type="double")
        on_duckdb = [normalise(v) for v in duck.execute(on_duckdb_sql).fetchone()]
        on_spark = [normalise(v) for v in spark_query(on_spark_sql)[1][0]]
        differences += [
            f"{table} {label}: duckdb {a!r} != spark {b!r}"
            for label, a, b in zip(labels, on_duckdb, on_spark, strict=True)
            if not same(a, b)
        ]
    assert differences == []


def test_kpi_models_are_equal_row_for_row(warehouses):
    duck, spark_query = warehouses
    kpis = sorted(t for t in duckdb_tables(duck) if t.startswith("gold.kpi_"))
    assert kpis  # kpi_quality, kpi_fulfilment, kpi_carrier_on_time, kpi_nps
    for table in kpis:
        query = f"select * from {quoted(table)}"
        on_duckdb = sorted(
            (tuple(map(normalise, r)) for r in duck.execute(query).fetchall()), key=sort_key
        )
        on_spark = sorted((tuple(map(normalise, r)) for r in spark_query(query)[1]), key=sort_key)
        assert len(on_duckdb) == len(on_spark) > 0, table
        for a, b in zip(on_duckdb, on_spark, strict=True):
            assert all(same(x, y) for x, y in zip(a, b, strict=True)), f"{table}: {a} != {b}"


def test_spark_keeps_its_state_in_the_data_dir(builds: _Builds):
    """The tables, the Hive metastore and derby.log are under <data_dir>/warehouse/spark;
    nothing lands in the working directory (Spark's and Derby's defaults)."""
    home = builds.spark_settings.spark_dir
    assert (home / "metastore_db").is_dir() and (home / "derby.log").is_file()
    assert (home / "tables" / "gold.db" / "kpi_quality").is_dir()
    for name in LOCAL_SPARK_LEFTOVERS:
        assert not (Path.cwd() / name).exists(), name
        assert not (REPO_ROOT / name).exists(), name
    assert builds.seconds["spark full"] > 0  # printed with -s: the figures of the docs


def test_a_second_local_spark_warehouse_in_the_same_process_is_refused(
    builds: _Builds, tmp_path: Path
):
    """The JVM these builds started keeps its warehouse and metastore: a build of another data
    dir in this process would write into them, so it stops before dbt with one sentence."""
    other = Settings(data_dir=tmp_path / "other", warehouse_target="spark")
    with pytest.raises(PharmaflowError, match="one process holds one local Spark warehouse"):
        targets.check_target(other)
    targets.check_target(builds.spark_settings)  # the warehouse it runs on is fine
