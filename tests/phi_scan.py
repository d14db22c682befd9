"""Find raw patient identifiers anywhere a person could read them.

The simulator's patient pool is the ground truth: every MRN, name, date of birth, phone, email
and street it produced is searched for in every readable string of the lake (bronze and
quarantine, minus the sealed bytes), the warehouse and the logs. Names are matched as whole
words, the rest as substrings. The search runs as one RE2 alternation per column (Arrow), so a
whole lake is scanned in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def phi_values(patients: Iterable[object]) -> tuple[set[str], set[str]]:
    """(substring values, whole-word names) of a simulator patient pool."""
    values: set[str] = set()
    names: set[str] = set()
    for p in patients:
        values.update({p.patient_id, p.date_of_birth, p.phone, p.email, p.address.street})
        names.update(w for n in (p.first_name, p.last_name) for w in re.findall(r"[^\W\d_]+", n))
    return values, names


def _strings(table: pa.Table) -> Iterator[pa.Array]:
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            yield column.combine_chunks()


def lake_strings(root: Path) -> Iterator[pa.Array]:
    for path in sorted(root.rglob("*.parquet")):
        yield from _strings(pq.read_table(path))


def warehouse_strings(path: Path) -> Iterator[pa.Array]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog')"
        ).fetchall()
        for schema, table in tables:
            yield from _strings(con.sql(f'select * from "{schema}"."{table}"').to_arrow_table())


def text_strings(texts: Iterable[str]) -> Iterator[pa.Array]:
    for text in texts:
        yield pa.array(text.splitlines(), pa.string())


def leaks(columns: Iterable[pa.Array | str], values: set[str], names: set[str]) -> list[str]:
    """Every PHI value or name found in the columns (plain strings are scanned as text)."""
    value_re = "|".join(re.escape(v) for v in sorted(values))
    name_re = r"(?:^|[^\pL])(" + "|".join(re.escape(n) for n in sorted(names)) + r")(?:$|[^\pL])"
    arrays = [
        a.cast(pa.large_string())
        for c in columns
        for a in (text_strings([c]) if isinstance(c, str) else [c])
    ]
    if not arrays:
        return []
    everything = pa.concat_arrays(arrays)  # one regex compile per pattern, not per column
    found: set[str] = set()
    for pattern in (value_re, name_re):
        hit = pc.match_substring_regex(everything, pattern)
        if pc.any(hit).as_py():
            texts = everything.filter(hit).to_pylist()
            found.update(v for v in values if any(v in t for t in texts))
            words = {w for t in texts for w in re.findall(r"[^\W\d_]+", t)}
            found.update(names & words)
    return sorted(found)


def record_phi_values(patients: Iterable[dict]) -> tuple[set[str], set[str]]:
    """(substring values, whole-word names) of hand-built patient records (`tests.factories`)."""
    values: set[str] = set()
    names: set[str] = set()
    for p in patients:
        values.update({p["patient_id"], p["date_of_birth"], p["phone"], p["email"]})
        values.add(p["address"]["street"])
        names.update(
            w for n in (p["first_name"], p["last_name"]) for w in re.findall(r"[^\W\d_]+", n)
        )
    return values, names
