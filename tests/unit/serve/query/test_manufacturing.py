"""The plant queries on the served data dir, checked against SQL run directly on the snapshot
and against gold.kpi_quality: batch counts, a batch's record, pass rates, failures, yields,
utilisation, sensor trends (bounded, conserving readings) and keyset pages."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest

from pharmaflow.serve.query import manufacturing
from pharmaflow.serve.query.base import BadCursor, Filters, Page, QueryContext, encode_cursor
from tests.unit.serve.query.snapshot_sql import scalar, sql


def all_pages(fetch, limit: int) -> tuple[list[dict[str, Any]], int]:
    items, cursor, pages = [], None, 0
    while True:
        page = fetch(Page(cursor=cursor, limit=limit))
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


def kpi(ctx: QueryContext, site: str | None = None) -> dict[str, Any]:
    where = "scope = 'ALL'" if site is None else f"scope = 'SITE' and site_id = '{site}'"
    with ctx.reading() as q:
        return q.rows("test_kpi", f"select * from gold.kpi_quality where {where}")[0]


def test_batch_pages_concatenate_to_every_batch_once(ctx):
    total = scalar(ctx, "select count(*) from gold.fact_batch_production")
    assert total > 20
    items, pages = all_pages(lambda p: manufacturing.batches(ctx, Filters(), p), limit=7)
    ids = [i["batch_id"] for i in items]
    assert len(ids) == total == len(set(ids))
    assert ids == sorted(ids)
    assert pages == -(-total // 7)


def test_batch_filters_select_what_sql_selects(ctx):
    flags = dict(
        sql(ctx, "select quality_flag, count(*) from gold.fact_batch_production group by 1")
    )
    for flag, count in flags.items():
        page = manufacturing.batches(ctx, Filters(), Page(limit=500), flag)
        assert len(page["items"]) == count
        assert {i["quality_flag"] for i in page["items"]} == {flag}
    first = scalar(ctx, "select min(started_at) from gold.fact_batch_production").date()
    filters = Filters(
        date_from=first + timedelta(days=1), date_to=first + timedelta(days=3), site_id="PL-02"
    )
    expected = scalar(
        ctx,
        "select count(*) from gold.fact_batch_production where site_id = 'PL-02' "
        "and started_at >= ? and started_at < ?",
        [filters.date_from, filters.date_to + timedelta(days=1)],
    )
    got = manufacturing.batches(ctx, filters, Page(limit=500))["items"]
    assert len(got) == expected > 0
    assert {i["site_id"] for i in got} == {"PL-02"}


def test_a_bad_cursor_is_refused(ctx):
    with pytest.raises(BadCursor):
        manufacturing.batches(ctx, Filters(), Page(cursor="not-a-cursor"))
    # decodable, but not a key of this list: refused before DuckDB compares text with it
    for key in ([1], [True], [[1, 2]], [{"a": 1}], ["BT", "extra"]):
        with pytest.raises(BadCursor):
            manufacturing.batches(ctx, Filters(), Page(cursor=encode_cursor(key)))


def test_batch_detail_is_the_batch_record(ctx):
    batch_id = scalar(
        ctx,
        "select batch_id from gold.fact_batch_production where lab_tests_failed > 0 "
        "order by batch_id limit 1",
    )
    fact = dict(
        zip(
            ["quality_flag", "lab_tests", "lab_failed", "readings", "out_of_spec", "deviations"],
            sql(
                ctx,
                "select quality_flag, lab_tests, lab_tests_failed, sensor_readings, "
                "sensor_out_of_spec, deviations from gold.fact_batch_production "
                "where batch_id = ?",
                [batch_id],
            )[0],
            strict=True,
        )
    )
    detail = manufacturing.batch_detail(ctx, batch_id)
    assert detail is not None and detail["in_warehouse"]
    assert detail["status"]["quality_flag"] == fact["quality_flag"] == "REJECTED"
    assert sum(s["readings"] for s in detail["sensors"]) == fact["readings"]
    assert sum(s["out_of_spec"] for s in detail["sensors"]) == fact["out_of_spec"]
    assert {s["sensor_type"] for s in detail["sensors"]} <= {
        "TEMPERATURE",
        "HUMIDITY",
        "PRESSURE",
        "VIBRATION",
    }
    assert len(detail["lab_results"]) == fact["lab_tests"]
    failed = [r for r in detail["lab_results"] if r["outcome"] == "FAIL"]
    assert len(failed) == fact["lab_failed"]
    devs = {
        r[0]
        for r in sql(
            ctx, "select deviation_id from gold.fact_deviation where batch_id = ?", [batch_id]
        )
    }
    assert {d["deviation_id"] for d in detail["deviations"]} == devs
    assert len(devs) == fact["deviations"]
    # the speed layer ran over the same events: it saw the same failures and sensors
    live = detail["live"]
    assert live is not None
    assert {f["test_id"] for f in live["lab_failures"]} == {r["test_id"] for r in failed}
    assert {s["sensor_id"] for s in live["sensors"]} == {s["sensor_id"] for s in detail["sensors"]}


def test_an_unknown_batch_is_none(ctx):
    assert manufacturing.batch_detail(ctx, "BT-NOPE-000000-00") is None
    assert manufacturing.batch_known(ctx, "BT-NOPE-000000-00") is False
    assert manufacturing.sensor_trend(ctx, "BT-NOPE-000000-00") == []


def test_pass_rate_trend_adds_up_to_kpi_quality(ctx):
    trend = manufacturing.pass_rate_trend(ctx, Filters())
    everything = kpi(ctx)
    assert sum(r["batches_finished"] for r in trend) == everything["finished_batches"]
    assert sum(r["released"] for r in trend) == everything["releasable_batches"]
    for row in trend:
        assert row["batch_pass_rate"] == round(row["released"] / row["batches_finished"], 4)
        assert row["released"] + row["rejected"] + row["review"] == row["batches_finished"]
    by_site = defaultdict(int)
    for row in trend:
        by_site[row["site_id"]] += row["batches_finished"]
    for site, finished in by_site.items():
        assert finished == kpi(ctx, site)["finished_batches"]
        only = manufacturing.pass_rate_trend(ctx, Filters(site_id=site))
        assert sum(r["batches_finished"] for r in only) == finished
    day = trend[len(trend) // 2]["day"]
    one_day = manufacturing.pass_rate_trend(ctx, Filters(date_from=day, date_to=day))
    assert {r["day"] for r in one_day} == {day}
    assert sum(r["batches_finished"] for r in one_day) == sum(
        r["batches_finished"] for r in trend if r["day"] == day
    )


def test_recent_failures_are_failed_runs_and_failed_lab_results(ctx):
    failed_runs = scalar(
        ctx, "select count(*) from gold.fact_batch_production where final_status = 'FAILED'"
    )
    failed_labs = scalar(
        ctx, "select count(*) from silver.manufacturing_lab_result where outcome = 'FAIL'"
    )
    rows = manufacturing.recent_failures(ctx, Filters(), limit=500)
    kinds = Counter(r["kind"] for r in rows)
    assert kinds == Counter({"BATCH_FAILED": failed_runs, "LAB_FAIL": failed_labs})
    assert failed_runs + failed_labs > 0
    times = [r["failed_at"] for r in rows]
    assert times == sorted(times, reverse=True)
    for row in rows:
        assert row["detail"]
        if row["kind"] == "LAB_FAIL":
            assert row["test_name"] in row["detail"]
    assert len(manufacturing.recent_failures(ctx, Filters(), limit=1)) == 1


def test_yield_by_equipment_matches_the_batches(ctx):
    rows = manufacturing.yield_by_equipment(ctx, Filters())
    expected = dict(
        (eq, (n, avg))
        for eq, n, avg in sql(
            ctx,
            "select equipment_id, count(*), round(avg(yield_pct), 2) "
            "from gold.fact_batch_production where yield_pct is not null "
            "and not coalesce(yield_set_aside, false) and equipment_id is not null group by 1",
        )
    )
    assert {r["equipment_id"]: (r["batches"], r["avg_yield_pct"]) for r in rows} == {
        eq: (n, float(avg)) for eq, (n, avg) in expected.items()
    }
    for row in rows:
        assert row["min_yield_pct"] <= row["avg_yield_pct"] <= row["max_yield_pct"]


def test_utilisation_without_filters_is_kpi_qualitys(ctx):
    rows = manufacturing.equipment_utilisation(ctx, Filters())
    equipment = scalar(ctx, "select count(*) from gold.dim_equipment")
    assert len(rows) >= equipment
    everything = kpi(ctx)
    assert {r["period_hours"] for r in rows} == {float(everything["observed_hours"])}
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_site[row["site_id"]].append(row)
    for site, items in by_site.items():
        site_kpi = kpi(ctx, site)
        busy = sum(r["busy_hours"] for r in items)
        assert busy == pytest.approx(float(site_kpi["equipment_busy_hours"]), abs=0.01 * len(items))
        share = busy / (len(items) * items[0]["period_hours"])
        assert share == pytest.approx(float(site_kpi["equipment_utilisation"]), abs=1e-3)
    started = scalar(
        ctx,
        "select count(*) from gold.fact_batch_production "
        "where started_at is not null and equipment_id is not null",
    )
    assert sum(r["batches"] for r in rows) == started


def test_utilisation_over_one_day_counts_that_day(ctx):
    first = scalar(ctx, "select min(started_at) from gold.fact_batch_production").date()
    day = first + timedelta(days=2)  # a whole day inside the observed window
    rows = manufacturing.equipment_utilisation(ctx, Filters(date_from=day, date_to=day))
    assert {r["period_hours"] for r in rows} == {24.0}
    for row in rows:
        assert 0 <= row["busy_hours"] <= 24.0 + 0.01
        assert row["utilisation"] == pytest.approx(row["busy_hours"] / 24.0, abs=1e-3)
    assert any(r["batches"] for r in rows)
    plant = manufacturing.equipment_utilisation(
        ctx, Filters(date_from=day, date_to=day, site_id="PL-01")
    )
    assert plant == [r for r in rows if r["site_id"] == "PL-01"]


def test_sensor_trend_is_bounded_and_conserves_readings(ctx, monkeypatch):
    batch_id, readings, out_of_spec = sql(
        ctx,
        "select batch_id, sensor_readings, sensor_out_of_spec from gold.fact_batch_production "
        "order by sensor_readings desc, batch_id limit 1",
    )[0]
    points = manufacturing.sensor_trend(ctx, batch_id)
    per_sensor = Counter(p["sensor_id"] for p in points)
    assert max(per_sensor.values()) <= manufacturing.SENSOR_TREND_POINTS
    assert len(points) < readings  # downsampled: this batch has more readings than points
    assert sum(p["readings"] for p in points) == readings
    assert sum(p["out_of_spec"] for p in points) == out_of_spec
    for sensor in per_sensor:
        mine = [p for p in points if p["sensor_id"] == sensor]
        assert [p["at"] for p in mine] == sorted(p["at"] for p in mine)
        for p in mine:
            assert p["at"] <= p["until"]
            assert p["min_value"] <= p["value"] <= p["max_value"]
            assert p["spec_min"] is not None and p["spec_min"] <= p["spec_max"]
    temperature = manufacturing.sensor_trend(ctx, batch_id, "TEMPERATURE")
    assert {p["sensor_type"] for p in temperature} == {"TEMPERATURE"}
    assert sum(p["readings"] for p in temperature) == scalar(
        ctx,
        "select count(*) from silver.manufacturing_sensor_reading "
        "where batch_id = ? and sensor_type = 'TEMPERATURE'",
        [batch_id],
    )
    monkeypatch.setattr(manufacturing, "SENSOR_TREND_POINTS", 10)
    coarse = manufacturing.sensor_trend(ctx, batch_id)
    assert max(Counter(p["sensor_id"] for p in coarse).values()) <= 10
    assert sum(p["readings"] for p in coarse) == readings


def test_batch_ids_list_the_filtered_batches_newest_first(ctx):
    ids = manufacturing.batch_ids(ctx, Filters(site_id="PL-03"))
    expected = [
        r[0]
        for r in sql(
            ctx,
            "select batch_id from gold.fact_batch_production "
            "where site_id = 'PL-03' "
            "order by started_at desc nulls last, batch_id",
        )
    ]
    assert ids == expected
