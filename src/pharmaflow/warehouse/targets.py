"""The warehouse targets dbt can build on: the dbt profile outputs and a connection per target.

The dbt project is portable (dispatch macros, see the project's README): the same models build
on the embedded DuckDB file, on PostgreSQL and on BigQuery. What differs per target lives here:
the profile output dbt needs (written by `runner.prepare_project` into the data dir) and the
few direct reads pharmaflow itself makes after a build (rows per table, the set-aside report and
the events behind a failing test), so the runner never has to know which database it talks
to.
"""

from __future__ import annotations

import getpass
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.urls import redact, url_password

TARGETS = ("duckdb", "postgres", "bigquery")

# (sql) -> (column names, rows): one read-only query on the build's warehouse
Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]


def _secrets(dsn: str) -> list[str | None]:
    """The password of a URL-form DSN, or of a `password=` pair of a key=value one."""
    pair = re.search(r"(?:^|\s)password\s*=\s*'?([^'\s]+)", dsn)
    return [url_password(dsn) if "://" in dsn else None, pair[1] if pair else None]


def postgres_connection_params(dsn: str) -> dict[str, Any]:
    """The parts of a libpq DSN (URL or `key=value` form) that a dbt-postgres output needs.

    psycopg's parser is used so percent-encoded passwords, `?host=` sockets and key=value
    strings all work as they do for libpq. libpq's own defaults fill what the DSN leaves out
    (host localhost, port 5432, user = the OS user, database = the user)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError: not a DSN
        # psycopg may quote the DSN back, and a DSN may hold the password
        said = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "", _secrets(dsn))
        raise PharmaflowError(f"warehouse_dsn is not a valid PostgreSQL DSN: {said}") from None
    user = str(parts.get("user") or getpass.getuser())
    port = str(parts.get("port") or 5432)
    if not port.isdigit():
        raise PharmaflowError(f"warehouse_dsn has a port that is not a number: {port!r}")
    params: dict[str, Any] = {
        "host": str(parts.get("host") or "localhost"),
        "port": int(port),
        "user": user,
        "password": str(parts.get("password") or ""),
        "dbname": str(parts.get("dbname") or user),
    }
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout"):
        if parts.get(key):
            params[key] = int(parts[key]) if key == "connect_timeout" else str(parts[key])
    return params


def profile_outputs(settings: Settings) -> dict[str, dict[str, Any]]:
    """The dbt outputs written to the profile: the selected target's only, so a secret reaches
    the file only when the build needs it (the PostgreSQL password from warehouse_dsn for the
    postgres target, the BigQuery keyfile path for bigquery; nothing for DuckDB). The profile
    is rewritten on every build, so switching `warehouse_target` needs no other change."""
    target = settings.warehouse_target
    return {target: target_output(settings, target)}


def target_output(settings: Settings, target: str) -> dict[str, Any]:
    """The dbt profile output for `target` (dbt validates only the selected one; its
    problems are checked in `check_target`)."""
    if target == "duckdb":
        return {
            "type": "duckdb",
            "path": str(settings.warehouse_path),
            "threads": settings.dbt_threads,
        }
    if target == "postgres":
        return {
            "type": "postgres",
            **postgres_connection_params(settings.warehouse_dsn),
            # models and seeds use their own schemas (silver, gold, reference, bronze);
            # this is only where a node without one would land
            "schema": "public",
            "threads": settings.dbt_threads,
        }
    if target != "bigquery":
        raise PharmaflowError(f"unknown warehouse_target {target!r}: one of {', '.join(TARGETS)}")
    bigquery: dict[str, Any] = {
        "type": "bigquery",
        "method": "service-account" if settings.bigquery_keyfile else "oauth",
        "project": settings.bigquery_project,
        # the dataset prefix: generate_schema_name makes <dataset>_silver, <dataset>_gold, ...
        "dataset": settings.bigquery_dataset,
        "location": settings.bigquery_location,
        "threads": settings.dbt_threads,
    }
    if settings.bigquery_keyfile is not None:
        bigquery["keyfile"] = str(settings.bigquery_keyfile.expanduser().resolve())
    return bigquery


def check_target(settings: Settings) -> None:
    """Fail early, with a sentence, on a target that cannot work (before dbt's own errors)."""
    if settings.warehouse_target == "bigquery" and not settings.bigquery_project:
        raise PharmaflowError(
            "warehouse_target is bigquery but PHARMAFLOW_BIGQUERY_PROJECT is not set"
        )


def table_counts(
    settings: Settings, schemas: tuple[str, ...] = ("silver", "gold")
) -> dict[str, int]:
    """Rows per base table in the given schemas of the configured warehouse.

    BigQuery returns {}: counting there costs a query job per table, and pharmaflow only
    reports these numbers."""
    if settings.warehouse_target == "postgres":
        return postgres_table_counts(settings.warehouse_dsn, schemas)
    if settings.warehouse_target == "bigquery":
        return {}
    return duckdb_table_counts(settings.warehouse_path, schemas)


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def lock_conflict(exc: BaseException) -> str | None:
    """For DuckDB's "Could not set lock" error: who holds the warehouse ("PID 123"), else
    None (another error)."""
    text = str(exc)
    if "Could not set lock" not in text and "Conflicting lock" not in text:
        return None
    match = _LOCK_HOLDER.search(text)
    return f"PID {match[2]}" if match else "another process"


@contextmanager
def warehouse_lock(
    settings: Settings, wait: float, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """DuckDB: hold the warehouse's write lock for the block, waiting up to `wait` seconds for
    the processes reading it (DuckDB allows one writer or many readers, never both), then
    refusing in one line. The connection opened here has the default configuration, as dbt's
    does, so dbt in this process shares its instance (and its lock) instead of colliding.
    Other targets have their own concurrency: nothing to do."""
    if settings.warehouse_target != "duckdb":
        yield
        return
    path = settings.warehouse_path
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait, 0.0)
    told = False
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.Error as exc:
            holder = lock_conflict(exc)
            if holder is None:
                first = str(exc).strip().splitlines()[0]
                advice = (
                    " (move it aside and build again: the warehouse is rebuilt from the lake)"
                    if "not a valid DuckDB database" in first
                    else ""
                )
                message = f"cannot open the warehouse {path}: {first}{advice}"
                raise PharmaflowError(message) from None
            if time.monotonic() >= deadline:
                raise PharmaflowError(
                    f"the warehouse {path} is in use by {holder} (a running `pharmaflow sql`, "
                    f"`trace` or build){f' after waiting {wait:g} s' if wait > 0 else ''}: "
                    f"let it finish or stop it, then build again (nothing was changed)"
                ) from None
            if not told and on_wait is not None:
                on_wait(
                    f"waiting up to {wait:g} s for {holder} to stop reading the warehouse {path} "
                    f"(DuckDB allows one writer or many readers)"
                )
            told = True
            time.sleep(min(0.25, max(deadline - time.monotonic(), 0.01)))
    try:
        yield
    finally:
        con.close()


def checkpoint(settings: Settings) -> None:
    """DuckDB: write the log into the file after a build, so the file alone is the whole
    warehouse (copies, snapshots for serving, readers in other processes). Default
    configuration on purpose, as in duckdb_table_counts. Other targets: nothing to do."""
    if settings.warehouse_target != "duckdb" or not settings.warehouse_path.exists():
        return
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("checkpoint")


def duckdb_table_counts(
    path: Path, schemas: tuple[str, ...] = ("silver", "gold")
) -> dict[str, int]:
    """Rows per table in the given schemas of a DuckDB warehouse file.

    Opened with the default (read-write) configuration on purpose: dbt ran in this process and
    its DuckDB instance may still be open, and DuckDB only shares an instance with connections
    of the same configuration. Nothing is written."""
    if not path.exists():
        return {}
    with duckdb.connect(str(path)) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in (select unnest($1::varchar[])) and table_type = 'BASE TABLE' "
            "order by 1, 2",
            [list(schemas)],
        ).fetchall()
        return {
            f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
            for s, t in names
        }


