"""Commands start fast: `--help` loads typer and Rich, not the data stack.

Every command module is registered at startup, so a heavy import at the top of any of them
(pyarrow, duckdb, dbt, Kafka, PostgreSQL, numpy, Avro) would cost every command, `--help`
included, most of a second. `-X importtime` lists every module the interpreter loaded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import env_with_keys

HEAVY = ("pyarrow", "duckdb", "dbt", "confluent_kafka", "psycopg", "numpy", "fastavro")
COMMANDS = ("simulate", "ingest", "build", "sql", "demo", "docs", "broker", "trace")


def run_importtime(*args: str, cwd) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pharmaflow", *args],
        capture_output=True,
        text=True,
        env=env_with_keys(COLUMNS="100"),
        cwd=cwd,
        timeout=60,
    )
    modules = {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return result, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def test_help_lists_every_command_and_loads_no_heavy_module(tmp_path):
    result, modules = run_importtime("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout
    assert all(command in result.stdout for command in COMMANDS)
    assert "pharmaflow.cli.main" in modules and "typer" in modules  # the list is real
    assert heavy(modules) == []
    assert "pydantic" not in modules  # settings are read only when a command runs


@pytest.mark.parametrize(
    "args",
    [[c, "--help"] for c in COMMANDS if c not in ("broker", "trace")]
    + [
        ["broker", "start", "--help"],
        ["trace", "lot", "--help"],
    ],
)
def test_command_help_loads_no_heavy_module(tmp_path, args):
    result, modules = run_importtime("--data-dir", str(tmp_path), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout and "--help" in result.stdout
    assert heavy(modules) == []


def test_a_command_loads_what_it_needs(tmp_path):
    """The lazy imports still happen: a query opens DuckDB (and its error is one line)."""
    result, modules = run_importtime("--data-dir", str(tmp_path), "sql", "select 1", cwd=tmp_path)
    assert result.returncode == 1 and "no warehouse" in result.stderr
    assert "duckdb" not in heavy(modules)  # refused before the connection was needed
    result, modules = run_importtime(
        "--data-dir", str(tmp_path), "sql", "select count(*) from lake.manifests", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert " 0" in result.stdout
    assert {"duckdb", "pyarrow"} <= set(heavy(modules))
