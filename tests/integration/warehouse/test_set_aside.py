"""A build that bad bronze cannot hold hostage: rows that break a rule are set aside.

Older ingest versions let through events today's validator refuses. They sit in immutable
bronze, so they are written here the way such a version would have landed them: bronze parts
and a batch commit through the lake's own writers (`write_bronze`, `CommitLog.commit`). The
lake also holds the simulated week (every fault knob on), ingested as usual.

One scenario, built three times (module-scoped): the first build, an incremental build through
the CLI after more good events and a second legacy batch (repeats of set-aside events, one new
bad event), then a full refresh, which must give the same silver, `_rejected` and gold.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.lake.bronze import BRONZE_SCHEMA, write_bronze
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.warehouse.runner import BuildResult, build
from tests.conftest import TEST_KEYS, env_with_keys
from tests.integration.warehouse.test_incremental_build import differences

pytestmark = pytest.mark.slow

GOLD_TABLES = {
    "daily_order_summary", "daily_pharmacy_order_summary", "dim_carrier", "dim_date",
    "dim_equipment", "dim_facility", "dim_lot", "dim_patient", "dim_payer", "dim_product",
    "fact_batch_production", "fact_deviation", "fact_order_lifecycle", "fact_sales_daily",
    "fact_shipment", "fact_shipment_temperature_hourly", "fact_survey", "kpi_carrier_on_time",
    "kpi_fulfilment", "kpi_nps", "kpi_quality", "lot_genealogy",
}  # fmt: skip


def ingest(settings: Settings, path: Path) -> None:
    engine = IngestEngine(settings)
    engine.run(open_sources(str(path), engine.registry))


def bronze_rows(settings: Settings, event_type: str, limit: int) -> list[dict[str, Any]]:
    """Good landed rows of a type (their event_json), to derive legacy events from."""
    glob = settings.lake_dir / "bronze" / f"event_type={event_type}" / "**" / "*.parquet"
    with duckdb.connect() as con:
        rows = con.execute(
            f"select event_json from read_parquet('{glob}') order by event_id limit {limit}"
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


def legacy_batch(settings: Settings, batch_id: str, events: list[tuple[dict, str | None]]) -> None:
    """Land events as an old ingest version would have: its bronze rows and its commit, with
    no validation. Each event is (envelope dict, raw JSON text or None for json.dumps)."""
    ingest_time = datetime.now(UTC).replace(tzinfo=None)
    cols: dict[str, list[Any]] = {name: [] for name in BRONZE_SCHEMA.names}
    for offset, (event, raw) in enumerate(sorted(events, key=lambda e: e[0]["event_type"]), 1):
        event_time = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
        row = {
            "event_id": event["event_id"],
            "event_type": event["event_type"],
            "event_version": event["event_version"],
            "event_time": event_time.astimezone(UTC).replace(tzinfo=None),
            "source_system": event["source_system"],
            "trace_id": event.get("trace_id"),
            "key": event["key"],
            "event_json": raw if raw is not None else json.dumps(event),
            "ingest_time": ingest_time,
            "source": "file",
            "source_uri": f"legacy/{batch_id}.jsonl",
            "source_partition": None,
            "source_offset": offset,
            "batch_id": batch_id,
        }
        for name in BRONZE_SCHEMA.names:
            cols[name].append(row[name])
    layout = LakeLayout(settings.lake_dir)
    files = write_bronze(layout, pa.table(cols, schema=BRONZE_SCHEMA), ingest_time, batch_id)
    CommitLog(layout, []).commit(
        batch_id,
        {
            "source": "file",
            "source_uri": f"legacy/{batch_id}.jsonl",
            "ingest_time": ingest_time.isoformat(),
            "files": [str(p.relative_to(settings.lake_dir.parent)) for p in files],
        },
    )


def with_id(event: dict, event_id: str, **envelope: Any) -> dict:
    return {**json.loads(json.dumps(event)), "event_id": event_id, **envelope}


def bad_events(settings: Settings) -> dict[str, tuple[tuple[dict, str | None], str, str]]:
    """One event per case: name -> ((event, raw text), silver model, expected rule)."""
    shipment = bronze_rows(settings, "logistics.shipment.created", 1)[0]
    survey = bronze_rows(settings, "feedback.survey.submitted", 3)
    placed = bronze_rows(settings, "pharmacy.order.placed", 1)[0]
    filled = bronze_rows(settings, "pharmacy.order.filled", 1)[0]
    sale = bronze_rows(settings, "sales.sale.completed", 2)
    batch = bronze_rows(settings, "manufacturing.batch.status", 1)[0]

    null_lot = with_id(shipment, "legacy-null-lot")
    null_lot["payload"]["lot_numbers"] = [*null_lot["payload"]["lot_numbers"], None]
    huge_nps = with_id(survey[0], "legacy-huge-nps")
    huge_nps["payload"]["nps"] = 2**40  # beyond INTEGER: DuckDB reads null
    huge_quantity = with_id(placed, "legacy-huge-quantity")
    huge_quantity["payload"]["quantity"] = 2**40
    no_lot = with_id(filled, "legacy-no-lot")
    del no_lot["payload"]["lot_number"]
    in_1970 = with_id(sale[0], "legacy-1970", event_time="1970-01-01T00:00:00Z")
    in_2999 = with_id(sale[1], "legacy-2999", event_time="2999-06-01T00:00:00Z")
    bad_status = with_id(batch, "legacy-bad-status")
    bad_status["payload"]["status"] = "MISPLACED"
    rating_zero = with_id(survey[1], "legacy-rating-0")
    rating_zero["payload"]["rating"] = 0
    repeated = with_id(survey[2], "legacy-repeated-key")
    repeated["payload"]["rating"] = 5
    text = json.dumps(repeated)
    # Python (the validator) reads the last copy (3); DuckDB the first (5)
    repeated_raw = text.replace('"rating": 5', '"rating": 5, "rating": 3', 1)
    assert repeated_raw != text
    # the whole payload twice: bronze's json_extract reads the first, the validator the last
    twice = with_id(survey[0], "legacy-repeated-payload")
    first_copy = json.dumps({**twice["payload"], "rating": 99})
    twice_raw = json.dumps(twice).replace('"payload": ', f'"payload": {first_copy}, "payload": ', 1)
    return {
        "null_lot": ((null_lot, None), "silver_logistics_shipment_created", "null_list_element"),
        "huge_nps": ((huge_nps, None), "silver_feedback_survey_submitted", "unreadable_value"),
        "huge_quantity": (
            (huge_quantity, None),
            "silver_pharmacy_order_placed",
            "unreadable_value",
        ),
        "no_lot": ((no_lot, None), "silver_pharmacy_order_filled", "missing_value"),
        "in_1970": ((in_1970, None), "silver_sales_sale_completed", "outside_calendar"),
        "in_2999": ((in_2999, None), "silver_sales_sale_completed", "outside_calendar"),
        "bad_status": (
            (bad_status, None),
            "silver_manufacturing_batch_status",
            "not_accepted_value",
        ),
        "rating_zero": ((rating_zero, None), "silver_feedback_survey_submitted", "out_of_range"),
        "repeated_payload": (
            (twice, twice_raw),
            "silver_feedback_survey_submitted",
            "duplicate_key",
        ),
        "repeated_key": (
            (repeated, repeated_raw),
            "silver_feedback_survey_submitted",
            "duplicate_key",
        ),
    }


def snapshot(settings: Settings, into: Path) -> Path:
    shutil.copyfile(settings.warehouse_path, into)
    return into


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def cli_build(settings: Settings) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pharmaflow",
            "--data-dir",
            str(settings.data_dir),
            "build",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def scenario(
    faulty_input: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("set_aside")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in TEST_KEYS.items():
            mp.setenv(name, value)
        settings = Settings(data_dir=root / "data", batch_size=5_000, late_lookback_hours=0)
        source, _ = faulty_input
        lines = source.read_bytes().splitlines(keepends=True)
        cut = len(lines) * 3 // 4
        head, tail = root / "head.jsonl", root / "tail.jsonl"
        head.write_bytes(b"".join(lines[:cut]))
        tail.write_bytes(b"".join(lines[cut:]))

        ingest(settings, head)
        cases = bad_events(settings)
        legacy_batch(settings, "legacy-1", [event for event, _, _ in cases.values()])
        first = build(settings)
        first_db = snapshot(settings, root / "first.duckdb")

        # more good events; then a later legacy batch repeating two set-aside events (one
        # exact copy, one clean copy of the same event_id) and one new bad event
        ingest(settings, tail)
        clean_copy = with_id(cases["huge_nps"][0][0], "legacy-huge-nps")
        clean_copy["payload"]["nps"] = 7
        new_bad = with_id(cases["no_lot"][0][0], "legacy-no-lot-2")
        legacy_batch(
            settings,
            "legacy-2",
            [cases["null_lot"][0], (clean_copy, None), (new_bad, None)],
        )
        second = cli_build(settings)
        second_db = snapshot(settings, root / "second.duckdb")

        full = build(settings, full_refresh=True)
        full_db = snapshot(settings, root / "full.duckdb")
        yield {
            "cases": cases,
            "first": first,
            "first_db": first_db,
            "second": second,
            "second_db": second_db,
            "full": full,
            "full_db": full_db,
        }


def rejected(path: Path) -> list[tuple]:
    return query(
        path,
        "select event_id, model, rule, reason, ingest_batch_id from silver._rejected order by 1",
    )


def test_a_lake_with_bad_events_builds_green_and_sets_them_aside(scenario):
    first: BuildResult = scenario["first"]
    assert first.success, first.failures
    assert first.tests_failed == 0 and first.failures == []
    expected = {
        event["event_id"]: (model, rule) for (event, _), model, rule in scenario["cases"].values()
    }
    got = {r[0]: (r[1], r[2]) for r in rejected(scenario["first_db"])}
    assert got == expected
    for _event_id, _model, _rule, reason, batch in rejected(scenario["first_db"]):
        assert batch == "legacy-1"
        assert reason and "MISPLACED" not in reason and "1099511627776" not in reason
    # none of them reached silver
    silver = query(
        scenario["first_db"],
        "select count(*) from silver.feedback_survey_submitted where event_id like 'legacy-%'",
    )
    assert silver == [(0,)]


def test_gold_is_whole_and_holds_the_good_events(scenario):
    db = scenario["first_db"]
    tables = {
        t
        for (t,) in query(
            db, "select table_name from information_schema.tables where table_schema = 'gold'"
        )
    }
    assert tables >= GOLD_TABLES
    surveys = query(
        db,
        "select (select count(*) from gold.fact_survey), "
        "(select count(distinct survey_id) from silver.feedback_survey_submitted)",
    )[0]
    assert surveys[0] == surveys[1] > 0
    assert query(db, "select count(*) from gold.kpi_nps where responses > 0")[0][0] > 0
    lots = query(
        db,
        "select count(*) from (select distinct lot from silver.logistics_shipment_created, "
        "unnest(lot_numbers) as t(lot)) l where lot not in (select lot_number from gold.dim_lot)",
    )
    assert lots == [(0,)]


def test_the_summary_reports_rows_set_aside_per_model_and_rule(scenario):
    first: BuildResult = scenario["first"]
    counts = {(s.model, s.rule): s.rows for s in first.set_aside}
    assert counts[("silver_feedback_survey_submitted", "unreadable_value")] == 1
    assert counts[("silver_feedback_survey_submitted", "duplicate_key")] == 2
    assert counts[("silver_sales_sale_completed", "outside_calendar")] == 2
    assert first.rows_set_aside == len(scenario["cases"])
    second = scenario["second"]
    assert second["success"] and second["full_refresh"] is False
    assert second["rows_set_aside"] == len(scenario["cases"]) + 1
    assert {
        "table": "silver._rejected",
        "model": "silver_pharmacy_order_filled",
        "rule": "missing_value",
        "rows": 2,
    } in second["set_aside"]


def test_a_rebuild_appends_only_new_set_aside_events(scenario):
    second = scenario["second"]
    assert second["tests_failed"] == 0, second["failures"]
    before = rejected(scenario["first_db"])
    after = rejected(scenario["second_db"])
    # the earlier rows unchanged (still from legacy-1), once each; one new row
    assert [r for r in after if r[0] != "legacy-no-lot-2"] == before
    new = [r for r in after if r[0] == "legacy-no-lot-2"]
    assert [(r[2], r[4]) for r in new] == [("missing_value", "legacy-2")]
    # the clean copy of a set-aside event stays out of silver, as a full refresh decides
    assert query(
        scenario["second_db"],
        "select count(*) from silver.feedback_survey_submitted where event_id = 'legacy-huge-nps'",
    ) == [(0,)]
    # the batch whose every row was set aside is not read again: the second build's snapshot
    # of batches to read (taken when it started) holds legacy-2's types, not legacy-1
    unread = query(
        scenario["second_db"],
        "select batch_id, count(*) from bronze._unread_batches "
        "where batch_id like 'legacy-%' group by 1",
    )
    assert unread == [("legacy-2", 3)]


def test_incremental_equals_full_refresh_with_set_aside_rows(scenario):
    full: BuildResult = scenario["full"]
    assert full.success and full.tests_failed == 0, full.failures
    for schema in ("silver", "gold"):
        diff = differences(scenario["second_db"], scenario["full_db"], schema)
        assert {name: d for name, d in diff.items() if d[1] or d[2]} == {}, schema
    assert rejected(scenario["second_db"]) == rejected(scenario["full_db"])
