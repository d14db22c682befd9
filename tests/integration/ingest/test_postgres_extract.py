"""The survey database extracted into bronze against the real PostgreSQL: exactly once,
incrementally, without raw PHI, and on into the warehouse like Kafka-borne surveys."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.pipeline import IngestEngine, IngestResult
from pharmaflow.ingest.sources import open_sources
from pharmaflow.lake.commits import CommitLog
from pharmaflow.serve.surveys import SurveyStore
from tests.conftest import env_with_keys
from tests.factories import PATIENT, event, jsonl
from tests.pg import PG_DSN, execute, scratch_schema, source_url
from tests.phi_scan import lake_strings, leaks

PHI_COMMENT = (
    "This is Zuleika Okonkwo, please call me at (415) 555-0134 or write to "
    "zuleika.okonkwo@example.com"
)


@pytest.fixture
def schema() -> Iterator[str]:
    with scratch_schema() as name:
        yield name


@pytest.fixture
def store(schema: str) -> Iterator[SurveyStore]:
    with SurveyStore(PG_DSN, schema) as s:
        s.ensure_schema()
        yield s


def survey(survey_id: str, **overrides: object) -> dict[str, object]:
    return {
        "survey_id": survey_id,
        "order_id": "ORD-1",
        "rating": 4,
        "nps": 9,
        "comment": "Arrived on time.",
        "submitted_at": "2026-11-02T12:00:00Z",
        **overrides,
    }


def ingest(settings: Settings, source: str) -> IngestResult:
    engine = IngestEngine(settings)
    return engine.run(open_sources(source, engine.registry))


def bronze(settings: Settings) -> pa.Table:
    """Survey rows of every committed bronze part (the parts manifests list), in seq order."""
    columns = ["event_id", "source", "source_uri", "source_partition", "source_offset"]
    tables = []
    for manifest in sorted(settings.lake_dir.glob("_manifests/*.json")):
        for rel in orjson.loads(manifest.read_bytes())["files"]:
            if "/bronze/event_type=feedback.survey.submitted/" in rel:
                tables.append(pq.read_table(settings.root / rel, columns=[*columns, "event_json"]))
    if not tables:
        return pa.table({c: [] for c in [*columns, "event_json"]})
    return pa.concat_tables(tables).sort_by("source_offset")


def seqs(schema: str) -> dict[str, int]:
    return dict(execute(f'select survey_id, seq from "{schema}".survey_responses'))


def test_extract_lands_every_row_once_then_nothing(settings, store, schema):
    store.submit_many(survey(f"S-{i:04d}") for i in range(1, 1_201))
    url = source_url(schema)
    first = ingest(settings.model_copy(update={"batch_size": 500}), url)
    assert (first.input, first.landed, first.duplicates, first.quarantined) == (1_200, 1_200, 0, 0)
    assert first.batches == 3 and first.conserved

    lake = bronze(settings)
    by_id = seqs(schema)
    assert lake["event_id"].to_pylist() == [f"survey-db:S-{i:04d}" for i in range(1, 1_201)]
    assert lake["source_offset"].to_pylist() == sorted(by_id.values())
    assert set(lake["source"].to_pylist()) == {"postgres"}
    assert set(lake["source_uri"].to_pylist()) == {f"{schema}.survey_responses"}
    assert set(lake["source_partition"].to_pylist()) == {0}
    sample = orjson.loads(lake["event_json"][0].as_py())
    assert sample["payload"] == {
        "survey_id": "S-0001",
        "order_id": "ORD-1",
        "rating": 4,
        "nps": 9,
        "comment": "Arrived on time.",
    }
    assert sample["event_time"] == "2026-11-02T12:00:00.000Z"
    # The bookmark is in the manifests: the highest seq landed for this table.
    marks = CommitLog(IngestEngine(settings).layout, []).landed_offsets()
    assert [v for (topic, _tid, _p), v in marks.items() if topic.startswith(schema)] == [
        max(by_id.values())
    ]

    again = ingest(settings, url)
    assert (again.input, again.landed, again.batches) == (0, 0, 0)
    assert bronze(settings).num_rows == 1_200


def test_rows_added_later_are_picked_up_incrementally(settings, store, schema):
    store.submit_many(survey(f"S-{i}") for i in range(1, 6))
    url = source_url(schema)
    assert ingest(settings, url).landed == 5
    store.submit_many([survey("S-6"), survey("S-7"), survey("S-3", rating=1)])  # S-3: refused
    later = ingest(settings, url)
    assert (later.input, later.landed, later.duplicates) == (2, 2, 0)
    assert bronze(settings)["event_id"].to_pylist() == [f"survey-db:S-{i}" for i in range(1, 8)]
    assert ingest(settings, url).input == 0


def test_a_crash_before_a_commit_replays_that_batch_and_nothing_before_it(
    settings, store, schema, monkeypatch
):
    store.submit_many(survey(f"S-{i:03d}") for i in range(1, 301))
    url = source_url(schema)
    small = settings.model_copy(update={"batch_size": 100})
    real_commit = CommitLog.commit
    calls: list[str] = []

    def crash_on_second(self: CommitLog, batch_id: str, manifest: dict[str, Any]) -> None:
        calls.append(batch_id)
        if len(calls) == 2:  # batch 2's parts are written, its manifest never is
            raise RuntimeError("power cut")
        real_commit(self, batch_id, manifest)

    monkeypatch.setattr(CommitLog, "commit", crash_on_second)
    with pytest.raises(RuntimeError, match="power cut"):
        ingest(small, url)
    monkeypatch.setattr(CommitLog, "commit", real_commit)
    assert bronze(settings).num_rows == 100  # only batch 1 is committed

    after = ingest(small, url)
    assert after.recovered_files > 0  # batch 2's debris is gone
    # Batch 1 is not read again (no duplicates); batches 2 and 3 land once.
    assert (after.input, after.landed, after.duplicates) == (200, 200, 0)
    ids = bronze(settings)["event_id"].to_pylist()
    assert ids == [f"survey-db:S-{i:03d}" for i in range(1, 301)]
    assert ingest(small, url).input == 0


def test_a_row_still_being_inserted_is_waited_for_not_skipped(settings, store, schema):
    store.submit(survey("S-1"))
    table = f'"{schema}".survey_responses'
    slow = psycopg.connect(PG_DSN)  # a transaction that took seq 2 and has not committed
    slow.execute(
        f"insert into {table} (survey_id, order_id, rating, nps, submitted_at) "
        "values ('S-slow', 'ORD-1', 3, 7, '2026-11-02T12:00:00Z')"
    )
    store.submit(survey("S-fast"))  # seq 3, committed and visible before seq 2
    assert seqs(schema) == {"S-1": 1, "S-fast": 3}
    url = source_url(schema)
    results: list[IngestResult] = []
    extract = threading.Thread(
        target=lambda: results.append(
            ingest(settings.model_copy(update={"ingest_workers": 0}), url)
        )
    )
    extract.start()
    time.sleep(1.5)
    assert extract.is_alive() and not results  # waiting for the slow transaction
    slow.commit()
    slow.close()
    extract.join(60)
    assert results and results[0].landed == 3
    assert bronze(settings)["event_id"].to_pylist() == [
        "survey-db:S-1",
        "survey-db:S-slow",
        "survey-db:S-fast",
    ]


def test_a_writer_that_stays_open_too_long_is_one_clear_line(settings, store, schema, monkeypatch):
    monkeypatch.setattr("pharmaflow.ingest.sources.postgres.LOCK_TIMEOUT_SECONDS", 1)
    store.submit(survey("S-1"))
    with psycopg.connect(PG_DSN) as slow:
        slow.execute(
            f'insert into "{schema}".survey_responses (survey_id, order_id, rating, nps, '
            "submitted_at) values ('S-slow', 'ORD-1', 3, 7, now())"
        )
        with pytest.raises(PharmaflowError, match=r"is busy: a transaction writing to it"):
            ingest(settings, source_url(schema))
        slow.rollback()
    assert bronze(settings).num_rows == 0
    assert ingest(settings, source_url(schema)).landed == 1


def test_a_recreated_table_is_read_from_its_start(settings, store, schema):
    store.submit_many([survey("S-1"), survey("S-2")])
    url = source_url(schema)
    assert ingest(settings, url).landed == 2
    execute(f'drop table "{schema}".survey_responses')
    with SurveyStore(PG_DSN, schema) as fresh:  # new OID, seq restarts at 1
        fresh.submit_many([survey("S-1"), survey("S-3")])
    assert seqs(schema) == {"S-1": 1, "S-3": 2}
    again = ingest(settings, url)
    # Its seq 1..2 are not taken for the old table's; S-1 is the same event, a duplicate.
    assert (again.input, again.landed, again.duplicates) == (2, 1, 1)
    ids = sorted(bronze(settings)["event_id"].to_pylist())
    assert ids == ["survey-db:S-1", "survey-db:S-2", "survey-db:S-3"]


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=300,
    )


def test_phi_in_comments_never_reaches_the_lake_or_the_logs(tmp_path, store, schema):
    data = tmp_path / "data"
    orders = tmp_path / "orders.jsonl"
    orders.write_bytes(jsonl([event("pharmacy.order.placed", key="ORD-1")]))
    assert run_cli(data, "ingest", "--source", str(orders)).returncode == 0
    store.submit_many(
        [
            survey("S-1", comment=PHI_COMMENT),
            survey("S-2", comment="Thank you Zuleika team!"),  # the patient's own first name
            survey("S-3", order_id="ORD-unknown", comment="Reach me at 415.555.0134"),
        ]
    )
    done = run_cli(data, "ingest", "--source", source_url(schema), "--json")
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert (result["landed"], result["quarantined"]) == (3, 0)

    # The raw comment is in the database (the system of record) ...
    assert execute(f'select comment from "{schema}".survey_responses where survey_id = %s', ["S-1"])
    # ... but nowhere in the lake (bronze, event index, vault tables) or the logs.
    values = {PATIENT["phone"], PATIENT["email"], "415.555.0134", "555-0134"}
    names = {PATIENT["first_name"], PATIENT["last_name"]}
    assert leaks(lake_strings(data / "lake"), values, names) == []
    assert leaks(lake_strings(data / "vault"), values, names) == []
    logs = [p.read_text() for p in (data / "logs").glob("*.log")]
    assert logs and leaks(logs, values, names) == []
    comments = {
        orjson.loads(e)["payload"]["survey_id"]: orjson.loads(e)["payload"]["comment"]
        for e in bronze(Settings(data_dir=data))["event_json"].to_pylist()
    }
    assert comments == {
        "S-1": "This is [NAME] [NAME], please call me at [PHONE] or write to [EMAIL]",
        "S-2": "Thank you [NAME] team!",
        "S-3": "Reach me at [PHONE]",
    }


@pytest.mark.parametrize(
    "source, message",
    [
        (f"{PG_DSN}", "needs ?table=SCHEMA.TABLE"),
        (f"{PG_DSN}?table=nowhere.survey_responses", "table nowhere.survey_responses not found"),
        (f"{PG_DSN}?table=pg_catalog.pg_class", "lacks column(s) seq, survey_id"),
        ("postgresql://127.0.0.1:1/test?table=survey_data.survey_responses", "cannot connect"),
    ],
)
def test_bad_urls_get_one_line(tmp_path, source, message):
    done = run_cli(tmp_path, "ingest", "--source", source)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pharmaflow: error:") and message in lines[0]


@pytest.mark.slow
def test_extracted_surveys_reach_the_warehouse(settings, store, schema, tmp_path):
    from pharmaflow.warehouse.runner import build

    orders = tmp_path / "orders.jsonl"
    orders.write_bytes(jsonl([event("pharmacy.order.placed", key="ORD-1")]))
    assert ingest(settings, str(orders)).landed == 1
    store.submit_many(
        [
            survey("S-1", rating=5, nps=10, comment=PHI_COMMENT),
            survey("S-2", rating=2, nps=3, comment=None, submitted_at="2026-11-03T08:30:00Z"),
        ]
    )
    assert ingest(settings, source_url(schema)).landed == 2
    built = build(settings)
    assert built.success and built.tests_failed == 0, built.failures
    assert built.tables.get("silver.feedback_survey_submitted") == 2
    # Default configuration, as `table_counts` does: dbt's in-process DuckDB is still open.
    with duckdb.connect(str(settings.warehouse_path)) as con:
        silver = con.sql("select * from silver.feedback_survey_submitted").to_arrow_table()
        rows = con.execute(
            "select event_id, survey_id, order_id, rating, nps, comment, event_time, source, "
            "source_system from silver.feedback_survey_submitted order by survey_id"
        ).fetchall()
    assert [r[:6] for r in rows] == [
        (
            "survey-db:S-1",
            "S-1",
            "ORD-1",
            5,
            10,
            "This is [NAME] [NAME], please call me at [PHONE] or write to [EMAIL]",
        ),
        ("survey-db:S-2", "S-2", "ORD-1", 2, 3, None),
    ]
    assert str(rows[1][6]) == "2026-11-03 08:30:00"
    assert {(r[7], r[8]) for r in rows} == {("postgres", "survey")}
    strings = [c.combine_chunks() for c in silver.columns if pa.types.is_string(c.type)]
    values = {PATIENT["phone"], PATIENT["email"]}
    assert leaks(strings, values, {PATIENT["first_name"], PATIENT["last_name"]}) == []
