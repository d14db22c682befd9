"""Read-only SQL over the warehouse and the lake's metadata, for `pharmaflow sql`.

The connection is opened read-only and without external access, so a query can neither change
the warehouse nor read or write other files; several readers can run at once (DuckDB allows
many read-only processes or one writer). Only reading statements run (SELECT, SHOW, DESCRIBE,
EXPLAIN, PRAGMA, CALL...): anything else is refused before the connection opens.

A query that names `lake.` also sees the lake's metadata, so conservation can be checked
without opening Parquet files (docs/lake-layout.md):

* `lake.manifests`: one row per committed batch (its `_manifests/<batch_id>.json`): batch_id,
  source, source_uri, offsets, ingest_time, committed_at, the counts (records = landed +
  duplicates + quarantined + blank), quarantine_reasons (a map) and how many files it wrote;
* `lake.bronze`: the envelope and provenance columns of every bronze row of a committed batch
  (no `event_json`: the payloads are in silver);
* `lake.quarantine`: provenance, event_id, event_type and the reason of every quarantined row
  of a committed batch (never `raw_encrypted`).

Python (pyarrow) reads them, before the user's SQL runs: the manifests into an Arrow table,
bronze and quarantine as Arrow datasets over exactly the committed part files (scanned lazily,
so only the columns a query uses are read). They are views in an in-memory catalog `lake`,
and the configuration is locked (external access stays off) before the query runs. Queries that
do not name `lake.` load nothing of this.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.counts import MANIFEST_FIELDS
from pharmaflow.lake.layout import LakeLayout, part_batch_id

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

LAKE_TABLES = ("manifests", "bronze", "quarantine")
_LAKE_REF = re.compile(r'(?<![\w.])"?lake"?\s*\.\s*"?(\w+)', re.IGNORECASE)
# Statement kinds that only read. PIVOT parses as MULTI (it defines its enum types first).
_READING = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "MULTI"})


def run_query(
    path: Path, query: str, lake_dir: Path | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns and rows of `query` over the warehouse at `path` and, when the query names
    `lake.`, the lake at `lake_dir` (which needs no warehouse: conservation can be checked
    right after an ingest, before any build). Nothing is written to the data dir, so a
    read-only copy of it can be queried."""
    wanted = lake_tables_named(query) if lake_dir is not None else []
    if not path.exists() and not wanted:
        raise PharmaflowError(f"no warehouse at {path}: run `pharmaflow build` (or demo) first")
    import duckdb

    database, read_only = (str(path), True) if path.exists() else (":memory:", False)
    try:
        _check_reads_only(duckdb.extract_statements(query))
        with (
            reader_config(path if read_only else None) as config,
            duckdb.connect(database, read_only=read_only, config=config) as con,
        ):
            if wanted and lake_dir is not None:
                attach_lake(con, lake_dir, wanted)
            con.execute("SET lock_configuration = true")
            cursor = con.execute(query)
            if cursor.description is None:
                return [], []
            columns = [d[0] for d in cursor.description]
            return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise PharmaflowError(f"query failed: {describe_duckdb_error(exc, path)}") from None


def describe_duckdb_error(exc: BaseException, path: Path) -> str:
    """One line for a DuckDB error; a writer holding the warehouse is named as such."""
    from pharmaflow.warehouse.targets import lock_conflict

    holder = lock_conflict(exc)
    if holder is not None:
        return (
            f"the warehouse {path} is being written by {holder} (a running `pharmaflow build`); "
            f"run this again when it has finished"
        )
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def reader_config(warehouse: Path | None) -> Iterator[dict[str, Any]]:
    """DuckDB configuration of a reader: no external access, and a spill directory that can be
    written: DuckDB's default beside the warehouse file when its folder is writable, else (a
    read-only copy, an in-memory catalog whose default is the working directory) a private
    temporary folder, removed afterwards."""
    config: dict[str, Any] = {"enable_external_access": False}
    if warehouse is not None and os.access(warehouse.parent, os.W_OK):
        config["temp_directory"] = f"{warehouse}.tmp"
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="pharmaflow-duckdb-") as spill:
        config["temp_directory"] = spill
        yield config


def _check_reads_only(statements: list[Any]) -> None:
    if not statements:
        raise PharmaflowError(
            "query failed: no SQL statement given (the query is empty, blank or only a "
            'comment); e.g. pharmaflow sql "select * from gold.dim_product"'
        )
    for statement in statements:
        kind = statement.type.name
        if kind not in _READING:
            raise PharmaflowError(
                f"query failed: pharmaflow sql is read-only; a {kind} statement is not run"
            )


