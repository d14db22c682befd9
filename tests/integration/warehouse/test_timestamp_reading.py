"""Timestamps and decimals: ingest, DuckDB and PostgreSQL read the same text as the same value.

The warehouse's casts (macros/json_payload.sql) are rendered from the macro files and run on
the real engines, against what the validator accepted for the same strings.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import orjson
import psycopg
import pytest

from pharmaflow.contracts.registry import default_registry
from pharmaflow.ingest.decode import decode_json
from pharmaflow.ingest.validate import validate
from tests.factories import event
from tests.pg import execute
from tests.warehouse_read import duckdb_timestamp_sql, postgres_timestamp_sql

ACCEPTED = [
    "2026-11-02T10:00:00Z",
    "2026-11-02T10:00:00.1Z",
    "2026-11-02T10:00:00.123456789Z",
    "2026-11-02T23:59:59.9999999Z",  # rounding would reach the next day
    "2026-11-02T10:00:00.999999999+05:45",
    "2026-11-02 10:00:00.5-03:30",
    "2026-11-02T10:00:00+0545",
    "2026-11-02T10:00:00-12",
    "2026-11-02T10:00:00.000001+14:00",
]


def _validated(texts: list[str]) -> list:
    records = [orjson.dumps(event(event_time=t)) for t in texts]
    v = validate(decode_json(records), default_registry())
    assert v.rejects.ok.all(), v.rejects.code
    return [t.replace(tzinfo=None) for t in v.envelope["event_time"].to_pylist()]


def test_duckdb_reads_what_ingest_accepted():
    expected = _validated(ACCEPTED)
    sql = f"select {duckdb_timestamp_sql('x')} from (select unnest(?::varchar[]) as x)"
    with duckdb.connect() as con:
        got = [row[0] for row in con.execute(sql, [ACCEPTED]).fetchall()]
    assert got == expected


def test_postgres_reads_what_ingest_accepted():
    expected = _validated(ACCEPTED)
    try:
        rows = execute(
            f"select {postgres_timestamp_sql('x')} from unnest(%s::text[]) with ordinality "
            "as t(x, n) order by n",
            [ACCEPTED],
        )
    except psycopg.OperationalError as exc:  # no server here
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    assert [row[0] for row in rows] == expected


@pytest.mark.parametrize("text", ["12.50", "-3", "0.01", "007.10", "9999999999.99"])
def test_both_warehouses_read_a_decimal_string_as_written(text):
    with duckdb.connect() as con:
        (duck,) = con.execute(
            'select json_transform(?, \'{"x": "DECIMAL(12,2)"}\').x', [f'{{"x": "{text}"}}']
        ).fetchone()
    try:
        ((pg,),) = execute(
            "select cast(cast(%s as jsonb) #>> '{x}' as decimal(12,2))", [f'{{"x": "{text}"}}']
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    assert duck == pg == Decimal(text).quantize(Decimal("0.01"))
