"""Load the committed bronze batches of the lake into BigQuery, for the `bigquery` target.

On DuckDB bronze is a set of views over the Parquet lake; BigQuery reads only what is in its
own storage (or in Cloud Storage), so bronze there is one native table per event type,
`<dataset>_bronze.<event_type with . -> _>`, with the columns of the dbt macro
`pf_bronze_columns()` (macros/bronze.sql) and the rows the DuckDB views show: the parts of
committed batches only (a batch is committed once `_manifests/<batch_id>.json` exists,
docs/lake-layout.md), with `payload` extracted from `event_json` by DuckDB with the same
expression as the DuckDB views and the PostgreSQL loader, so all three targets read the same
payload text.

One BigQuery load job per (batch, event type): DuckDB reads the batch's parts of that type
(`union_by_name`, as the views), adds `payload`, and the rows are written as one Parquet file
with the timestamps marked UTC (`isAdjustedToUTC`: the lake's naive UTC timestamps would
otherwise load as DATETIME), which is uploaded with `load_table_from_file` and appended
(`WRITE_APPEND`) to the event type's table. The tables are created up front, partitioned by
day of `ingest_time` and clustered by `batch_id, event_id` (the silver models read bronze by
batch, `_unread_batches`, and dedupe and anti-join by event id), so every dbt source exists
even before its first event and a load never creates a table with a guessed schema
(`CREATE_NEVER`).

Exactly once, by two mechanisms that cover each other:

* `<dataset>_bronze._loaded_batches` records every batch whose jobs all finished; a batch in
  it is never loaded again. Its row is itself written by a load job after the batch's data
  jobs (load jobs are free and atomic; no streaming buffer, no DML quota).
* Every job id is derived from the destination table and the batch id
  (`pf_bronze_<batch>_<type>_<digest>_a<attempt>`). BigQuery refuses a second job with an
  id it already has (409 `Conflict`), so a retried load after a crash between a batch's jobs
  and its marker (or a second loader running at the same time) does not append the rows
  again: the loader fetches the earlier job by its id and counts its rows if it succeeded,
  waits for it if it is still running, and only when it failed submits the next attempt.

A load job appends all of its rows or none, but a batch spans several tables, so a crash can
leave a batch loaded for some event types only until the next load completes it; that is safe
because the silver models track unread batches per event type. Nothing is recorded for a batch
whose job failed (the next load retries it), and a batch whose manifest cannot be read, or that
lists a bronze part the lake does not hold, is left for a later load and reported.

Not here: loading by `gs://` URI. The lake's parts hold no `payload` column and naive
timestamps, so loading them as they are would need a staging table and a transforming query;
a lake on Cloud Storage is read through a mount of the bucket (gcsfuse) as a local lake dir
(docs/bigquery.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pharmaflow.config import Settings
from pharmaflow.contracts.registry import default_registry
from pharmaflow.errors import PharmaflowError
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.warehouse.load_postgres import (
    BRONZE_COLUMNS,
    _duckdb_column,
    bronze_parts,
    committed_batches,
    table_name,
)

if TYPE_CHECKING:
    from google.cloud.bigquery import Client

log = logging.getLogger(__name__)

LOADED_TABLE = "_loaded_batches"
# the datasets of the warehouse (macros/generate_schema_name.sql): the loader creates them all
# in the configured location, so dbt's own `create schema` never picks another one
LAYERS = ("bronze", "silver", "gold", "reference")
PARTITION_FIELD = "ingest_time"
CLUSTERING_FIELDS = ["batch_id", "event_id"]
# BigQuery types of the bronze columns: dbt's type_string / type_int / type_bigint /
# type_timestamp on bigquery (STRING, INT64, INT64, TIMESTAMP). Keep in step with BRONZE_COLUMNS.
_BQ_TYPES = {"text": "STRING", "integer": "INT64", "bigint": "INT64"}
_TIMESTAMP_COLUMNS = frozenset({"event_time", "ingest_time"})
# Rows per Arrow batch while a (batch, event type) file is written: bounds memory.
_ROWS_PER_CHUNK = 50_000
# A (batch, event type) whose jobs failed this often is a problem for a person, not a retry.
MAX_ATTEMPTS = 20
_JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# a table id is letters, digits and underscores (event type names are lower-case dotted words)
_TABLE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")


@dataclass
class LoadResult:
    """What one load did: batches newly loaded (and their rows per table), batches an earlier
    load already had, batches left for later (batch id -> why, retried by the next load), the
    jobs that ran or were found done, and how long it took."""

    batches_loaded: int = 0
    batches_already_loaded: int = 0
    batches_skipped: dict[str, str] = field(default_factory=dict)
    # event type directories that cannot be a table name (no ingest writes one)
    types_refused: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_by_table: Counter[str] = field(default_factory=Counter)
    job_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0


def bronze_schema() -> list[Any]:
    """The bronze table's columns as BigQuery `SchemaField`s (all NULLABLE: older parts may
    lack a column, which reads as null, as `union_by_name` makes it on DuckDB)."""
    from google.cloud.bigquery import SchemaField

    return [
        SchemaField(
            name, "TIMESTAMP" if name in _TIMESTAMP_COLUMNS else _BQ_TYPES.get(pg_type, "STRING")
        )
        for name, pg_type in BRONZE_COLUMNS
    ]


def marker_schema() -> list[Any]:
    """`_loaded_batches`: one row per batch loaded (its rows, event types and jobs)."""
    from google.cloud.bigquery import SchemaField

    return [
        SchemaField("batch_id", "STRING", mode="REQUIRED"),
        SchemaField("row_count", "INT64", mode="REQUIRED"),
        SchemaField("event_types", "STRING", mode="REPEATED"),
        SchemaField("job_ids", "STRING", mode="REPEATED"),
        SchemaField("loaded_at", "TIMESTAMP", mode="REQUIRED"),
    ]


def _arrow_schema() -> pa.Schema:
    """The Parquet file a load uploads: timestamps marked UTC, so they load as TIMESTAMP."""
    types = {"STRING": pa.string(), "INT64": pa.int64(), "TIMESTAMP": pa.timestamp("us", "UTC")}
    return pa.schema([(f.name, types[f.field_type]) for f in bronze_schema()])


def bronze_job_config() -> Any:
    """The configuration of every bronze load job: Parquet, appended to an existing table with
    the bronze schema, partitioning and clustering (a mismatch fails the job, never the data)."""
    from google.cloud import bigquery

    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        schema=bronze_schema(),
        time_partitioning=bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=PARTITION_FIELD
        ),
        clustering_fields=CLUSTERING_FIELDS,
        labels={"pharmaflow": "bronze"},
    )


def marker_job_config() -> Any:
    """The configuration of the marker's load job (one JSON row per batch)."""
    from google.cloud import bigquery

    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        schema=marker_schema(),
        labels={"pharmaflow": "bronze"},
    )