def lake_tables_named(query: str) -> list[str]:
    """The lake tables a query names; all of them when it names `lake.` something else
    (an unknown table then gets DuckDB's own error, listing what exists)."""
    named = {m[1].lower() for m in _LAKE_REF.finditer(query)}
    if not named:
        return []
    known = [t for t in LAKE_TABLES if t in named]
    return known if named <= set(LAKE_TABLES) else list(LAKE_TABLES)


def attach_lake(con: duckdb.DuckDBPyConnection, lake_dir: Path, tables: list[str]) -> None:
    """The catalog `lake` (in memory) with a view per table in `tables`, over Arrow objects
    read from the committed batches of `lake_dir`. Call before locking the configuration."""
    manifests = LakeLayout(lake_dir).committed_manifests()
    con.execute("ATTACH ':memory:' AS lake (READ_WRITE)")
    for name in tables:
        if name == "manifests":
            source: Any = _manifest_table(manifests)
        else:
            source = _parts_dataset(lake_dir / name, set(manifests), _SCHEMAS[name]())
        con.register(f"_lake_{name}", source)
        con.execute(f"CREATE VIEW lake.main.{name} AS SELECT * FROM _lake_{name}")


def _bronze_schema() -> pa.Schema:
    from pharmaflow.lake.bronze import BRONZE_SCHEMA

    return BRONZE_SCHEMA.remove(BRONZE_SCHEMA.get_field_index("event_json"))


def _quarantine_schema() -> pa.Schema:
    from pharmaflow.lake.quarantine import QUARANTINE_SCHEMA

    return QUARANTINE_SCHEMA.remove(QUARANTINE_SCHEMA.get_field_index("raw_encrypted"))


_SCHEMAS = {"bronze": _bronze_schema, "quarantine": _quarantine_schema}


def _parts_dataset(directory: Path, committed: set[str], schema: pa.Schema) -> Any:
    """An Arrow dataset over the part files of committed batches under `directory`, read with
    `schema` (so a column the schema leaves out, e.g. raw_encrypted, is never read)."""
    import pyarrow.dataset as ds

    files = []
    if directory.exists():
        for p in sorted(directory.rglob("part-*.parquet")):
            if part_batch_id(p.name) in committed and p.is_file():
                files.append(str(p))
    if not files:
        return schema.empty_table()
    return ds.dataset(files, schema=schema, format="parquet")


def _manifest_table(manifests: dict[str, Path]) -> pa.Table:
    import orjson
    import pyarrow as pa

    offset = pa.struct(
        [
            ("topic", pa.string()),
            ("topic_id", pa.string()),
            ("partition", pa.int32()),
            ("first", pa.int64()),
            ("last", pa.int64()),
        ]
    )
    schema = pa.schema(
        [
            ("batch_id", pa.string()),
            ("source", pa.string()),
            ("source_uri", pa.string()),
            ("first_offset", pa.int64()),
            ("last_offset", pa.int64()),
            ("offsets", pa.list_(offset)),
            ("ingest_time", pa.timestamp("us")),
            ("committed_at", pa.timestamp("us")),
            *((name, pa.int64()) for name in MANIFEST_FIELDS),
            ("quarantine_reasons", pa.map_(pa.string(), pa.int64())),
            ("files", pa.int32()),
        ]
    )
    rows = []
    for batch_id, path in manifests.items():
        try:
            m = orjson.loads(path.read_bytes())
            if not isinstance(m, dict):
                raise TypeError("not a JSON object")
            counts = m.get("counts") or {}
            rows.append(
                {
                    "batch_id": m.get("batch_id", batch_id),
                    "source": m.get("source"),
                    "source_uri": m.get("source_uri"),
                    "first_offset": m.get("first_offset"),
                    "last_offset": m.get("last_offset"),
                    "offsets": [
                        dict(zip(offset.names, r, strict=True)) for r in m.get("offsets") or []
                    ],
                    "ingest_time": _utc(m.get("ingest_time")),
                    "committed_at": _utc(m.get("committed_at")),
                    **{name: counts.get(name) for name in MANIFEST_FIELDS},
                    "quarantine_reasons": list((m.get("quarantine_reasons") or {}).items()),
                    "files": len(m.get("files") or []),
                }
            )
        except (ValueError, TypeError, AttributeError, pa.ArrowException) as exc:
            raise PharmaflowError(f"lake manifest {path.name} is unreadable: {exc}") from None
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise PharmaflowError(f"a lake manifest has a malformed field: {exc}") from None


def _utc(value: Any) -> datetime | None:
    """ISO-8601 text as naive UTC (the warehouse's convention); an aware time is converted."""
    if value is None:
        return None
    ts = datetime.fromisoformat(value)
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
