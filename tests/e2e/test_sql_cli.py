"""`pharmaflow sql` in an 80-column terminal: wide results stay legible, nothing is cut."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import env_with_keys

WIDE = (
    "select scope, site_id, batches, finished_batches, releasable_batches, rejected_batches, "
    "review_batches, batch_pass_rate from gold.kpi_quality order by scope, site_id nulls first"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sql-cli")
    (root / "warehouse").mkdir()
    with duckdb.connect(str(root / "warehouse" / "pharmaflow.duckdb")) as con:
        con.execute("create schema gold")
        con.execute(
            "create table gold.kpi_quality as select * from (values "
            "('ALL', null, 91, 81, 49, 26, 13, 0.6049::decimal(6,4)), "
            "('SITE', 'PL-01', 28, 22, 13, 11, 4, 0.5909::decimal(6,4))) "
            "t(scope, site_id, batches, finished_batches, releasable_batches, "
            "rejected_batches, review_batches, batch_pass_rate)"
        )
    return root


def sql(data_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "sql", *args],
        capture_output=True,
        text=True,
        env=env_with_keys(COLUMNS="80"),
        timeout=60,
    )


def test_a_wide_result_prints_one_record_per_block(data_dir):
    result = sql(data_dir, WIDE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert [line for line in lines if line.startswith("-[ RECORD")] == [
        "-[ RECORD 1 ]------+-------",
        "-[ RECORD 2 ]------+-------",
    ]
    assert "finished_batches   | 81" in lines and "batch_pass_rate    | 0.5909" in lines
    assert lines[-1] == "2 rows"


def test_table_and_vertical_force_a_layout(data_dir):
    table = sql(data_dir, WIDE, "--table").stdout.splitlines()
    assert table[0].split("|")[3].strip() == "finished_batches"  # whole, not "finish…"
    assert table[2].split("|")[0].strip() == "ALL" and len(table) == 5
    vertical = sql(data_dir, "select 1 as one", "--vertical").stdout.splitlines()
    assert vertical == ["-[ RECORD 1 ]", "one | 1", "1 rows"]
    narrow = sql(data_dir, "select 1 as one").stdout.splitlines()
    assert narrow == [" one", "-----", "   1", "1 rows"]
    both = sql(data_dir, "select 1", "--table", "--vertical")
    assert both.returncode != 0 and "mutually exclusive" in both.stderr


def test_json_is_unchanged_by_the_layout(data_dir):
    result = sql(data_dir, WIDE, "--json")
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["site_id"] for r in rows] == [None, "PL-01"]
    assert rows[0]["finished_batches"] == 81
