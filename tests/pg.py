"""The real PostgreSQL the survey tests run against, and a scratch schema per test.

Each test gets its own schema (`survey_t_<random>`) in database `test`, dropped afterwards, so
tests never see each other's rows, not even when two test runs share the server.
`PHARMAFLOW_TEST_PG_DSN` points the tests at another server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

PG_DSN = os.environ.get("PHARMAFLOW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def execute(statement: str, params: list[object] | None = None) -> list[tuple]:
    """Run one statement in its own autocommitted connection; rows if it returns any."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def source_url(schema: str, table: str = "survey_responses") -> str:
    """The ingest `--source` URL of a survey table (the DSN plus `table=`)."""
    sep = "&" if "?" in PG_DSN else "?"
    return f"{PG_DSN}{sep}table={schema}.{table}"


@contextmanager
def scratch_schema() -> Iterator[str]:
    """A fresh schema name (nothing created yet); dropped with everything in it afterwards.
    Test modules wrap it in a fixture."""
    try:
        execute("select 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable ({exc.diag.message_primary or exc}); start it or "
            "set PHARMAFLOW_TEST_PG_DSN"
        )
    name = f"survey_t_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        execute(f'drop schema if exists "{name}" cascade')
