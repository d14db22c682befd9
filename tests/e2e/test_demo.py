"""`pharmaflow demo --json` end to end: conservation, green dbt tests, no PHI anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.people import patient_pool
from tests.conftest import env_with_keys
from tests.phi_scan import lake_strings, leaks, phi_values, warehouse_strings

DEMO_ARGS = ["--days", "5", "--scale", "0.15", "--seed", "3"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    data_dir = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pharmaflow",
            "--data-dir",
            str(data_dir),
            "demo",
            "--json",
            *DEMO_ARGS,
        ],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return data_dir, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_demo_summary_conserves_events_and_passes_every_dbt_test(demo):
    _, summary = demo
    events = summary["events"]
    assert events["input"] == events["landed"] + events["duplicates"] + events["quarantined"]
    assert events["duplicates"] > 0 and events["quarantined"] > 0
    assert sum(summary["quarantine_reasons"].values()) == events["quarantined"]
    warehouse = summary["warehouse"]
    assert warehouse["tests_failed"] == 0 and warehouse["tests_passed"] > 20
    tables = warehouse["tables"]
    for table in (
        "gold.fact_order_lifecycle",
        "gold.fact_batch_production",
        "gold.dim_patient",
        "gold.dim_product",
        "gold.dim_facility",
        "gold.dim_equipment",
        "gold.daily_order_summary",
    ):
        assert tables[table] > 0, table
    silver_total = sum(n for name, n in tables.items() if name.startswith("silver."))
    assert silver_total == events["landed"]
    assert set(summary["seconds"]) == {"simulate", "ingest", "realtime", "build"}
    # the speed layer counted the same events live: every landed one, on time or late
    live = summary["live"]
    assert live["counted"] == events["landed"] == live["on_time"] + live["late"]
    assert live["windows_closed"] > 0


def test_the_demo_leaves_an_owner_only_data_dir_without_its_raw_input(demo):
    """The warehouse (free-text comments), lake, vault, logs and dbt's files: nothing in the
    data dir is readable by other users of the host, and the simulated input (synthetic patient
    records in the clear) did not stay beside the lake. (Runs before the tests below add files
    of their own to the demo's data dir.)"""
    import stat

    data_dir, _ = demo
    assert (data_dir / "warehouse" / "pharmaflow.duckdb").is_file()
    opened = [
        f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p}"
        for p in [data_dir, *data_dir.rglob("*")]
        if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077
    ]
    assert opened == []
    lake = data_dir / "lake"
    build_log = data_dir / "warehouse" / "builds.jsonl"  # one line per build: counts, no events
    raw = [
        p
        for p in data_dir.rglob("*.jsonl")
        if lake not in p.parents and p.parent.name != "vault" and p != build_log
    ]
    assert raw == []


@pytest.mark.slow
def test_no_raw_phi_in_lake_warehouse_or_logs(demo):
    data_dir, _ = demo
    days, scale, seed = (DEMO_ARGS[i] for i in (1, 3, 5))
    pool = patient_pool(SimConfig(seed=int(seed), days=int(days), scale=float(scale)))
    values, names = phi_values(pool)
    assert leaks(lake_strings(data_dir / "lake"), values, names) == []
    assert (
        leaks(warehouse_strings(data_dir / "warehouse" / "pharmaflow.duckdb"), values, names) == []
    )
    logs = [p.read_text(errors="replace") for p in (data_dir).rglob("*.log")]
    assert logs and leaks(logs, values, names) == []


@pytest.mark.slow
def test_sql_reads_gold_as_table_and_json(demo):
    data_dir, summary = demo
    cmd = [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "sql"]
    query = "select count(*) as orders from gold.fact_order_lifecycle"
    out = subprocess.run(
        [*cmd, query, "--json"], capture_output=True, text=True, timeout=60, env=env_with_keys()
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert rows == [{"orders": summary["warehouse"]["tables"]["gold.fact_order_lifecycle"]}]
    table = subprocess.run(
        [*cmd, query], capture_output=True, text=True, timeout=60, env=env_with_keys()
    )
    assert "orders" in table.stdout and "1 rows" in table.stdout
    write = subprocess.run(
        [*cmd, "drop table gold.dim_product"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_with_keys(),
    )
    assert write.returncode == 1 and "read-only" in write.stderr.lower()


@pytest.mark.slow
def test_demo_refuses_a_data_dir_it_did_not_create(tmp_path):
    (tmp_path / "precious.parquet").write_text("someone's data")
    result = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(tmp_path), "demo", *DEMO_ARGS],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_with_keys(),
    )
    assert result.returncode == 1 and "did not create" in result.stderr
    assert (tmp_path / "precious.parquet").exists()


@pytest.mark.slow
def test_every_built_column_is_in_the_data_dictionary(demo):
    import duckdb

    from pharmaflow.config import Settings
    from pharmaflow.warehouse.dictionary import documented_columns, parse_manifest

    data_dir, _ = demo
    declared = documented_columns(parse_manifest(Settings(data_dir=data_dir / "docs")))
    with duckdb.connect(str(data_dir / "warehouse" / "pharmaflow.duckdb"), read_only=True) as con:
        built = con.execute(
            "select table_schema || '.' || table_name, list(column_name) from "
            "information_schema.columns where table_schema in ('silver', 'gold', 'reference') "
            "group by 1"
        ).fetchall()
    assert built
    for table, columns in built:
        assert set(columns) == declared[table], table
