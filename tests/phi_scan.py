"""Find raw patient identifiers anywhere a person could read them.

The simulator's patient pool is the ground truth: every MRN, name, date of birth, phone, email
and street it produced is searched for in every readable string of the lake (bronze and
quarantine, minus the sealed bytes), the warehouse and the logs. Names are matched as whole
words, the rest as substrings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def phi_values(patients: Iterable[object]) -> tuple[set[str], set[str]]:
    """(substring values, whole-word names) of a simulator patient pool."""
    values: set[str] = set()
    names: set[str] = set()
    for p in patients:
        values.update({p.patient_id, p.date_of_birth, p.phone, p.email, p.address.street})
        names.update(w for n in (p.first_name, p.last_name) for w in re.findall(r"[^\W\d_]+", n))
    return values, names


def _strings(table: pa.Table) -> Iterator[str]:
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            yield from (v for v in column.to_pylist() if v)


def lake_strings(root: Path) -> Iterator[str]:
    for path in sorted(root.rglob("*.parquet")):
        yield from _strings(pq.read_table(path))


def warehouse_strings(path: Path) -> Iterator[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog')"
        ).fetchall()
        for schema, table in tables:
            yield from _strings(con.sql(f'select * from "{schema}"."{table}"').to_arrow_table())


def leaks(texts: Iterable[str], values: set[str], names: set[str]) -> list[str]:
    blob = "\n".join(texts)
    found = [v for v in values if v in blob]
    words = set(re.findall(r"[^\W\d_]+", blob))
    found += [n for n in names if n in words]
    return sorted(found)
