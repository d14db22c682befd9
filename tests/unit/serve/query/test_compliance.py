"""The compliance queries on the served data dir, checked against gold.fact_deviation queried
directly: counts by severity add up, ages count to the newest manufacturing event,
investigation statistics are those of the closed deviations, pages cover every deviation."""

from __future__ import annotations

import statistics

import pytest

from pharmaflow.serve.query import compliance
from pharmaflow.serve.query.base import BadCursor, Filters, Page, encode_cursor
from tests.unit.serve.query.snapshot_sql import scalar, sql


def test_open_deviations_add_up_to_fact_deviation(ctx):
    total = scalar(ctx, "select count(*) from gold.fact_deviation")
    still_open = scalar(ctx, "select count(*) from gold.fact_deviation where is_open")
    assert total > 0 and still_open > 0
    found = compliance.open_deviations(ctx, Filters())
    assert found["total"] == total == sum(r["deviations"] for r in found["by_severity"])
    assert found["open"] == still_open == sum(r["open"] for r in found["by_severity"])
    assert sum(r["open"] for r in found["by_age"]) == still_open
    for row in found["by_severity"]:
        assert row["open"] + row["closed"] == row["deviations"]
    expected = dict(
        sql(
            ctx,
            "select coalesce(severity, 'UNKNOWN'), count(*) from gold.fact_deviation group by 1",
        )
    )
    assert {r["severity"]: r["deviations"] for r in found["by_severity"]} == expected
    # a complete grid: every known severity and age bucket, zeros included
    cells = {(r["severity"], r["age_bucket"]) for r in found["by_age"]}
    assert {(s, b) for s in compliance.SEVERITIES for b in compliance.AGE_BUCKETS} <= cells


def test_ages_count_to_the_newest_manufacturing_event(ctx):
    newest = scalar(
        ctx,
        "select greatest(max(b.status_changed_at), (select max(opened_at) from "
        "gold.fact_deviation), (select max(closed_at) from gold.fact_deviation)) "
        "from gold.fact_batch_production as b",
    )
    found = compliance.open_deviations(ctx, Filters())
    assert found["as_of"].replace(tzinfo=None) == newest
    opened = [r[0] for r in sql(ctx, "select opened_at from gold.fact_deviation where is_open")]
    oldest = max(round((newest - t).total_seconds() / 86400, 2) for t in opened)
    assert max(r["oldest_open_days"] or 0 for r in found["by_severity"]) == pytest.approx(
        oldest, abs=0.01
    )


def test_deviation_pages_cover_every_deviation_once(ctx):
    expected = [r[0] for r in sql(ctx, "select deviation_id from gold.fact_deviation order by 1")]
    items, cursor = [], None
    while True:
        page = compliance.deviations(ctx, Filters(), Page(cursor=cursor, limit=1))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d["deviation_id"] for d in items] == expected
    open_ids = {
        r[0] for r in sql(ctx, "select deviation_id from gold.fact_deviation where is_open")
    }
    page = compliance.deviations(ctx, Filters(), Page(limit=500), open_only=True)
    assert {d["deviation_id"] for d in page["items"]} == open_ids
    for d in page["items"]:
        assert d["is_open"] and d["closed_at"] is None and d["age_days"] is not None
    for cursor in ("%%%", encode_cursor([7]), encode_cursor([["DEV"]])):
        with pytest.raises(BadCursor):
            compliance.deviations(ctx, Filters(), Page(cursor=cursor))


def test_deviation_filters_use_the_batch_site_and_the_opening_day(ctx):
    rows = sql(
        ctx,
        "select d.deviation_id, b.site_id, cast(d.opened_at as date) from gold.fact_deviation d "
        "join gold.fact_batch_production b using (batch_id) order by 1",
    )
    deviation_id, site, day = rows[0]
    same = {r[0] for r in rows if r[1] == site and r[2] == day}
    page = compliance.deviations(
        ctx, Filters(date_from=day, date_to=day, site_id=site), Page(limit=500)
    )
    assert {d["deviation_id"] for d in page["items"]} == same
    assert deviation_id in same
    counts = compliance.open_deviations(ctx, Filters(site_id=site))
    assert counts["total"] == sum(1 for r in rows if r[1] == site)


def test_investigation_times_are_those_of_the_closed_deviations(ctx):
    days = [
        float(r[0])
        for r in sql(
            ctx,
            "select investigation_days from gold.fact_deviation "
            "where not is_open and investigation_days is not null",
        )
    ]
    assert days
    found = compliance.investigation_times(ctx, Filters())
    overall = found["by_severity"][0]
    assert overall["severity"] == "ALL"
    assert overall["closed"] == len(days)
    assert overall["mean_days"] == pytest.approx(statistics.mean(days), abs=0.006)
    assert overall["p50_days"] == pytest.approx(statistics.median(days), abs=0.006)
    assert overall["min_days"] == min(days) and overall["max_days"] == max(days)
    per_severity = [r for r in found["by_severity"] if r["severity"] != "ALL"]
    assert sum(r["closed"] for r in per_severity) == len(days)
    assert sum(r["deviations"] for r in found["distribution"]) == len(days)
    assert {r["bucket"] for r in found["distribution"]} <= set(compliance.DURATION_BUCKETS)


def test_capas_are_the_closures_that_raised_one(ctx):
    closed, with_capa = sql(
        ctx,
        "select count(*) filter (where not is_open), count(*) filter (where has_capa) "
        "from gold.fact_deviation",
    )[0]
    found = compliance.capas(ctx, Filters())
    assert sum(r["closed"] for r in found["summary"]) == closed
    assert sum(r["with_capa"] for r in found["summary"]) == with_capa == len(found["items"])
    for row in found["summary"]:
        assert row["capa_rate"] == round(row["with_capa"] / row["closed"], 4)
    for item in found["items"]:
        assert item["capa_id"]
