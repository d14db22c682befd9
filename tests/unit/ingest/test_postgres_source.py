"""The PostgreSQL source without a server: URL parsing, rows as contract events, batch shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from psycopg import sql

from pharmaflow.contracts.registry import default_registry
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.decode import decode_json
from pharmaflow.ingest.sources import open_sources
from pharmaflow.ingest.sources.postgres import (
    PostgresSource,
    _Table,
    is_postgres_url,
    iso_millis,
    parse_postgres_url,
    survey_event,
)
from pharmaflow.ingest.validate import validate

SUBMITTED = datetime(2026, 11, 2, 10, 0, 0, 250_999, tzinfo=UTC)


def test_both_schemes_name_a_table_and_keep_other_libpq_parameters():
    spec = parse_postgres_url("postgresql://127.0.0.1:5432/test?table=survey_data.survey_responses")
    assert (spec.table, spec.where) == ("survey_data.survey_responses", "127.0.0.1:5432/test")
    assert spec.dsn == "postgresql://127.0.0.1:5432/test"
    assert spec.description == "postgresql://127.0.0.1:5432/test table=survey_data.survey_responses"
    other = parse_postgres_url(
        "postgres://reader:s3cret@db.internal/surveys?sslmode=require&table=survey_responses"
    )
    assert other.table == "survey_responses" and other.where == "db.internal:5432/surveys"
    assert other.dsn == "postgres://reader:s3cret@db.internal/surveys?sslmode=require"
    assert "s3cret" not in other.description and "s3cret" not in repr(other)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("postgresql://h:5432/db?table=t", True),
        ("POSTGRES://h/db?table=t", True),
        ("kafka://h:9092", False),
        ("/data/postgresql.jsonl", False),
    ],
)
def test_is_postgres_url(spec, expected):
    assert is_postgres_url(spec) is expected


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://127.0.0.1:5432/test", "needs ?table=SCHEMA.TABLE"),
        ("postgresql://127.0.0.1:5432/test?table=", "needs ?table=SCHEMA.TABLE"),
        ("postgresql://127.0.0.1:5432/test?table=a.b.c", "bad table name 'a.b.c'"),
        ("postgresql://127.0.0.1:5432/test?table=x;drop", "bad table name"),
        ("postgresql://u:s3cret@127.0.0.1:port/test?table=t", "bad port 'port'"),
        ("postgresql://u:s3cret@127.0.0.1:5432/test?table=t&colour=red", "colour"),
        ("mysql://127.0.0.1/test?table=t", "not a postgresql:// URL"),
    ],
)
def test_mistakes_are_one_line_without_the_password(url, message):
    with pytest.raises(PharmaflowError, match=re.escape(message)) as caught:
        parse_postgres_url(url)
    assert "\n" not in str(caught.value) and "s3cret" not in str(caught.value)


def test_open_sources_names_the_supported_schemes():
    with pytest.raises(PharmaflowError, match=r"kafka://, pubsub://, postgresql:// or files"):
        open_sources("nats://project/topic", default_registry())
    with pytest.raises(PharmaflowError, match="needs \\?table="):
        open_sources("postgresql://127.0.0.1:5432/test", default_registry())


def test_times_become_utc_milliseconds_with_z():
    assert iso_millis(SUBMITTED) == "2026-11-02T10:00:00.250Z"
    berlin = timezone(timedelta(hours=1))
    assert iso_millis(datetime(2026, 1, 1, 0, 30, tzinfo=berlin)) == "2025-12-31T23:30:00.000Z"
    assert iso_millis(datetime(2026, 1, 1, 0, 30)) == "2026-01-01T00:30:00.000Z"  # naive: UTC


def test_a_row_becomes_a_contract_envelope():
    event = orjson.loads(survey_event("SRV-9", "ORD-4", 5, 10, "Fast delivery", SUBMITTED))
    assert event == {
        "event_id": "survey-db:SRV-9",
        "event_type": "feedback.survey.submitted",
        "event_version": 1,
        "event_time": "2026-11-02T10:00:00.250Z",
        "source_system": "survey",
        "trace_id": None,
        "key": "SRV-9",
        "payload": {
            "survey_id": "SRV-9",
            "order_id": "ORD-4",
            "rating": 5,
            "nps": 10,
            "comment": "Fast delivery",
        },
    }
    # The same row always gives the same bytes (and so the same event id downstream).
    assert survey_event("SRV-9", "ORD-4", 5, 10, None, SUBMITTED) == survey_event(
        "SRV-9", "ORD-4", 5, 10, None, SUBMITTED
    )


def test_rows_pass_the_contract_validator_and_bad_rows_are_caught_by_it():
    records = [
        survey_event("S-1", "O-1", 1, 0, None, SUBMITTED),
        survey_event("S-2", "O-1", 5, 10, "Thank you, call me at 415-555-0134", SUBMITTED),
        survey_event("S-3", "O-1", 9, 10, None, SUBMITTED),  # a table without the checks
        survey_event("S-4", "O-1", 3, 3, None, None),  # a nullable submitted_at
    ]
    v = validate(decode_json(records), default_registry())
    assert v.rejects.ok.tolist() == [True, True, False, False]
    assert v.rejects.field.tolist()[2:] == ["payload.rating", "event_time"]


def test_a_batch_carries_seq_as_offsets_and_the_bookmark_range():
    source = PostgresSource(parse_postgres_url("postgresql://h:5432/db?table=s.t"))
    table = _Table(ident=sql.Identifier("s", "t"), topic="s.t", topic_id="42/db/16384", oid=16384)
    rows = [
        (7, "S-7", "O-1", 4, 8, "ok", SUBMITTED),
        (9, "S-9", "O-2", 2, 3, None, SUBMITTED),
    ]
    batch = source._batch(table, rows)
    assert batch.batch_id == "files~pg-16384-7-9"
    assert (batch.source, batch.source_uri) == ("postgres", "postgresql://h:5432/db")
    assert batch.offsets.tolist() == [7, 9] and batch.partitions.tolist() == [0, 0]
    assert batch.topics == ["s.t", "s.t"] and batch.keys == [b"S-7", b"S-9"]
    assert batch.offset_ranges == [["s.t", "42/db/16384", 0, 7, 9]]
    assert [orjson.loads(r)["event_id"] for r in batch.records] == [
        "survey-db:S-7",
        "survey-db:S-9",
    ]
    assert batch.replayed == 0 and not batch.tick and batch.raw_is_json