def job_id(project: str, dataset: str, table: str, batch_id: str, attempt: int) -> str:
    """The job id of one (batch, table) load: readable parts plus a digest of the destination
    and the batch (two warehouses in one project, or two batch ids that differ only in
    characters a job id cannot hold, never share one), and the attempt."""
    digest = hashlib.sha256(f"{project}.{dataset}.{table}\n{batch_id}".encode()).hexdigest()[:24]
    readable = _JOB_ID_UNSAFE.sub("_", batch_id)[:80]
    return f"pf_bronze_{readable}_{table[:60]}_{digest}_a{attempt}"


def load_bronze(settings: Settings, client: Client | None = None) -> LoadResult:
    """Load every committed bronze batch of `settings.lake_dir` not yet in the BigQuery
    warehouse (`bigquery_project`, datasets `<bigquery_dataset>_*` in `bigquery_location`);
    create the datasets and tables when missing. `client`: a `google.cloud.bigquery.Client`
    (default: one for the settings' project and credentials)."""
    if client is None:
        client = _client(settings)
    project = settings.bigquery_project or client.project
    return load_lake(
        settings.lake_dir,
        client,
        project=project,
        dataset_prefix=settings.bigquery_dataset,
        location=settings.bigquery_location,
    )


def _client(settings: Settings) -> Client:
    """A client with the profile's credentials: the keyfile's service account, else
    application default credentials (as dbt's `oauth` method)."""
    try:
        from google.cloud import bigquery
    except ImportError:  # pragma: no cover - the extra is what makes the target usable
        raise PharmaflowError(
            "warehouse_target is bigquery but google-cloud-bigquery is not installed "
            "(pip install 'pharmaflow[bigquery]')"
        ) from None
    credentials = None
    if settings.bigquery_keyfile is not None:
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(
            str(settings.bigquery_keyfile.expanduser())
        )
    try:
        return bigquery.Client(
            project=settings.bigquery_project,
            credentials=credentials,
            location=settings.bigquery_location,
        )
    except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError, ...
        raise PharmaflowError(f"cannot reach BigQuery: {_first_line(exc)}") from None