def postgres_table_counts(
    dsn: str, schemas: tuple[str, ...] = ("silver", "gold")
) -> dict[str, int]:
    """Rows per base table in the given schemas of a PostgreSQL warehouse (exact counts, not
    the planner's estimates: the numbers are compared with DuckDB's)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
            [list(schemas)],
        ).fetchall()
        counts: dict[str, int] = {}
        for schema, table in names:
            query = sql.SQL("select count(*) from {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            row = con.execute(query).fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
        return counts


def warehouse_query(settings: Settings) -> Query | None:
    """A query function on the configured warehouse; None where pharmaflow does not read it
    (BigQuery: a query job per question)."""
    if settings.warehouse_target == "duckdb":
        path = settings.warehouse_path

        def run_duckdb(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            # default configuration: dbt ran in this process and its DuckDB instance may still
            # be open; DuckDB shares an instance only with connections configured the same
            with duckdb.connect(str(path)) as con:
                cursor = con.execute(sql)
                return [d[0] for d in cursor.description], cursor.fetchall()

        return run_duckdb
    if settings.warehouse_target == "postgres":
        dsn = settings.warehouse_dsn

        def run_postgres(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as con:
                cursor = con.execute(sql)  # type: ignore[call-overload]
                return [d.name for d in cursor.description or []], cursor.fetchall()

        return run_postgres
    return None
