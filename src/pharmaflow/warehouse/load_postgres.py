"""Load the committed bronze batches of the lake into PostgreSQL, for the `postgres` target.

On DuckDB, bronze is a set of views over the Parquet lake. PostgreSQL cannot read Parquet, so
bronze there is one table per event type, `bronze.<event_type with . -> _>`, with the columns of
the dbt macro `pf_bronze_columns()` (macros/bronze.sql) — the same rows the DuckDB views show:
the parts of committed batches only (a batch is committed once `_manifests/<batch_id>.json`
exists, docs/lake-layout.md), and `payload` extracted from `event_json` the same way.

Incremental and exactly once: `bronze._loaded_batches` records every batch loaded. A batch's
rows (all its event types) and its marker are written in one transaction, so a crash leaves
either all of the batch or none of it, and the next load resumes from the first batch not
marked. Loads are serialised with an advisory lock, so two builds cannot double a batch.

Fast: DuckDB (in memory) reads each Parquet part and extracts the payload, Arrow writes CSV,
and psycopg streams it to PostgreSQL with COPY; no row goes through Python on its own.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import Connection, sql

from pharmaflow.config import Settings
from pharmaflow.contracts.registry import default_registry
from pharmaflow.lake.layout import LakeLayout, part_batch_id

SCHEMA = "bronze"
LOADED_TABLE = "_loaded_batches"

# The bronze columns of macros/bronze.sql `pf_bronze_columns()`, in PostgreSQL types (dbt's
# type_string / type_int / type_bigint / type_timestamp on postgres). Keep the two in step.
BRONZE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "text"),
    ("event_type", "text"),
    ("event_version", "integer"),
    ("event_time", "timestamp without time zone"),
    ("source_system", "text"),
    ("trace_id", "text"),
    ("key", "text"),
    ("event_json", "text"),
    ("payload", "text"),
    ("ingest_time", "timestamp without time zone"),
    ("source", "text"),
    ("source_uri", "text"),
    ("source_partition", "integer"),
    ("source_offset", "bigint"),
    ("batch_id", "text"),
)
_DUCKDB_CASTS = {
    "event_version": "INTEGER",
    "source_partition": "INTEGER",
    "source_offset": "BIGINT",
}

_TYPE_DIR = re.compile(r"^event_type=(?P<type>.+)$")

# Arrow record batches streamed per COPY chunk: bounds memory for large parts.
_ROWS_PER_CHUNK = 50_000
# Any constant both loaders agree on: serialises concurrent loads into the same database.
_ADVISORY_LOCK_KEY = 0x70665F62726F6E7A  # "pf_bronz"


@dataclass
class LoadResult:
    """What one load did: batches newly loaded (and their rows per table), batches skipped
    because an earlier load already has them, and how long it took."""

    batches_loaded: int = 0
    batches_already_loaded: int = 0
    rows_loaded: int = 0
    rows_by_table: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def table_name(event_type: str) -> str:
    """`pharmacy.order.placed` -> `pharmacy_order_placed` (dbt macro `pf_event_table_name`)."""
    return event_type.replace(".", "_")


def committed_batches(layout: LakeLayout) -> set[str]:
    """Batch ids with a manifest. A `.tmp-` manifest is a commit still being written (or
    left by a crash before its rename): not committed."""
    return set(layout.committed_manifests())


def bronze_parts(layout: LakeLayout) -> dict[str, list[tuple[str, Path]]]:
    """Every bronze part file, by batch id: (event type, path), sorted. The event type is the
    partition directory's, as the DuckDB views read it; temporary files are not parts."""
    parts: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    if not layout.bronze.exists():
        return parts
    for type_dir in sorted(layout.bronze.iterdir()):
        match = _TYPE_DIR.match(type_dir.name)
        if not match or not type_dir.is_dir():
            continue
        for path in sorted(type_dir.rglob("part-*.parquet")):
            batch_id = part_batch_id(path.name)
            if batch_id is not None and path.is_file():
                parts[batch_id].append((match["type"], path))
    return parts


def load_bronze(settings: Settings) -> LoadResult:
    """Load every committed bronze batch of `settings.lake_dir` not yet in the PostgreSQL
    warehouse `settings.warehouse_dsn`; create the bronze schema and tables when missing
    (one per known event type, so every dbt source exists even before its first event)."""
    return load_lake(settings.lake_dir, settings.warehouse_dsn)