def load_lake(
    lake_dir: Path,
    client: Client,
    *,
    project: str,
    dataset_prefix: str,
    location: str,
    event_types: Iterable[str] | None = None,
) -> LoadResult:
    """`load_bronze` with the lake, the client and the destination given explicitly."""
    from google.api_core import exceptions as api_errors

    started = time.perf_counter()
    layout = LakeLayout(lake_dir)
    result = LoadResult()
    dataset = f"{dataset_prefix}_bronze"
    known = set(default_registry().event_types() if event_types is None else event_types)
    parts = bronze_parts(layout)
    types = known | {t for files in parts.values() for t, _ in files}
    try:
        _ensure_datasets(client, project, dataset_prefix, location)
        tables = _ensure_tables(client, project, dataset, sorted(types), result)
        loaded = _loaded_batches(client, project, dataset)
        committed = committed_batches(layout)
        result.batches_already_loaded = len(committed & loaded)
        for batch_id in sorted(committed - loaded):
            refused = sorted({t for t, _ in parts.get(batch_id, []) if t not in tables})
            problem = _incomplete(layout, batch_id) or (
                f"parts under event_type={refused[0]!r}, which cannot be a table name"
                if refused
                else None
            )
            if problem is not None:
                result.batches_skipped[batch_id] = problem
                log.warning("bronze batch %s not loaded into BigQuery: %s", batch_id, problem)
                continue
            _load_batch(
                client,
                project,
                dataset,
                location,
                batch_id,
                parts.get(batch_id, []),
                tables,
                result,
            )
    except api_errors.GoogleAPIError as exc:
        raise PharmaflowError(f"BigQuery bronze load failed: {_first_line(exc)}") from None
    result.seconds = time.perf_counter() - started
    log.info(
        "bronze loaded into BigQuery %s: %d new batches (%d rows), %d already there, %d left "
        "for later, %.1f s",
        dataset,
        result.batches_loaded,
        result.rows_loaded,
        result.batches_already_loaded,
        len(result.batches_skipped),
        result.seconds,
    )
    return result


