"""The warehouse targets dbt can build on: the dbt profile outputs and a connection per target.

The dbt project is portable (dispatch macros, see the project's README): the same models build
on the embedded DuckDB file, on PostgreSQL, on BigQuery and on Spark. What differs per target
lives here: the profile output dbt needs (written by `runner.prepare_project` into the data
dir) and the few direct reads pharmaflow itself makes after a build (rows per table, the
set-aside report and the events behind a failing test), so the runner never has to know which
database it talks to.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import duckdb

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.urls import redact, url_password

TARGETS = ("duckdb", "postgres", "bigquery", "spark")
# dbt-spark's default port per remote method (a Spark Thrift Server; Databricks over HTTPS)
SPARK_PORTS = {"thrift": 10000, "http": 443, "odbc": 443}

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


def target_secrets(settings: Settings) -> list[str | None]:
    """The secrets the selected target's profile holds, to mask in anything pharmaflow prints
    or logs of a build (dbt's error lines may quote a connection string)."""
    if settings.warehouse_target == "postgres":
        return _secrets(settings.warehouse_dsn)
    if settings.warehouse_target == "spark" and settings.spark_token is not None:
        return [settings.spark_token.get_secret_value()]
    return []


def redact_secrets(settings: Settings, text: str) -> str:
    """`text` with the target's secrets masked (`target_secrets`)."""
    return redact(text, target_secrets(settings))


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
    if target == "spark":
        return spark_output(settings)
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


def spark_is_local(settings: Settings) -> bool:
    """The `session` method with a `local[...]` master: Spark runs in this process alone, so
    pharmaflow chooses where its tables and metastore live (under the data dir)."""
    return settings.spark_method == "session" and settings.spark_master.startswith("local")


def spark_session_conf(settings: Settings) -> dict[str, str]:
    """The Spark configuration of the `session` method: dbt-spark passes it to
    `SparkSession.builder` (its `server_side_parameters`), and `spark_session` below passes
    the same, so both get the one SparkSession of the process.

    Every timestamp of the warehouse is UTC without a zone (as on DuckDB and PostgreSQL), while
    Spark's TIMESTAMP is an instant shown in the session time zone: the session zone is UTC.
    In local mode the tables, the Hive metastore (Derby) and derby.log go under
    `settings.spark_dir`, never into the working directory (Spark's and Derby's defaults),
    and Spark binds the loopback address only; on a cluster (`yarn`, `spark://`) the cluster's
    own configuration (hive-site.xml, its warehouse) applies."""
    conf = {
        "spark.master": settings.spark_master,
        "spark.sql.session.timeZone": "UTC",
        # `create table ... as` without `using` makes a Parquet datasource table (Spark 4's
        # default; Spark 3 would make a Hive text table)
        "spark.sql.legacy.createHiveTableByDefault": "false",
    }
    if spark_is_local(settings):
        home = settings.spark_dir
        conf |= {
            "spark.sql.warehouse.dir": str(home / "tables"),
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
            ),
            # derby.log lands in derby.system.home; the JVM's own zone is UTC too
            "spark.driver.extraJavaOptions": f'-Dderby.system.home="{home}" -Duser.timezone=UTC',
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            # small local data: 200 shuffle partitions (the default) cost more than they split
            "spark.sql.shuffle.partitions": "4",
            "spark.log.level": "ERROR",
        }
    return conf


