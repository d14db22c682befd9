"""What the warehouse parity tests share: build a lake, read a warehouse's silver and gold
tables, and compare two warehouses value by value (tests/integration/warehouse/
test_postgres_parity.py, test_spark_parity.py).

The comparison is the same for every target: the tables and columns are discovered from the
DuckDB warehouse (so a new gold model is compared without editing a test), each table is
summarised by one portable select of aggregates (per numeric column count/sum/min/max, per
boolean the trues, per text column count and distinct count, per time column count/min/max,
per list the non-null count) run on both engines, and KPI tables are compared row for row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources


def parity_settings(data_dir: Path, **extra: Any) -> Settings:
    """Settings of one side of a parity test (small ingest batches: several per half)."""
    return Settings(data_dir=data_dir, batch_size=5_000, **extra)


def ingest(settings: Settings, path: Path) -> None:
    engine = IngestEngine(settings)
    engine.run(open_sources(str(path), engine.registry))


def split_in_halves(source: Path, root: Path) -> list[Path]:
    """The input's first and second half (in arrival order), as two files under `root`."""
    lines = source.read_bytes().splitlines(keepends=True)
    halves = [root / "first.jsonl", root / "second.jsonl"]
    halves[0].write_bytes(b"".join(lines[: len(lines) // 2]))
    halves[1].write_bytes(b"".join(lines[len(lines) // 2 :]))
    return halves


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # number, boolean, text, time, other


def kind(duckdb_type: str) -> str:
    t = duckdb_type.upper()
    if t.endswith("[]") or t.startswith(("STRUCT", "MAP", "LIST")):
        return "other"
    if t.startswith(("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")) or t.endswith(
        ("INT", "INTEGER")
    ):
        return "number"
    if t == "BOOLEAN":
        return "boolean"
    if t in ("VARCHAR", "TEXT", "STRING") or t.startswith("VARCHAR"):
        return "text"
    if t.startswith(("TIMESTAMP", "DATE", "TIME")):
        return "time"
    return "other"


def duckdb_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[Column]]:
    """Every silver and gold table and view of a DuckDB warehouse, with its columns in order."""
    rows = con.execute(
        "select c.table_schema, c.table_name, c.column_name, c.data_type "
        "from information_schema.columns c join information_schema.tables t "
        "  on t.table_schema = c.table_schema and t.table_name = c.table_name "
        "where c.table_schema in ('silver', 'gold') and t.table_type in ('BASE TABLE', 'VIEW') "
        "order by c.table_schema, c.table_name, c.ordinal_position"
    ).fetchall()
    tables: dict[str, list[Column]] = {}
    for schema, table, column, data_type in rows:
        tables.setdefault(f"{schema}.{table}", []).append(Column(column, kind(data_type)))
    return tables


def quoted(table: str) -> str:
    schema, name = table.split(".")
    return f'"{schema}"."{name}"'


def aggregates_sql(
    table: str, columns: list[Column], float_type: str = "double precision"
) -> tuple[str, list[str]]:
    """One select of the aggregates that summarise a table's values (ANSI SQL with double-
    quoted identifiers; `float_type` is the engine's name of an 8-byte float: Spark says
    `double`), and a label per aggregate."""
    exprs: list[str] = ["count(*)"]
    labels: list[str] = ["rows"]
    for col in columns:
        c = f'"{col.name}"'
        if col.kind == "number":
            as_double = f"cast({c} as {float_type})"
            exprs += [f"count({c})", f"sum({as_double})", f"min({as_double})", f"max({as_double})"]
            labels += [f"{col.name}:{a}" for a in ("count", "sum", "min", "max")]
        elif col.kind == "boolean":
            exprs += [f"count({c})", f"count(case when {c} then 1 end)"]
            labels += [f"{col.name}:count", f"{col.name}:true"]
        elif col.kind == "text":
            exprs += [f"count({c})", f"count(distinct {c})"]
            labels += [f"{col.name}:count", f"{col.name}:distinct"]
        elif col.kind == "time":
            exprs += [f"count({c})", f"min({c})", f"max({c})"]
            labels += [f"{col.name}:count", f"{col.name}:min", f"{col.name}:max"]
        else:
            exprs.append(f"count({c})")
            labels.append(f"{col.name}:count")
    return f"select {', '.join(exprs)} from {quoted(table)}", labels


def normalise(value: Any) -> Any:
    """Comparable across drivers: numbers as floats rounded to 4 decimals, lists as tuples,
    timestamps as naive UTC datetimes."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return round(float(value), 4)
    if isinstance(value, list | tuple):
        return tuple(normalise(v) for v in value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in row)


def same(a: Any, b: Any) -> bool:
    """Equal, floats to a relative 1e-9 or an absolute 1e-4 (values are rounded to 4 decimals
    by `normalise`; sums of doubles may differ in the last bits with the summation order)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-4)
    return a == b