def _ensure_datasets(client: Client, project: str, prefix: str, location: str) -> None:
    """The four datasets, in `location`. Looked up first: where Terraform made them
    (docs/deploy-gcp.md) the warehouse account may edit them but not create datasets, and a
    create call would be refused even for one that exists. One in another location would
    fail every job later, with a less clear message: refused here."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    for layer in LAYERS:
        dataset_id = f"{project}.{prefix}_{layer}"
        try:
            found = client.get_dataset(dataset_id)
        except NotFound:
            ds = bigquery.Dataset(dataset_id)
            ds.location = location
            client.create_dataset(ds, exists_ok=True)
            continue
        if str(found.location or "").lower() != location.lower():
            raise PharmaflowError(
                f"BigQuery dataset {dataset_id} is in location {found.location}, but "
                f"PHARMAFLOW_BIGQUERY_LOCATION is {location}: set it to the datasets' location"
            )


def _ensure_tables(
    client: Client, project: str, dataset: str, types: list[str], result: LoadResult
) -> dict[str, str]:
    """The marker table and one bronze table per event type; event type -> table name. A type
    whose name cannot be a table name (a directory no ingest writes) gets none, and a batch
    with parts there is not loaded (`_incomplete`): nothing of it is dropped silently."""
    from google.cloud import bigquery

    marker = bigquery.Table(f"{project}.{dataset}.{LOADED_TABLE}", schema=marker_schema())
    marker.description = "pharmaflow: the bronze batches loaded (exactly once, by batch id)"
    client.create_table(marker, exists_ok=True)
    tables: dict[str, str] = {}
    for event_type in types:
        name = table_name(event_type)
        if not _TABLE_ID.match(name):
            result.types_refused.append(event_type)
            log.warning("bronze parts under event_type=%r not loaded: not a table name", event_type)
            continue
        table = bigquery.Table(f"{project}.{dataset}.{name}", schema=bronze_schema())
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=PARTITION_FIELD
        )
        table.clustering_fields = CLUSTERING_FIELDS
        table.description = f"pharmaflow bronze: the committed `{event_type}` events of the lake"
        client.create_table(table, exists_ok=True)
        tables[event_type] = name
    return tables


def _loaded_batches(client: Client, project: str, dataset: str) -> set[str]:
    """The batch ids in `_loaded_batches` (tables.list of one column: no query job)."""
    from google.cloud.bigquery import SchemaField

    rows = client.list_rows(
        f"{project}.{dataset}.{LOADED_TABLE}",
        selected_fields=[SchemaField("batch_id", "STRING")],
    )
    return {row["batch_id"] for row in rows}


def _incomplete(layout: LakeLayout, batch_id: str) -> str | None:
    """Why a committed batch cannot be loaded whole now, or None. Its manifest must be a JSON
    object (a torn one cannot say what the batch holds), and every bronze part it lists must be
    in the lake (else only part of the batch would load, and it would be marked done)."""
    try:
        manifest = orjson.loads(layout.manifest(batch_id).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return f"its manifest cannot be read ({type(exc).__name__})"
    if not isinstance(manifest, dict):
        return "its manifest is not a JSON object"
    files = manifest.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return "its manifest's `files` is not a list of paths"
    missing = [
        f
        for f in files
        if "bronze/event_type=" in f
        and not (layout.root / f[f.index("bronze/event_type=") :]).is_file()
    ]
    if missing:
        return f"{len(missing)} bronze part(s) its manifest lists are not in the lake"
    return None


def _load_batch(
    client: Client,
    project: str,
    dataset: str,
    location: str,
    batch_id: str,
    files: list[tuple[str, Path]],
    tables: dict[str, str],
    result: LoadResult,
) -> None:
    """Every event type of one batch (a job each), then its marker. A batch without bronze
    parts (everything quarantined or duplicate) is marked too, with 0 rows."""
    by_type: dict[str, list[Path]] = defaultdict(list)
    for event_type, path in files:
        by_type[event_type].append(path)
    rows: Counter[str] = Counter()
    jobs: list[str] = []
    with duckdb.connect() as duck, tempfile.TemporaryDirectory(prefix="pf-bq-") as scratch:
        for event_type in sorted(by_type):
            name = tables[event_type]
            upload = Path(scratch) / f"{name}.parquet"
            written = _write_upload(duck, sorted(by_type[event_type]), upload)
            if written == 0:
                continue  # empty parts: nothing to append

            def submit(job: str, upload: Path = upload, name: str = name) -> Any:
                with upload.open("rb") as handle:
                    return client.load_table_from_file(
                        handle,
                        f"{project}.{dataset}.{name}",
                        job_id=job,
                        job_config=bronze_job_config(),
                        location=location,
                    )

            job = _run_once(client, location, project, dataset, name, batch_id, submit)
            loaded = int(job.output_rows or 0)
            if loaded != written:
                raise PharmaflowError(
                    f"BigQuery load job {job.job_id} of batch {batch_id} into {name} holds "
                    f"{loaded} rows, the lake {written}: not marked loaded"
                )
            rows[name] += loaded
            jobs.append(job.job_id)
    marker_row = {
        "batch_id": batch_id,
        "row_count": sum(rows.values()),
        "event_types": sorted(by_type),
        "job_ids": jobs,
        "loaded_at": datetime.now(UTC).isoformat(),
    }

    def submit_marker(job: str) -> Any:
        return client.load_table_from_json(
            [marker_row],
            f"{project}.{dataset}.{LOADED_TABLE}",
            job_id=job,
            job_config=marker_job_config(),
            location=location,
        )

    marker_job = _run_once(
        client, location, project, dataset, LOADED_TABLE, batch_id, submit_marker
    )
    result.batches_loaded += 1
    result.rows_loaded += sum(rows.values())
    result.rows_by_table.update(rows)
    result.job_ids += [*jobs, marker_job.job_id]


def _run_once(
    client: Client,
    location: str,
    project: str,
    dataset: str,
    table: str,
    batch_id: str,
    submit: Callable[[str], Any],
) -> Any:
    """Run the (batch, table) job exactly once: submit attempt 1; where BigQuery already has a
    job of that id (`Conflict`), that job is the load: its result if it succeeded (or once it
    finishes), the next attempt only if it failed. A job that fails now raises (nothing of the
    batch is marked; the next load retries with the next attempt)."""
    from google.api_core import exceptions as api_errors

    for attempt in range(1, MAX_ATTEMPTS + 1):
        job_name = job_id(project, dataset, table, batch_id, attempt)
        try:
            job = submit(job_name)
        except api_errors.Conflict:
            earlier = client.get_job(job_name, location=location)
            if earlier.state != "DONE":  # running: another loader's, or ours before a crash
                with contextlib.suppress(api_errors.GoogleAPIError):  # failed: error_result
                    earlier.result()
            if earlier.error_result is None:
                log.info("bronze job %s already done: not loaded again", job_name)
                return earlier
            continue  # that attempt failed: the next one
        try:
            job.result()
        except api_errors.GoogleAPIError as exc:
            raise PharmaflowError(
                f"BigQuery load job {job_name} (batch {batch_id} into {dataset}.{table}) "
                f"failed: {_first_line(exc)}; nothing of the batch is marked loaded, the next "
                f"build retries it"
            ) from None
        return job
    raise PharmaflowError(
        f"BigQuery load of batch {batch_id} into {dataset}.{table} failed {MAX_ATTEMPTS} "
        f"times (jobs {job_id(project, dataset, table, batch_id, 1)} ...): see those jobs"
    )


def _write_upload(duck: duckdb.DuckDBPyConnection, paths: list[Path], out: Path) -> int:
    """The rows of one (batch, event type), as the DuckDB view selects them, into one Parquet
    file in the bronze schema; the number of rows."""
    present: set[str] = set()
    for path in paths:
        try:
            present |= set(pq.read_schema(path).names)
        except (OSError, pa.ArrowException) as exc:
            raise PharmaflowError(
                f"cannot read the bronze part {path}: {_first_line(exc)}; nothing of its batch "
                f"is marked loaded into BigQuery"
            ) from None
    select = ", ".join(_duckdb_column(name, present) for name, _ in BRONZE_COLUMNS)
    literals = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    relation = duck.sql(
        f"select {select} from read_parquet([{literals}], union_by_name = true, "
        f"hive_partitioning = false)"
    )
    # DuckDB 2 names the streaming Arrow reader to_arrow_reader (1.x: fetch_arrow_reader)
    to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
    schema = _arrow_schema()
    count = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in to_reader(_ROWS_PER_CHUNK):
            # the lake's timestamps are UTC without a zone: marking them UTC keeps every value
            writer.write_table(pa.Table.from_batches([batch]).cast(schema))
            count += batch.num_rows
    return count


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