def load_lake(lake_dir: Path, dsn: str, event_types: Iterable[str] | None = None) -> LoadResult:
    """`load_bronze` with the lake and the database given explicitly."""
    started = time.perf_counter()
    layout = LakeLayout(lake_dir)
    result = LoadResult()
    known = set(default_registry().event_types() if event_types is None else event_types)
    with Connection.connect(dsn, autocommit=True) as con:
        con.execute("select pg_advisory_lock(%s)", [_ADVISORY_LOCK_KEY])
        try:
            parts = bronze_parts(layout)
            tables = {table_name(t) for t in known}
            tables |= {table_name(t) for files in parts.values() for t, _ in files}
            _ensure_tables(con, sorted(tables))
            loaded = {
                row[0]
                for row in con.execute(
                    sql.SQL("select batch_id from {}.{}").format(
                        sql.Identifier(SCHEMA), sql.Identifier(LOADED_TABLE)
                    )
                )
            }
            committed = committed_batches(layout)
            result.batches_already_loaded = len(committed & loaded)
            with duckdb.connect() as duck:
                for batch_id in sorted(committed - loaded):
                    rows = _load_batch(con, duck, batch_id, parts.get(batch_id, []))
                    result.batches_loaded += 1
                    result.rows_loaded += sum(rows.values())
                    result.rows_by_table.update(rows)
            # fresh planner statistics for the build that follows (autovacuum may lag behind)
            for name in sorted(result.rows_by_table):
                con.execute(
                    sql.SQL("analyze {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))
                )
        finally:
            con.execute("select pg_advisory_unlock(%s)", [_ADVISORY_LOCK_KEY])
    result.seconds = time.perf_counter() - started
    return result


def _ensure_tables(con: Connection, tables: list[str]) -> None:
    """The bronze schema, one table per event type, and the loaded-batches marker table."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type))
        for name, pg_type in BRONZE_COLUMNS
    )
    with con.transaction():
        con.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(SCHEMA)))
        con.execute(
            sql.SQL(
                "create table if not exists {}.{} ("
                "batch_id text primary key, rows bigint not null, "
                "loaded_at timestamp with time zone not null default now())"
            ).format(sql.Identifier(SCHEMA), sql.Identifier(LOADED_TABLE))
        )
        for name in tables:
            con.execute(
                sql.SQL("create table if not exists {}.{} ({})").format(
                    sql.Identifier(SCHEMA), sql.Identifier(name), columns
                )
            )


def _load_batch(
    con: Connection, duck: duckdb.DuckDBPyConnection, batch_id: str, files: list[tuple[str, Path]]
) -> Counter[str]:
    """One batch, all its parts and its marker, in one transaction. A batch without bronze
    parts (everything quarantined or duplicate) is marked too, with 0 rows."""
    rows: Counter[str] = Counter()
    with con.transaction():
        for event_type, path in files:
            rows[table_name(event_type)] += _copy_part(con, duck, table_name(event_type), path)
        con.execute(
            sql.SQL("insert into {}.{} (batch_id, rows) values (%s, %s)").format(
                sql.Identifier(SCHEMA), sql.Identifier(LOADED_TABLE)
            ),
            [batch_id, sum(rows.values())],
        )
    return rows


def _copy_part(con: Connection, duck: duckdb.DuckDBPyConnection, table: str, path: Path) -> int:
    """COPY one Parquet part into its bronze table; return its row count."""
    present = set(pq.read_schema(path).names)
    select = ", ".join(_duckdb_column(name, present) for name, _ in BRONZE_COLUMNS)
    literal = "'" + str(path).replace("'", "''") + "'"
    relation = duck.sql(f"select {select} from read_parquet({literal})")
    # DuckDB 2 names the streaming Arrow reader to_arrow_reader (1.x: fetch_arrow_reader)
    to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    reader = to_reader(_ROWS_PER_CHUNK)
    copy_sql = sql.SQL("copy {}.{} ({}) from stdin (format csv)").format(
        sql.Identifier(SCHEMA),
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(name) for name, _ in BRONZE_COLUMNS),
    )
    count = 0
    with con.cursor() as cur, cur.copy(copy_sql) as copy:
        for chunk, n in _csv_chunks(reader):
            copy.write(chunk)
            count += n
    return count


def _duckdb_column(name: str, present: set[str]) -> str:
    """The DuckDB expression of one bronze column, as the bronze view selects it
    (`pf_bronze_select_sql`); a column an older part lacks is null, as `union_by_name` makes it."""
    if name == "payload":
        return 'cast(json_extract("event_json", \'$.payload\') as varchar) as "payload"'
    if name not in present:
        return f'null as "{name}"'
    if name in _DUCKDB_CASTS:
        return f'cast("{name}" as {_DUCKDB_CASTS[name]}) as "{name}"'
    return f'"{name}"'


def _csv_chunks(reader: pa.RecordBatchReader) -> Iterator[tuple[bytes, int]]:
    """CSV text for PostgreSQL's COPY: Arrow quotes every string (so an empty string stays
    empty) and writes null as nothing (COPY's csv null), timestamps as ISO text."""
    options = pacsv.WriteOptions(include_header=False)
    for batch in reader:
        if batch.num_rows == 0:
            continue
        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, options)
        yield buffer.getvalue(), batch.num_rows
