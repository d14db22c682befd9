"""The survey store against the real PostgreSQL: schema, idempotent inserts, refusals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.surveys import InvalidSurvey, SubmitResult, SurveyStore, SurveySubmission
from tests.pg import PG_DSN, execute, scratch_schema

PHI_COMMENT = "This is Zuleika Okonkwo, call (415) 555-0134 or zuleika.okonkwo@example.com"


def survey(survey_id: str = "SRV-1", **overrides: object) -> dict[str, object]:
    return {
        "survey_id": survey_id,
        "order_id": "ORD-1",
        "rating": 4,
        "nps": 8,
        "comment": "Arrived on time.",
        "submitted_at": "2026-11-02T10:00:00.250Z",
        **overrides,
    }


def rows(schema: str) -> list[tuple]:
    return execute(
        f'select survey_id, order_id, rating, nps, comment, submitted_at, seq from "{schema}".'
        "survey_responses order by seq"
    )


@pytest.fixture
def survey_schema() -> Iterator[str]:
    with scratch_schema() as name:
        yield name


@pytest.fixture
def store(survey_schema):
    with SurveyStore(PG_DSN, survey_schema) as s:
        yield s


def test_first_use_creates_the_table_with_the_contract_rules(store, survey_schema):
    store.ensure_schema()
    columns = dict(
        execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = 'survey_responses'",
            [survey_schema],
        )
    )
    assert columns == {
        "survey_id": "text",
        "order_id": "text",
        "rating": "smallint",
        "nps": "smallint",
        "comment": "text",
        "submitted_at": "timestamp with time zone",
        "received_at": "timestamp with time zone",
        "seq": "bigint",
    }
    table = f'"{survey_schema}".survey_responses'
    insert = f"insert into {table} (survey_id, order_id, rating, nps, submitted_at) values "
    # The database itself refuses what the contract refuses, and hands out seq itself.
    for bad in ("('S', 'O', 6, 5, now())", "('S', 'O', 3, 11, now())", "('S', 'O', 0, 5, now())"):
        with pytest.raises(psycopg.errors.CheckViolation):
            execute(insert + bad)
    with pytest.raises(psycopg.errors.GeneratedAlways):
        execute(
            f"insert into {table} (survey_id, order_id, rating, nps, submitted_at, seq) "
            "values ('S', 'O', 3, 5, now(), 1)"
        )
    # A second store on the same schema finds the table there (DDL is idempotent).
    with SurveyStore(PG_DSN, survey_schema) as again:
        assert again.count() == 0


def test_the_same_survey_twice_is_stored_once(store, survey_schema):
    assert store.submit(survey()) == SubmitResult(new=1, duplicates=0)
    assert store.submit(survey()) == SubmitResult(new=0, duplicates=1)
    stored = rows(survey_schema)
    assert len(stored) == 1
    assert stored[0][:6] == (
        "SRV-1",
        "ORD-1",
        4,
        8,
        "Arrived on time.",
        datetime(2026, 11, 2, 10, 0, 0, 250_000, tzinfo=UTC),
    )


def test_a_conflicting_second_version_does_not_overwrite(store, survey_schema):
    store.submit(survey())
    second = store.submit(survey(rating=1, nps=0, comment="Changed my mind."))
    assert second == SubmitResult(new=0, duplicates=1, conflicts=("SRV-1",))
    assert [r[2:5] for r in rows(survey_schema)] == [(4, 8, "Arrived on time.")]


def test_a_batch_counts_new_duplicates_and_conflicts_in_chunks(survey_schema):
    with SurveyStore(PG_DSN, survey_schema, chunk_rows=1_000) as store:
        assert store.submit_many([survey("S-00001"), survey("S-00002")]).new == 2
        batch = [survey(f"S-{i:05d}") for i in range(1, 4_001)]  # 1 and 2 already there
        batch.insert(10, survey("S-00003"))  # repeated inside the batch, same content
        batch.insert(20, survey("S-00004", rating=1))  # repeated with other content
        batch.append(survey("S-00002", comment="other"))  # conflicts with a stored one
        result = store.submit_many(batch)
        assert result == SubmitResult(new=3_998, duplicates=5, conflicts=("S-00002", "S-00004"))
        assert result.submitted == len(batch)
        assert store.count() == 4_000
    stored = rows(survey_schema)
    # seq follows submission order, so the extract reads surveys in the order they came.
    assert [r[0] for r in stored] == [f"S-{i:05d}" for i in range(1, 4_001)]
    seqs = [r[6] for r in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_submitted_at_defaults_to_the_time_of_submission(store, survey_schema):
    before = datetime.now(UTC)
    store.submit({k: v for k, v in survey().items() if k != "submitted_at"})
    after = datetime.now(UTC)
    assert before - timedelta(seconds=1) <= rows(survey_schema)[0][5] <= after


def test_parallel_submitters_store_each_survey_once(survey_schema):
    SurveyStore(PG_DSN, survey_schema).ensure_schema()
    ids = [f"P-{i:04d}" for i in range(600)]
    results: list[SubmitResult] = []

    def submit(offset: int) -> None:
        with SurveyStore(PG_DSN, survey_schema, chunk_rows=50) as s:
            mine = ids[offset:] + ids[:offset]  # overlapping, in different orders
            results.append(s.submit_many(survey(i) for i in mine))

    threads = [threading.Thread(target=submit, args=(k * 150,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.new for r in results) == len(ids)
    assert sum(r.duplicates for r in results) == 3 * len(ids)
    assert all(r.conflicts == () for r in results)
    assert sorted(r[0] for r in rows(survey_schema)) == ids


@pytest.mark.parametrize(
    "overrides, fields",
    [
        ({"rating": 6}, ["rating"]),
        ({"rating": 0, "nps": 11}, ["rating", "nps"]),
        ({"rating": "5"}, ["rating"]),  # strict, as on the wire
        ({"nps": 7.5}, ["nps"]),
        ({"survey_id": "  "}, ["survey_id"]),
        ({"order_id": None}, ["order_id"]),
        ({"comment": "nul \x00 byte " + PHI_COMMENT}, ["comment"]),
        ({"submitted_at": "2026-11-02T10:00:00"}, ["submitted_at"]),  # no offset
        ({"submitted_at": "yesterday"}, ["submitted_at"]),
        ({"colour": "red"}, ["colour"]),  # not in the contract
    ],
)
def test_bad_input_is_refused_naming_the_field(store, survey_schema, overrides, fields):
    with pytest.raises(InvalidSurvey) as caught:
        store.submit(survey(**{"comment": PHI_COMMENT, **overrides}))
    assert caught.value.fields == fields
    message = str(caught.value)
    assert message.startswith("invalid survey: ") and all(f in message for f in fields)
    assert "555-0134" not in message and "Okonkwo" not in message  # never the input values
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert store.count() == 0


def test_missing_fields_are_named_and_a_bad_row_stores_nothing_of_its_batch(store):
    batch = [survey("S-1"), survey("S-2"), {"survey_id": "S-3", "order_id": "ORD-1"}]
    with pytest.raises(InvalidSurvey, match=r"^invalid survey #2: rating: .*; nps: "):
        store.submit_many(batch)
    assert store.count() == 0  # all or nothing
    with pytest.raises(InvalidSurvey, match="survey: must be an object"):
        store.submit(["S-1"])  # type: ignore[arg-type]


def test_the_model_holds_exactly_the_contract_fields():
    from pharmaflow.serve.surveys.model import CONTRACT_FIELDS

    assert CONTRACT_FIELDS == ("survey_id", "order_id", "rating", "nps", "comment")
    assert set(SurveySubmission.model_fields) == {*CONTRACT_FIELDS, "submitted_at"}
    ok = SurveySubmission.parse(survey(comment=None))
    assert (ok.rating, ok.nps, ok.comment) == (4, 8, None)


def test_an_unreachable_database_is_one_clear_line():
    with pytest.raises(PharmaflowError) as caught:
        SurveyStore("postgresql://postgres:s3cret@127.0.0.1:1/test").submit(survey())
    message = str(caught.value)
    assert message.startswith("cannot connect to the survey database (127.0.0.1:1/test): ")
    assert "\n" not in message and "s3cret" not in message


def test_no_row_content_is_logged(store, caplog):
    with caplog.at_level(logging.DEBUG):
        store.submit_many([survey("S-1", comment=PHI_COMMENT), survey("S-1", rating=1)])
    assert "new=1 duplicates=1 conflicts=1" in caplog.text
    for secret in ("Okonkwo", "555-0134", "example.com", "S-1", "ORD-1"):
        assert secret not in caplog.text
