"""`pharmaflow sql`'s engine: the lake's metadata next to the warehouse, and nothing else.

The lake is a real one (the faulty simulated input ingested in batches), so the conservation
checks below are the ones a user runs: every record a manifest counts is landed, a duplicate,
quarantined or blank, and the landed ones are exactly the bronze rows.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.pipeline import IngestEngine, IngestResult
from pharmaflow.ingest.sources import open_sources
from pharmaflow.warehouse.query import lake_tables_named, run_query
from tests.conftest import TEST_KEYS

BRONZE_COLUMNS = [
    "event_id",
    "event_type",
    "event_version",
    "event_time",
    "source_system",
    "trace_id",
    "key",
    "ingest_time",
    "source",
    "source_uri",
    "source_partition",
    "source_offset",
    "batch_id",
]
QUARANTINE_COLUMNS = [
    "ingest_time",
    "source",
    "source_uri",
    "source_partition",
    "source_offset",
    "batch_id",
    "event_id",
    "event_type",
    "reason_code",
    "reason_field",
    "reason_detail",
]


@pytest.fixture(scope="module")
def ingested(
    tmp_path_factory: pytest.TempPathFactory, faulty_input, request
) -> tuple[Settings, IngestResult]:
    """A lake of several committed batches, plus debris a crash could leave: a manifest still
    being written and the part of a batch that never committed. Neither may be counted."""
    monkeypatch = pytest.MonkeyPatch()
    request.addfinalizer(monkeypatch.undo)
    for name, value in TEST_KEYS.items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path_factory.mktemp("sql") / "data", batch_size=5_000)
    engine = IngestEngine(settings)
    result = engine.run(open_sources(str(faulty_input[0]), engine.registry))
    lake = settings.lake_dir
    manifest = sorted((lake / "_manifests").glob("*.json"))[0]
    shutil.copyfile(manifest, manifest.with_name(".tmp-123-" + manifest.name))
    part = sorted((lake / "bronze").rglob("part-*.parquet"))[0]
    shutil.copyfile(part, part.with_name("part-file-uncommitted-0000000001.parquet"))
    quarantined = sorted((lake / "quarantine").rglob("part-*.parquet"))[0]
    shutil.copyfile(quarantined, quarantined.with_name("part-file-uncommitted-0000000001.parquet"))
    return settings, result


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "pharmaflow.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema gold")
        con.execute("create table gold.dim_product (ndc varchar, name varchar)")
        con.execute("insert into gold.dim_product values ('00310-6205-30', 'Tablet')")
    return path


def query(settings: Settings, warehouse: Path, sql: str) -> list[tuple]:
    return run_query(warehouse, sql, settings.lake_dir)[1]


def test_conservation_can_be_checked_from_the_lake_metadata(ingested, warehouse):
    settings, result = ingested
    [(batches, records, landed, duplicates, quarantined, blank)] = query(
        settings,
        warehouse,
        "select count(*), sum(records), sum(landed), sum(duplicates), sum(quarantined), "
        "sum(blank) from lake.manifests",
    )
    assert batches == result.batches > 1
    assert (landed, duplicates, quarantined) == (
        result.landed,
        result.duplicates,
        result.quarantined,
    )
    assert records == landed + duplicates + quarantined + blank
    assert query(settings, warehouse, "select count(*) from lake.bronze") == [(landed,)]
    assert query(settings, warehouse, "select count(*) from lake.quarantine") == [(quarantined,)]
    # batch by batch: the manifest's counts are its rows in bronze and quarantine
    assert query(
        settings,
        warehouse,
        """
            select count(*) from lake.manifests m
            left join (select batch_id, count(*) n from lake.bronze group by 1) b using (batch_id)
            left join (select batch_id, count(*) n from lake.quarantine group by 1) q
                using (batch_id)
            where m.landed != coalesce(b.n, 0) or m.quarantined != coalesce(q.n, 0)
               or m.records != m.landed + m.duplicates + m.quarantined + m.blank
            """,
    ) == [(0,)]


def test_quarantine_reasons_and_provenance_are_queryable(ingested, warehouse):
    settings, result = ingested
    reasons = dict(
        query(
            settings,
            warehouse,
            "select reason_code, count(*) from lake.quarantine group by 1",
        )
    )
    assert reasons == dict(result.quarantine_reasons)
    [(from_manifests,)] = query(
        settings,
        warehouse,
        "select sum(quarantine_reasons['missing_field']) from lake.manifests",
    )
    assert from_manifests == result.quarantine_reasons["missing_field"] > 0
    [(sources, ingest_times)] = query(
        settings,
        warehouse,
        "select count(distinct source_uri), count(ingest_time) = count(*) from lake.manifests",
    )
    assert (sources, ingest_times) == (1, True)


def test_lake_tables_leave_out_payloads_and_sealed_raw_bytes(ingested, warehouse):
    settings, _ = ingested
    columns, _ = run_query(warehouse, "select * from lake.bronze limit 0", settings.lake_dir)
    assert columns == BRONZE_COLUMNS
    columns, _ = run_query(warehouse, "select * from lake.quarantine limit 0", settings.lake_dir)
    assert columns == QUARANTINE_COLUMNS
    with pytest.raises(PharmaflowError, match="raw_encrypted"):
        query(settings, warehouse, "select raw_encrypted from lake.quarantine")


def test_uncommitted_parts_and_manifests_do_not_count(ingested, warehouse):
    settings, result = ingested
    assert query(
        settings,
        warehouse,
        "select count(*) from lake.bronze where batch_id like '%uncommitted%'",
    ) == [(0,)]
    assert query(settings, warehouse, "select count(*) from lake.manifests") == [(result.batches,)]


def test_the_lake_needs_no_warehouse(ingested, tmp_path):
    settings, result = ingested
    rows = query(settings, tmp_path / "none.duckdb", "select sum(landed) from lake.manifests")
    assert rows == [(result.landed,)]
    with pytest.raises(PharmaflowError, match="no warehouse"):
        query(settings, tmp_path / "none.duckdb", "select 1")


def test_an_empty_lake_has_empty_tables(warehouse, tmp_path):
    for table in ("manifests", "bronze", "quarantine"):
        assert run_query(warehouse, f"select count(*) from lake.{table}", tmp_path) == (
            ["count_star()"],
            [(0,)],
        )


def test_only_queries_naming_the_lake_read_it(warehouse, tmp_path):
    """A broken manifest fails lake queries with its name, and nothing else."""
    (tmp_path / "_manifests").mkdir()
    (tmp_path / "_manifests" / "file-broken.json").write_text('{"counts": ')
    assert run_query(warehouse, "select count(*) from gold.dim_product", tmp_path)[1] == [(1,)]
    with pytest.raises(PharmaflowError, match=r"file-broken\.json is unreadable"):
        run_query(warehouse, "select * from lake.manifests", tmp_path)
    (tmp_path / "_manifests" / "file-broken.json").write_text('{"counts": {"landed": "many"}}')
    with pytest.raises(PharmaflowError, match="malformed field"):
        run_query(warehouse, "select * from lake.manifests", tmp_path)


@pytest.mark.parametrize(
    "sql, error",
    [
        ("select * from read_csv('/etc/passwd')", "disabled by configuration"),
        ("select * from read_parquet('{lake}/bronze/**/*.parquet')", "disabled by configuration"),
        # the sealed raw bytes of quarantine, next to the lake metadata: out of reach
        ("select * from read_blob('{lake}/quarantine/**/*.parquet')", "disabled by configuration"),
        ("select * from glob('/etc/*')", "disabled by configuration"),
        ("copy (select 1) to '{tmp}/out.csv'", "read-only; a COPY"),
        ("attach '{tmp}/other.duckdb' as other", "read-only; a ATTACH"),
        ("install httpfs", "read-only"),
        ("load httpfs", "read-only"),
        ("set enable_external_access = true", "read-only; a SET"),
        ("drop table gold.dim_product", "read-only; a DROP"),
        ("insert into lake.manifests (batch_id) values ('forged')", "read-only; a INSERT"),
        ("create temp table t as select * from lake.bronze", "read-only; a CREATE"),
        ("select 1; delete from gold.dim_product", "read-only; a DELETE"),
        ("export database '{tmp}/dump'", "read-only"),
        ("pragma enable_profiling", "locked"),
        ("select * from lake.bronze; select * from read_csv('/etc/passwd')", "disabled by conf"),
        ("select from where", "Parser Error"),
        ("  ", "no SQL statement"),
    ],
)
def test_the_query_reads_nothing_else_and_writes_nothing(ingested, warehouse, tmp_path, sql, error):
    settings, _ = ingested
    before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    sql = sql.format(lake=settings.lake_dir, tmp=tmp_path)
    with pytest.raises(PharmaflowError, match=error):
        run_query(warehouse, sql, settings.lake_dir)
    assert list(tmp_path.iterdir()) == []
    assert hashlib.sha256(warehouse.read_bytes()).hexdigest() == before


def test_reading_statements_still_run(ingested, warehouse):
    settings, _ = ingested
    assert run_query(warehouse, "describe gold.dim_product", None)[1][0][:2] == (
        "ndc",
        "VARCHAR",
    )
    assert ("gold", "dim_product") in {
        (r[1], r[2]) for r in run_query(warehouse, "show all tables", None)[1]
    }
    explain = run_query(warehouse, "explain select count(*) from lake.bronze", settings.lake_dir)
    assert explain[1]
    pivot = run_query(warehouse, "pivot gold.dim_product on name using count(*)", None)
    assert pivot == (["ndc", "Tablet"], [("00310-6205-30", 1)])


def test_lake_references_are_found_in_any_spelling():
    assert lake_tables_named("select * from lake.manifests") == ["manifests"]
    assert lake_tables_named('from "lake"."bronze" join LAKE . Quarantine using (batch_id)') == [
        "bronze",
        "quarantine",
    ]
    assert lake_tables_named("select * from lake.unknown") == ["manifests", "bronze", "quarantine"]
    assert lake_tables_named("select flake.x, gold.lake_x from gold.t flake") == []
