"""`pharmaflow sql` given what an operator may mistype: one line on stderr, a non-zero exit,
never a traceback; and a query beside a running build is told why it cannot run.

The warehouse is a small DuckDB file made here (the CLI only needs it to exist and open);
the real build-versus-reader cases are in tests/integration/warehouse/test_build_faults.py.
"""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from tests.conftest import env_with_keys


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sql-faults")
    (root / "warehouse").mkdir()
    with duckdb.connect(str(root / "warehouse" / "pharmaflow.duckdb")) as con:
        con.execute("create schema gold")
        con.execute("create table gold.dim_product as select '00310-6205-30' as ndc")
    return root


def sql(data_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "sql", *args],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=60,
    )


@pytest.mark.parametrize(
    "query, says",
    [
        ("", "no SQL statement given"),
        ("  \n\t ", "no SQL statement given"),
        ("-- only a comment", "no SQL statement given"),
        ("/* a block comment */ ;", "no SQL statement given"),
        ("selec 1", "syntax error"),
        ("select * from gold.missing_table", "missing_table does not exist"),
        ("select 1; drop table gold.dim_product", "read-only; a DROP"),
    ],
)
def test_an_odd_query_is_one_line_and_a_failure(data_dir, query, says):
    result = sql(data_dir, query)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pharmaflow: error: query failed:"), lines
    assert says in lines[0]
    assert result.stdout == ""


def test_a_query_that_starts_with_a_comment_still_runs(data_dir):
    result = sql(data_dir, "-- the products\nselect count(*) as n from gold.dim_product")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1 rows"


def test_a_query_beside_a_writer_says_who_holds_the_warehouse(data_dir):
    """A build holds DuckDB's write lock; a reader is told so in one line (not DuckDB's
    paragraph suggesting `-readonly`)."""
    code = (
        "import duckdb, sys\n"
        f"con = duckdb.connect({str(data_dir / 'warehouse' / 'pharmaflow.duckdb')!r})\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        result = sql(data_dir, "select 1")
    finally:
        writer.kill()
        writer.wait(timeout=10)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"being written by PID {writer.pid}" in lines[0] and "run this again" in lines[0]