def spark_output(settings: Settings) -> dict[str, Any]:
    """The dbt-spark output of `settings.spark_method` (validated in `check_target`).

    Models use their own schemas (silver, gold, reference, bronze: Spark databases); `default`
    is only where a node without one would land. The Databricks token goes to the profile (a
    0600 file, like the PostgreSQL password) and nowhere else."""
    method = settings.spark_method
    common: dict[str, Any] = {
        "type": "spark",
        "method": method,
        "schema": "default",
        "threads": settings.dbt_threads,
    }
    if method == "session":
        # dbt-spark wants a host even in-process; it is only its connection label there
        return {
            **common,
            "host": "localhost",
            "server_side_parameters": spark_session_conf(settings),
        }
    remote: dict[str, Any] = {
        **common,
        "host": settings.spark_host,
        "port": settings.spark_port or SPARK_PORTS[method],
        "server_side_parameters": {"spark.sql.session.timeZone": "UTC"},
    }
    if method == "thrift":
        return {**remote, "user": settings.spark_user or getpass.getuser()}
    token = settings.spark_token.get_secret_value() if settings.spark_token else None
    remote |= {"token": token, "organization": settings.spark_organization}
    if method == "http":
        return {**remote, "cluster": settings.spark_cluster}
    where = {"endpoint": settings.spark_endpoint} if settings.spark_endpoint else {}
    return {
        **remote,
        "driver": settings.spark_odbc_driver,
        **(where or {"cluster": settings.spark_cluster}),
    }


def _java_found() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (java_home and Path(java_home, "bin", "java").exists()))


def _spark_missing(settings: Settings) -> str | None:
    """Why the Spark target cannot work as configured (one sentence), or None."""
    method = settings.spark_method
    if method == "session":
        if find_spec("pyspark") is None or find_spec("dbt.adapters.spark") is None:
            return (
                "warehouse_target is spark but PySpark / dbt-spark are not installed "
                "(pip install 'pharmaflow[spark]')"
            )
        if not _java_found():
            return (
                "warehouse_target is spark (method session) but no Java runtime was found: "
                "PySpark needs Java 17 (install openjdk-17-jre-headless or set JAVA_HOME)"
            )
        return _spark_session_clash(settings)
    needs = {
        "thrift": ["spark_host"],
        "http": ["spark_host", "spark_token", "spark_cluster"],
        "odbc": ["spark_host", "spark_token", "spark_odbc_driver"],
    }[method]
    missing = [f"PHARMAFLOW_{name.upper()}" for name in needs if not getattr(settings, name)]
    if method == "odbc" and not (settings.spark_cluster or settings.spark_endpoint):
        missing.append("PHARMAFLOW_SPARK_CLUSTER (or PHARMAFLOW_SPARK_ENDPOINT)")
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return (
            f"warehouse_target is spark (method {method}) but {', '.join(missing)} {verb} not set"
        )
    return None


def _spark_session_clash(settings: Settings) -> str | None:
    """A JVM started by an earlier Spark build of this process keeps its warehouse and
    metastore (static configuration): a build of another data dir would write there."""
    from pyspark import SparkContext

    running = SparkContext._active_spark_context  # the process's one SparkContext, if any
    if running is None or not spark_is_local(settings):
        return None
    theirs = running.getConf().get("spark.sql.warehouse.dir", "")
    ours = spark_session_conf(settings)["spark.sql.warehouse.dir"]
    if theirs and theirs.removeprefix("file:") != ours:
        return (
            f"this process already runs a local Spark session on {theirs}: one process holds one "
            f"local Spark warehouse (its metastore is fixed when the JVM starts), so build "
            f"{settings.root} in another process"
        )
    return None


def check_target(settings: Settings) -> None:
    """Fail early, with a sentence, on a target that cannot work (before dbt's own errors)."""
    if settings.warehouse_target == "bigquery" and not settings.bigquery_project:
        raise PharmaflowError(
            "warehouse_target is bigquery but PHARMAFLOW_BIGQUERY_PROJECT is not set"
        )
    if settings.warehouse_target == "spark":
        problem = _spark_missing(settings)
        if problem:
            raise PharmaflowError(problem)


def table_counts(
    settings: Settings, schemas: tuple[str, ...] = ("silver", "gold")
) -> dict[str, int]:
    """Rows per base table in the given schemas of the configured warehouse.

    BigQuery returns {}: counting there costs a query job per table, and pharmaflow only
    reports these numbers; so does Spark on a remote cluster (a job per table, over a
    connection only dbt holds), while an in-process Spark session is counted directly."""
    if settings.warehouse_target == "postgres":
        return postgres_table_counts(settings.warehouse_dsn, schemas)
    if settings.warehouse_target == "spark":
        return spark_table_counts(settings, schemas) if settings.spark_method == "session" else {}
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


