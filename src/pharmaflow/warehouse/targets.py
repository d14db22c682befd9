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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError

TARGETS = ("duckdb", "postgres", "bigquery")

# (sql) -> (column names, rows): one read-only query on the build's warehouse
Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]


def postgres_connection_params(dsn: str) -> dict[str, Any]:
    """The parts of a libpq DSN (URL or `key=value` form) that a dbt-postgres output needs.

    psycopg's parser is used so percent-encoded passwords, `?host=` sockets and key=value
    strings all work as they do for libpq. libpq's own defaults fill what the DSN leaves out
    (host localhost, port 5432, user = the OS user, database = the user)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError: not a DSN
        raise PharmaflowError(f"warehouse_dsn is not a valid PostgreSQL DSN: {exc}") from None
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
    """One dbt output per target, so switching `warehouse_target` needs no other change.

    dbt validates only the output of the selected target, so an unused output (e.g. BigQuery
    without a project) does no harm; the selected one is checked in `check_target`."""
    outputs: dict[str, dict[str, Any]] = {
        "duckdb": {
            "type": "duckdb",
            "path": str(settings.warehouse_path),
            "threads": settings.dbt_threads,
        },
        "postgres": {
            "type": "postgres",
            **postgres_connection_params(settings.warehouse_dsn),
            # models and seeds use their own schemas (silver, gold, reference, bronze);
            # this is only where a node without one would land
            "schema": "public",
            "threads": settings.dbt_threads,
        },
    }
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
    outputs["bigquery"] = bigquery
    return outputs


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
