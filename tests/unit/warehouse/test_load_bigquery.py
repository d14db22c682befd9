"""The BigQuery bronze loader (warehouse/load_bigquery.py), against a stand-in client.

No BigQuery is reachable here, so `FakeBigQuery` below implements the few `Client` methods the
loader calls (get_dataset, create_dataset, create_table, list_rows, load_table_from_file,
load_table_from_json, get_job), with the two BigQuery behaviours the loader's exactly-once
design rests on: a job id is unique per project (a second job with a known id raises
`google.api_core.exceptions.Conflict`), and a load job appends all of its rows or none. It
keeps the real `LoadJobConfig` each job was given, so the tests assert on the configuration
BigQuery would receive (`to_api_repr()`), and it reads the uploaded Parquet back, so they
assert on the rows. What it cannot show: that BigQuery accepts the configuration (nothing ran
on BigQuery).

The lakes are written here by hand, with the bronze layout of docs/lake-layout.md, so each
hostile case is explicit: an uncommitted batch, a `.tmp-` manifest, a torn manifest, a
manifest listing a part the lake lacks, an event type no contract declares, a directory that
cannot be a table name.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core.exceptions import BadRequest, Conflict, NotFound
from google.cloud import bigquery

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse import load_bigquery
from pharmaflow.warehouse.load_bigquery import (
    LOADED_TABLE,
    bronze_job_config,
    job_id,
    load_lake,
)
from pharmaflow.warehouse.load_postgres import BRONZE_COLUMNS

PROJECT, PREFIX, LOCATION = "pf-test", "pfw", "EU"
BRONZE = f"{PROJECT}.{PREFIX}_bronze"
TYPES = ("pharmacy.order.placed", "sales.sale.completed")


# ------------------------------------------------------------------------- the stand-in


class FakeJob:
    """A finished (or still running) load job: its id, rows appended, error if it failed."""

    def __init__(
        self,
        job_id: str,
        output_rows: int,
        error: str | None = None,
        on_finish: Callable[[], int] | None = None,
    ) -> None:
        self.job_id = job_id
        self.output_rows = output_rows
        self.error_result = {"reason": "invalid", "message": error} if error else None
        self.state = "RUNNING" if on_finish is not None else "DONE"
        self._on_finish = on_finish

    def result(self) -> FakeJob:
        if self._on_finish is not None:  # another loader's job, finishing now
            self.output_rows = self._on_finish()
            self._on_finish = None
            self.state = "DONE"
        if self.error_result is not None:
            raise BadRequest(self.error_result["message"])
        return self


class FakeBigQuery:
    """The `google.cloud.bigquery.Client` methods the loader calls, nothing else."""

    project = PROJECT

    def __init__(self) -> None:
        self.datasets: dict[str, bigquery.Dataset] = {}
        self.tables: dict[str, bigquery.Table] = {}
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.jobs: dict[str, FakeJob] = {}
        # (job id, destination, the LoadJobConfig as given), in submission order
        self.submitted: list[tuple[str, str, bigquery.LoadJobConfig]] = []
        self.failing: set[str] = set()  # table names whose next job fails
        self.crash_on_marker = False  # the process dies before writing a marker

    def get_dataset(self, dataset_id: str) -> bigquery.Dataset:
        name = dataset_id.rsplit(".", 1)[1]
        if name not in self.datasets:
            raise NotFound(f"Dataset {dataset_id} not found")
        return self.datasets[name]

    def create_dataset(self, dataset: bigquery.Dataset, exists_ok: bool = False) -> None:
        assert exists_ok
        self.datasets.setdefault(dataset.dataset_id, dataset)

    def create_table(self, table: bigquery.Table, exists_ok: bool = False) -> None:
        assert exists_ok
        self.tables.setdefault(f"{table.project}.{table.dataset_id}.{table.table_id}", table)

    def list_rows(self, table: str, selected_fields: list[bigquery.SchemaField]) -> list[dict]:
        names = [f.name for f in selected_fields]
        return [{n: row[n] for n in names} for row in self.rows[table]]

    def get_job(self, job_id: str, location: str | None = None) -> FakeJob:
        assert location == LOCATION
        return self.jobs[job_id]

    def load_table_from_file(
        self,
        file_obj: io.BufferedReader,
        destination: str,
        job_id: str,
        job_config: bigquery.LoadJobConfig,
        location: str,
    ) -> FakeJob:
        return self._load(destination, job_id, job_config, location, pq.read_table(file_obj))

    def load_table_from_json(
        self,
        json_rows: list[dict[str, Any]],
        destination: str,
        job_id: str,
        job_config: bigquery.LoadJobConfig,
        location: str,
    ) -> FakeJob:
        if self.crash_on_marker:
            raise KeyboardInterrupt("the process died before the marker")
        return self._load(destination, job_id, job_config, location, json_rows)

    def _load(
        self,
        destination: str,
        job_id: str,
        config: bigquery.LoadJobConfig,
        location: str,
        data: pa.Table | list[dict[str, Any]],
    ) -> FakeJob:
        if job_id in self.jobs:  # BigQuery: job ids are unique in a project
            raise Conflict(f"Already Exists: Job {PROJECT}:{location}.{job_id}")
        assert location == LOCATION
        self.submitted.append((job_id, destination, config))
        # CREATE_NEVER: the table must exist, with the schema the job declares
        table = self.tables[destination]
        assert [f.name for f in table.schema] == [f.name for f in config.schema]
        table_name = destination.rsplit(".", 1)[1]
        if table_name in self.failing:
            self.failing.discard(table_name)
            job = FakeJob(job_id, 0, error="Error while reading data")
        else:
            if isinstance(data, pa.Table):
                _check_parquet_types(data.schema, config.schema)
                data = data.to_pylist()
            self.rows[destination] += data  # all of the job's rows, at once
            job = FakeJob(job_id, len(data))
        self.jobs[job_id] = job
        return job


def _check_parquet_types(schema: pa.Schema, fields: list[bigquery.SchemaField]) -> None:
    """What BigQuery makes of the uploaded Parquet: a timestamp without isAdjustedToUTC loads
    as DATETIME, which a TIMESTAMP column refuses; so TIMESTAMP columns must come UTC."""
    for f in fields:
        if f.field_type == "TIMESTAMP":
            assert schema.field(f.name).type == pa.timestamp("us", "UTC"), f.name


# ------------------------------------------------------------------------- the lakes


def _event(event_type: str, n: int, batch_id: str) -> dict[str, Any]:
    payload = {"order_id": f"O-{n}", "quantity": n, "note": 'd\u00e9j\u00e0 "vu"'}
    event = {
        "event_id": f"{batch_id}-{event_type}-{n}",
        "event_type": event_type,
        "event_version": 1,
        "event_time": "2024-05-01T10:00:00Z",
        "key": f"O-{n}",
        "payload": payload,
    }
    return {
        "event_id": event["event_id"],
        "event_type": event_type,
        "event_version": 1,
        "event_time": datetime(2024, 5, 1, 10, 0, n),
        "source_system": "pos",
        "trace_id": None,
        "key": f"O-{n}",
        "event_json": orjson.dumps(event).decode(),
        "ingest_time": datetime(2024, 5, 2, 23, 59, 59, 999999),
        "source": "file",
        "source_uri": "/in/events.jsonl",
        "source_partition": None,
        "source_offset": n,
        "batch_id": batch_id,
    }


def _part(lake: Path, event_type: str, batch_id: str, rows: int, hour: str = "23") -> Path:
    folder = lake / "bronze" / f"event_type={event_type}" / "date=2024-05-02" / f"hour={hour}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{batch_id}.parquet"
    schema = pa.schema(
        [
            ("event_id", pa.string()),
            ("event_type", pa.string()),
            ("event_version", pa.int32()),
            ("event_time", pa.timestamp("us")),  # the lake's own: UTC without a zone
            ("source_system", pa.string()),
            ("trace_id", pa.string()),
            ("key", pa.string()),
            ("event_json", pa.string()),
            ("ingest_time", pa.timestamp("us")),
            ("source", pa.string()),
            ("source_uri", pa.string()),
            ("source_partition", pa.int32()),
            ("source_offset", pa.int64()),
            ("batch_id", pa.string()),
        ]
    )
    table = pa.Table.from_pylist([_event(event_type, n, batch_id) for n in range(rows)], schema)
    pq.write_table(table, path)
    return path


def _commit(lake: Path, batch_id: str, parts: list[Path]) -> Path:
    manifests = lake / "_manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    manifest = manifests / f"{batch_id}.json"
    files = [f"lake/{p.relative_to(lake)}" for p in parts]
    manifest.write_bytes(orjson.dumps({"batch_id": batch_id, "files": files}))
    return manifest


def _batch(lake: Path, batch_id: str, rows: dict[str, int]) -> list[Path]:
    parts = [_part(lake, t, batch_id, n) for t, n in rows.items()]
    _commit(lake, batch_id, parts)
    return parts


def _load(lake: Path, client: FakeBigQuery) -> load_bigquery.LoadResult:
    return load_lake(
        lake, client, project=PROJECT, dataset_prefix=PREFIX, location=LOCATION, event_types=TYPES
    )


def _marked(client: FakeBigQuery) -> list[str]:
    return sorted(r["batch_id"] for r in client.rows[f"{BRONZE}.{LOADED_TABLE}"])


def _row_counts(client: FakeBigQuery) -> dict[str, int]:
    return {
        t.rsplit(".", 1)[1]: len(rows)
        for t, rows in client.rows.items()
        if not t.endswith(LOADED_TABLE) and rows
    }


# ------------------------------------------------------------------------- the tests


def test_each_job_is_a_parquet_append_to_a_partitioned_clustered_table(tmp_path: Path):
    _batch(tmp_path, "b1", {"pharmacy.order.placed": 3, "sales.sale.completed": 2})
    client = FakeBigQuery()
    result = _load(tmp_path, client)

    assert result.batches_loaded == 1 and result.rows_loaded == 5
    # the four datasets of the warehouse, in the configured location
    assert {d: ds.location for d, ds in client.datasets.items()} == {
        f"{PREFIX}_{layer}": LOCATION for layer in ("bronze", "silver", "gold", "reference")
    }
    # every event type has its table before its first event (the dbt sources exist), plus
    # the marker; bronze is partitioned by ingest day, clustered as silver reads it
    assert sorted(client.tables) == [
        f"{BRONZE}.{LOADED_TABLE}",
        f"{BRONZE}.pharmacy_order_placed",
        f"{BRONZE}.sales_sale_completed",
    ]
    table = client.tables[f"{BRONZE}.sales_sale_completed"]
    assert table.time_partitioning.type_ == bigquery.TimePartitioningType.DAY
    assert table.time_partitioning.field == "ingest_time"
    assert table.clustering_fields == ["batch_id", "event_id"]

    data_jobs = [s for s in client.submitted if not s[1].endswith(LOADED_TABLE)]
    assert [d for _, d, _ in data_jobs] == [
        f"{BRONZE}.pharmacy_order_placed",
        f"{BRONZE}.sales_sale_completed",
    ]
    config = data_jobs[0][2]
    assert isinstance(config, bigquery.LoadJobConfig)
    api = config.to_api_repr()["load"]
    assert api["sourceFormat"] == "PARQUET"
    assert api["writeDisposition"] == "WRITE_APPEND"
    assert api["createDisposition"] == "CREATE_NEVER"
    assert api["timePartitioning"] == {"type": "DAY", "field": "ingest_time"}
    assert api["clustering"] == {"fields": ["batch_id", "event_id"]}
    # the columns of macros/bronze.sql pf_bronze_columns(), in dbt-bigquery's types
    fields = [(f["name"], f["type"], f["mode"]) for f in api["schema"]["fields"]]
    assert [name for name, _, _ in fields] == [name for name, _ in BRONZE_COLUMNS]
    assert {name: t for name, t, _ in fields} == {
        **{name: "STRING" for name, _ in BRONZE_COLUMNS},
        "event_version": "INT64",
        "source_partition": "INT64",
        "source_offset": "INT64",
        "event_time": "TIMESTAMP",
        "ingest_time": "TIMESTAMP",
    }
    assert {mode for _, _, mode in fields} == {"NULLABLE"}
    assert config.to_api_repr() == bronze_job_config().to_api_repr()

    # job ids: deterministic per destination and batch, first attempt
    assert data_jobs[0][0] == job_id(PROJECT, f"{PREFIX}_bronze", "pharmacy_order_placed", "b1", 1)
    assert data_jobs[0][0].startswith("pf_bronze_b1_pharmacy_order_placed_")
    assert data_jobs[0][0].endswith("_a1")
    marker_id, marker_dest, marker_config = client.submitted[-1]
    assert marker_dest == f"{BRONZE}.{LOADED_TABLE}"
    assert marker_config.to_api_repr()["load"]["sourceFormat"] == "NEWLINE_DELIMITED_JSON"
    assert marker_id == job_id(PROJECT, f"{PREFIX}_bronze", LOADED_TABLE, "b1", 1)
    marker = client.rows[marker_dest][0]
    assert marker["batch_id"] == "b1" and marker["row_count"] == 5
    assert marker["event_types"] == list(TYPES)
    assert marker["job_ids"] == [j for j, _, _ in data_jobs]
    assert result.job_ids == [*marker["job_ids"], marker_id]


def test_job_ids_differ_per_warehouse_and_stay_valid_for_any_batch_id():
    a = job_id("p", "one_bronze", "t", "b1", 1)
    assert a == job_id("p", "one_bronze", "t", "b1", 1)
    assert a != job_id("p", "two_bronze", "t", "b1", 1)  # two warehouses in one project
    assert a != job_id("p", "one_bronze", "t", "b1", 2)
    odd = job_id("p", "d", "t", "kafka-host-0~20240501T1000/é ü", 1)
    assert odd != job_id("p", "d", "t", "kafka-host-0~20240501T1000/é_ü", 1)
    assert set(odd) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert len(job_id("p", "d", "t", "x" * 5000, 1)) < 1024


def test_the_rows_are_what_the_duckdb_view_reads(tmp_path: Path):
    parts = _batch(tmp_path, "b1", {"pharmacy.order.placed": 3})
    client = FakeBigQuery()
    _load(tmp_path, client)

    loaded = sorted(client.rows[f"{BRONZE}.pharmacy_order_placed"], key=lambda r: r["event_id"])
    with duckdb.connect() as con:
        expected = con.execute(
            "select event_id, cast(json_extract(event_json, '$.payload') as varchar), "
            "event_time, ingest_time from read_parquet(?) order by event_id",
            [str(parts[0])],
        ).fetchall()
    assert [r["event_id"] for r in loaded] == [e[0] for e in expected]
    # payload: DuckDB's extraction, the text the DuckDB views and the PostgreSQL loader give
    assert [r["payload"] for r in loaded] == [e[1] for e in expected]
    assert orjson.loads(loaded[1]["payload"]) == {
        "order_id": "O-1",
        "quantity": 1,
        "note": 'déjà "vu"',
    }
    # the same instants, now marked UTC (to the microsecond)
    assert [r["event_time"] for r in loaded] == [e[2].replace(tzinfo=UTC) for e in expected]
    assert loaded[0]["ingest_time"] == datetime(2024, 5, 2, 23, 59, 59, 999999, tzinfo=UTC)
    assert {r["event_version"] for r in loaded} == {1}
    assert {r["source_partition"] for r in loaded} == {None}


def test_a_batch_already_recorded_is_not_loaded_again(tmp_path: Path):
    _batch(tmp_path, "b1", {"pharmacy.order.placed": 3, "sales.sale.completed": 2})
    client = FakeBigQuery()
    _load(tmp_path, client)
    jobs = len(client.submitted)

    again = _load(tmp_path, client)
    assert again.batches_loaded == again.rows_loaded == 0
    assert again.batches_already_loaded == 1
    assert len(client.submitted) == jobs  # not even a job that would conflict
    assert _row_counts(client) == {"pharmacy_order_placed": 3, "sales_sale_completed": 2}

    _batch(tmp_path, "b2", {"sales.sale.completed": 4})
    more = _load(tmp_path, client)
    assert (more.batches_loaded, more.batches_already_loaded, more.rows_loaded) == (1, 1, 4)
    assert _marked(client) == ["b1", "b2"]
    assert _row_counts(client) == {"pharmacy_order_placed": 3, "sales_sale_completed": 6}


def test_a_crash_before_the_marker_does_not_double_the_rows(tmp_path: Path):
    """The data jobs ran, the process died before the marker: the next load submits the
    same job ids, BigQuery refuses them (Conflict), and the loader takes the earlier jobs'
    rows as loaded instead of appending them a second time."""
    _batch(tmp_path, "b1", {"pharmacy.order.placed": 3, "sales.sale.completed": 2})
    client = FakeBigQuery()
    client.crash_on_marker = True
    with pytest.raises(KeyboardInterrupt):
        _load(tmp_path, client)
    assert _marked(client) == []
    assert _row_counts(client) == {"pharmacy_order_placed": 3, "sales_sale_completed": 2}
    submitted = len(client.submitted)

    client.crash_on_marker = False
    result = _load(tmp_path, client)
    assert result.batches_loaded == 1
    assert result.rows_loaded == 5  # counted from the earlier jobs
    assert _row_counts(client) == {"pharmacy_order_placed": 3, "sales_sale_completed": 2}
    assert _marked(client) == ["b1"]
    assert len(client.submitted) == submitted + 1  # only the marker job is new


def test_a_failed_job_records_nothing_and_the_retry_takes_the_next_attempt(tmp_path: Path):
    _batch(tmp_path, "b1", {"pharmacy.order.placed": 3, "sales.sale.completed": 2})
    client = FakeBigQuery()
    client.failing.add("sales_sale_completed")
    with pytest.raises(PharmaflowError, match=r"failed.*nothing of the batch is marked loaded"):
        _load(tmp_path, client)
    assert _marked(client) == []
    failed = job_id(PROJECT, f"{PREFIX}_bronze", "sales_sale_completed", "b1", 1)
    assert client.jobs[failed].error_result is not None

    result = _load(tmp_path, client)
    assert result.batches_loaded == 1 and result.rows_loaded == 5
    assert _row_counts(client) == {"pharmacy_order_placed": 3, "sales_sale_completed": 2}
    assert _marked(client) == ["b1"]
    # attempt 1 of the failed table is taken (by the failed job): attempt 2 loaded it; the
    # other table's attempt 1 had succeeded and was not run again
    retried = job_id(PROJECT, f"{PREFIX}_bronze", "sales_sale_completed", "b1", 2)
    assert client.rows[f"{BRONZE}.{LOADED_TABLE}"][0]["job_ids"] == [
        job_id(PROJECT, f"{PREFIX}_bronze", "pharmacy_order_placed", "b1", 1),
        retried,
    ]
    destinations = [d for _, d, _ in client.submitted]
    assert destinations.count(f"{BRONZE}.pharmacy_order_placed") == 1


def test_a_job_another_loader_is_running_is_awaited_not_repeated(tmp_path: Path):
    _batch(tmp_path, "b1", {"sales.sale.completed": 2})
    client = FakeBigQuery()
    dataset = f"{PREFIX}_bronze"
    theirs = job_id(PROJECT, dataset, "sales_sale_completed", "b1", 1)

    def finish() -> int:  # the other loader's job appends the batch's rows as it finishes
        rows = [{"event_id": f"b1-{n}", "batch_id": "b1"} for n in range(2)]
        client.rows[f"{BRONZE}.sales_sale_completed"] += rows
        return len(rows)

    client.jobs[theirs] = FakeJob(theirs, 0, on_finish=finish)
    result = _load(tmp_path, client)
    assert result.rows_loaded == 2
    assert _row_counts(client) == {"sales_sale_completed": 2}
    assert [d for _, d, _ in client.submitted] == [f"{BRONZE}.{LOADED_TABLE}"]


def test_only_committed_batches_are_loaded(tmp_path: Path):
    _batch(tmp_path, "b1", {"sales.sale.completed": 2})
    _part(tmp_path, "sales.sale.completed", "crashed", 5)  # parts, no manifest: debris
    in_flight = _part(tmp_path, "pharmacy.order.placed", "committing", 4)
    manifest = _commit(tmp_path, "committing", [in_flight])
    manifest.rename(manifest.with_name(".tmp-committing.json"))  # the commit not done yet
    client = FakeBigQuery()

    result = _load(tmp_path, client)
    assert result.batches_loaded == 1
    assert _marked(client) == ["b1"]
    assert _row_counts(client) == {"sales_sale_completed": 2}


def test_a_torn_manifest_or_a_missing_part_leaves_the_batch_for_later(tmp_path: Path):
    _batch(tmp_path, "b1", {"sales.sale.completed": 2})
    torn = _batch(tmp_path, "b2", {"sales.sale.completed": 3})
    manifest = tmp_path / "_manifests" / "b2.json"
    whole = manifest.read_bytes()
    manifest.write_bytes(whole[: len(whole) // 2])
    gone = _batch(tmp_path, "b3", {"pharmacy.order.placed": 1, "sales.sale.completed": 1})
    gone[1].unlink()  # the manifest lists it: loading the rest would mark half a batch done
    client = FakeBigQuery()

    result = _load(tmp_path, client)
    assert result.batches_loaded == 1
    assert set(result.batches_skipped) == {"b2", "b3"}
    assert "manifest cannot be read" in result.batches_skipped["b2"]
    assert "1 bronze part(s)" in result.batches_skipped["b3"]
    assert _marked(client) == ["b1"]
    assert _row_counts(client) == {"sales_sale_completed": 2}

    manifest.write_bytes(whole)  # repaired: loads next time, once
    assert torn[0].exists()
    again = _load(tmp_path, client)
    assert again.batches_loaded == 1 and again.rows_loaded == 3
    assert _marked(client) == ["b1", "b2"]
    assert _row_counts(client) == {"sales_sale_completed": 5}


def test_an_unknown_event_type_gets_its_own_table_and_a_bad_name_stops_its_batch(
    tmp_path: Path,
):
    # a type no contract declares (an older lake, a newer ingest): loaded, as PostgreSQL does
    _batch(tmp_path, "b1", {"pharmacy.order.returned": 2, "sales.sale.completed": 1})
    # a directory no ingest writes, whose name cannot be a BigQuery table
    _batch(tmp_path, "b2", {"sales.sale.completed": 1, "x-y; drop": 1})
    client = FakeBigQuery()

    result = _load(tmp_path, client)
    assert f"{BRONZE}.pharmacy_order_returned" in client.tables
    assert result.types_refused == ["x-y; drop"]
    assert set(result.batches_skipped) == {"b2"}
    assert "cannot be a table name" in result.batches_skipped["b2"]
    assert _marked(client) == ["b1"]
    assert _row_counts(client) == {"pharmacy_order_returned": 2, "sales_sale_completed": 1}


def test_a_batch_without_bronze_rows_is_marked_with_none(tmp_path: Path):
    _commit(tmp_path, "all-quarantined", [])
    client = FakeBigQuery()
    result = _load(tmp_path, client)
    assert result.batches_loaded == 1 and result.rows_loaded == 0
    assert client.rows[f"{BRONZE}.{LOADED_TABLE}"][0]["row_count"] == 0
    assert [d for _, d, _ in client.submitted] == [f"{BRONZE}.{LOADED_TABLE}"]


def test_an_unreadable_part_fails_in_a_sentence_and_marks_nothing(tmp_path: Path):
    parts = _batch(tmp_path, "b1", {"sales.sale.completed": 2})
    parts[0].write_bytes(b"not parquet")
    client = FakeBigQuery()
    with pytest.raises(PharmaflowError, match="cannot read the bronze part"):
        _load(tmp_path, client)
    assert _marked(client) == [] and _row_counts(client) == {}


def test_the_build_loads_bronze_before_dbt_on_bigquery(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """runner.py calls the loader for the bigquery target, before dbt starts (and with the
    build's settings); a loader error stops the build."""
    from pharmaflow.warehouse import runner

    calls: list[Settings] = []

    def loader(given: Settings) -> None:
        calls.append(given)
        raise PharmaflowError("loader ran")

    def no_dbt(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("dbt must not start before bronze is loaded")

    monkeypatch.setattr(load_bigquery, "load_bronze", loader)
    monkeypatch.setattr(runner, "dbt_runner", lambda: no_dbt)
    on_bigquery = settings.model_copy(
        update={"warehouse_target": "bigquery", "bigquery_project": PROJECT}
    )
    with pytest.raises(PharmaflowError, match="loader ran"):
        runner.build(on_bigquery)
    assert calls == [on_bigquery]


def test_datasets_made_elsewhere_are_used_and_a_wrong_location_is_refused(tmp_path: Path):
    """Terraform may own the datasets (docs/deploy-gcp.md): found, they are not created again;
    found in another location than the settings', the load stops before any job."""
    _batch(tmp_path, "b1", {"sales.sale.completed": 1})
    client = FakeBigQuery()
    for layer in ("bronze", "silver", "gold", "reference"):
        made = bigquery.Dataset(f"{PROJECT}.{PREFIX}_{layer}")
        made.location = "eu"  # BigQuery's own spelling may differ in case
        client.datasets[made.dataset_id] = made
    assert _load(tmp_path, client).batches_loaded == 1

    elsewhere = FakeBigQuery()
    wrong = bigquery.Dataset(f"{PROJECT}.{PREFIX}_bronze")
    wrong.location = "US"
    elsewhere.datasets[wrong.dataset_id] = wrong
    with pytest.raises(PharmaflowError, match=r"is in location US.*LOCATION is EU"):
        _load(tmp_path, elsewhere)
    assert elsewhere.submitted == []