def prepare_spark_process(settings: Settings) -> None:
    """Before a local JVM starts: Spark binds the address SPARK_LOCAL_IP names (else that of
    the host name, e.g. eth0, reachable from the network); loopback is enough in-process."""
    if spark_is_local(settings):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def spark_session(settings: Settings) -> Any:
    """The process's SparkSession (`session` method): the one dbt-spark started during the
    build (the same JVM; `getOrCreate` returns it), or a new one with the same configuration
    (a read after a build in another process: same warehouse, same metastore)."""
    prepare_spark_process(settings)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in spark_session_conf(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def spark_table_counts(
    settings: Settings, schemas: tuple[str, ...] = ("silver", "gold")
) -> dict[str, int]:
    """Rows per table (not view) in the given schemas (Spark databases) of the session's
    warehouse; a schema not created yet has none."""
    spark = spark_session(settings)
    counts: dict[str, int] = {}
    for schema in schemas:
        if not spark.catalog.databaseExists(schema):
            continue
        for table in sorted(spark.catalog.listTables(schema), key=lambda t: t.name):
            if table.tableType in ("MANAGED", "EXTERNAL"):
                counts[f"{schema}.{table.name}"] = spark.table(f"`{schema}`.`{table.name}`").count()
    return counts


_INFORMATION_SCHEMA_TABLES = re.compile(r"\binformation_schema\s*\.\s*tables\b", re.IGNORECASE)


def spark_query(settings: Settings) -> Query:
    """A query function on the session's warehouse for pharmaflow's own portable SQL (the
    set-aside report, the events behind a failing test): run in a separate session of the same
    Spark (shared catalog, own SQL configuration) where double quotes quote identifiers, as
    in ANSI SQL; and since Spark has no information_schema, `information_schema.tables`
    (table_schema, table_name, table_type) is a temporary view of the catalog's tables."""

    def run_spark(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        spark = spark_session(settings).newSession()
        spark.conf.set("spark.sql.ansi.enabled", "true")
        spark.conf.set("spark.sql.ansi.doubleQuotedIdentifiers", "true")
        if _INFORMATION_SCHEMA_TABLES.search(sql):
            rows = [
                (db.name, t.name, "VIEW" if t.tableType == "VIEW" else "BASE TABLE")
                for db in spark.catalog.listDatabases()
                for t in spark.catalog.listTables(db.name)
                if not t.isTemporary
            ]
            schema = "table_schema string, table_name string, table_type string"
            spark.createDataFrame(rows, schema).createOrReplaceTempView(
                "pf_information_schema_tables"
            )
            sql = _INFORMATION_SCHEMA_TABLES.sub("pf_information_schema_tables", sql)
        frame = spark.sql(sql)
        names = list(frame.columns)
        return names, [tuple(row) for row in _utc_wall_clock(frame).collect()]

    return run_spark


def _utc_wall_clock(frame: Any) -> Any:
    """The frame with its TIMESTAMP columns as TIMESTAMP_NTZ: PySpark turns a TIMESTAMP (an
    instant) into a datetime of the Python process's local zone, a TIMESTAMP_NTZ into its wall
    clock, which in the UTC session is UTC (naive, as DuckDB's and PostgreSQL's drivers give)."""
    from pyspark.sql.functions import col
    from pyspark.sql.types import TimestampType

    fields = frame.schema.fields
    if not any(isinstance(f.dataType, TimestampType) for f in fields):
        return frame
    positional = frame.toDF(*(f"c{i}" for i in range(len(fields))))  # names may repeat
    return positional.select(
        *(
            col(f"c{i}").cast("timestamp_ntz")
            if isinstance(f.dataType, TimestampType)
            else col(f"c{i}")
            for i, f in enumerate(fields)
        )
    )


def warehouse_query(settings: Settings) -> Query | None:
    """A query function on the configured warehouse; None where pharmaflow does not read it
    (BigQuery: a query job per question; Spark on a remote cluster, whose connection only dbt
    holds)."""
    if settings.warehouse_target == "spark":
        return spark_query(settings) if settings.spark_method == "session" else None
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
