"""Logistics answers against gold on the served snapshot: counts that must add up, bounded
temperature series that keep every reading's contribution, the speed layer's state, no PHI."""

from __future__ import annotations

from typing import Any

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.query import logistics
from pharmaflow.serve.query.base import Filters, Page, QueryContext
from tests.serve_data import assert_no_phi, raw_phi


def gold(ctx: QueryContext, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a direct query on the snapshot the query layer serves."""
    with ctx.reading() as q:
        cur = q.snap.cursor()
        cur.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def busiest(ctx) -> dict[str, Any]:
    """The shipment with the most logger readings (more than MAX_POINTS on the fixture)."""
    return gold(
        ctx,
        "select * from gold.fact_shipment order by temperature_readings desc, shipment_id limit 1",
    )[0]


def test_delivered_shipments_add_up_to_fact_shipment(ctx):
    found = logistics.delivery_performance(ctx, Filters())
    delivered = gold(
        ctx, "select count(*) as n from gold.fact_shipment where delivered_at is not null"
    )
    assert sum(r["shipments"] for r in found["items"]) == delivered[0]["n"] > 100
    assert found["group_by"] == ["carrier", "service_level"]
    for row in found["items"]:
        assert row["on_time"] + row["late"] == row["with_promise"] <= row["shipments"]


def test_one_day_counts_that_days_deliveries(ctx):
    day = gold(
        ctx,
        "select cast(delivered_at as date) as d, count(*) as n from gold.fact_shipment "
        "where delivered_at is not null group by 1 order by 2 desc limit 1",
    )[0]
    found = logistics.delivery_performance(
        ctx, Filters(date_from=day["d"], date_to=day["d"]), (), "day"
    )
    assert [(r["period"], r["shipments"]) for r in found["items"]] == [(day["d"], day["n"])]


def test_carrier_on_time_equals_kpi_carrier_on_time(ctx):
    rows = logistics.delivery_performance(ctx, Filters(), ("carrier",), "month")["items"]
    kpi = {
        r["carrier_id"]: r
        for r in gold(ctx, "select * from gold.kpi_carrier_on_time where scope = 'CARRIER'")
    }
    sums: dict[str, list[int]] = {}
    for r in rows:
        s = sums.setdefault(r["carrier_id"], [0, 0, 0])
        s[0] += r["on_time"]
        s[1] += r["with_promise"]
        s[2] += r["shipments"]
    assert set(sums) <= set(kpi)
    for carrier, (on_time, with_promise, shipments) in sums.items():
        assert on_time == kpi[carrier]["deliveries_on_time"]
        assert with_promise == kpi[carrier]["deliveries_with_promise"]
        assert shipments == kpi[carrier]["shipments_delivered"]
    assert all(r["carrier_name"] for r in rows)


def test_carrier_filter_keeps_one_carrier(ctx):
    rows = logistics.delivery_performance(ctx, Filters(carrier_id="CR-UPS"), ("carrier",))["items"]
    assert rows and {r["carrier_id"] for r in rows} == {"CR-UPS"}


def test_bad_grouping_or_period_is_refused(ctx):
    with pytest.raises(PharmaflowError, match="group_by"):
        logistics.delivery_performance(ctx, Filters(), ("pharmacy",))
    with pytest.raises(PharmaflowError, match="period"):
        logistics.delivery_performance(ctx, Filters(), period="hour")


def test_excursions_page_through_every_excursion_longest_first(ctx):
    expected = {
        r["shipment_id"]
        for r in gold(ctx, "select shipment_id from gold.fact_shipment where excursion_minutes > 0")
    }
    seen: list[dict[str, Any]] = []
    page = Page(limit=4)
    while True:
        found = logistics.excursions(ctx, Filters(), page)
        seen += found["items"]
        if found["next_cursor"] is None:
            break
        page = Page(found["next_cursor"], 4)
    ids = [e["shipment_id"] for e in seen]
    assert len(ids) == len(set(ids)) == len(expected) > 4
    assert set(ids) == expected
    minutes = [e["excursion_minutes"] for e in seen]
    assert minutes == sorted(minutes, reverse=True)
    assert all(e["cold_chain"] and "sort_minutes" not in e for e in seen)


def test_timeline_of_a_shipment(ctx, busiest):
    found = logistics.shipment_timeline(ctx, busiest["shipment_id"])
    assert found is not None
    assert found["shipment"]["shipment_id"] == busiest["shipment_id"]
    assert len(found["scans"]) == busiest["scans"]
    assert len(found["exceptions"]) == busiest["exceptions"]
    assert len(found["deliveries"]) == (busiest["delivered_at"] is not None)
    stamps = [s["at"] for s in found["scans"]]
    assert stamps == sorted(stamps)
    temps = found["temperatures"]
    assert temps["readings"] == busiest["temperature_readings"]
    # the chart holds at most MAX_POINTS buckets: fewer readings are each their own point
    folded = busiest["temperature_readings"] > logistics.MAX_POINTS
    assert temps["downsampled"] == folded
    assert len(temps["points"]) == min(logistics.MAX_POINTS, busiest["temperature_readings"])
    assert sum(p["readings"] for p in temps["points"]) == busiest["temperature_readings"]


def test_timeline_carries_the_live_cold_chain_state(ctx, busiest):
    state = next(s for s in ctx.live().shipments if s.shipment_id == busiest["shipment_id"])
    live = logistics.shipment_timeline(ctx, busiest["shipment_id"])["live"]
    assert live["minutes_out_of_range"] == pytest.approx(state.minutes_out_of_range, abs=0.01)
    assert (live["cold_chain"], live["last_celsius"]) == (state.cold_chain, state.last_celsius)


def test_unknown_shipment_is_none(ctx):
    assert logistics.shipment_timeline(ctx, "SHP-000000-000000") is None
    assert logistics.temperature_trace(ctx, "SHP-000000-000000") is None


def test_temperature_trace_keeps_every_reading_in_its_buckets(ctx):
    row = gold(
        ctx,
        "select * from gold.fact_shipment where excursion_minutes > 0 "
        "order by temperature_readings desc limit 1",
    )[0]
    trace = logistics.temperature_trace(ctx, row["shipment_id"], max_points=20)
    assert trace["downsampled"] and len(trace["points"]) == 20
    points = trace["points"]
    assert sum(p["readings"] for p in points) == row["temperature_readings"]
    assert sum(p["out_of_spec"] for p in points) == row["temperature_out_of_spec"] > 0
    assert min(p["min_celsius"] for p in points) == pytest.approx(float(row["min_celsius"]))
    assert max(p["max_celsius"] for p in points) == pytest.approx(float(row["max_celsius"]))
    assert (trace["spec_min"], trace["spec_max"]) == (2.0, 8.0)
    assert [p["at"] for p in points] == sorted(p["at"] for p in points)


def test_temperature_trace_unsampled_is_every_reading(ctx):
    row = gold(
        ctx,
        "select shipment_id, temperature_readings from gold.fact_shipment "
        "where temperature_readings between 2 and 100 order by shipment_id limit 1",
    )[0]
    readings = gold(
        ctx,
        "select celsius from silver.logistics_temperature_reading where shipment_id = ? "
        "order by event_time, event_id",
        [row["shipment_id"]],
    )
    trace = logistics.temperature_trace(ctx, row["shipment_id"])
    assert not trace["downsampled"]
    assert [p["celsius"] for p in trace["points"]] == pytest.approx(
        [r["celsius"] for r in readings]
    )


def test_live_excursions_are_the_speed_layers(ctx):
    found = logistics.live_excursions(ctx, Filters())
    expected = {s.shipment_id for s in ctx.live().shipments if s.minutes_out_of_range > 0}
    assert found["running"] and {s["shipment_id"] for s in found["items"]} == expected


def test_no_raw_patient_identifier_in_logistics(ctx, served, busiest):
    phi = raw_phi(served.events)
    patient_leg = gold(
        ctx,
        "select shipment_id from gold.fact_shipment where destination_type = 'PATIENT' "
        "and exceptions > 0 order by shipment_id limit 5",
    )
    answers = [
        logistics.shipment_timeline(ctx, r["shipment_id"])
        for r in [*patient_leg, {"shipment_id": busiest["shipment_id"]}]
    ]
    answers += [
        logistics.delivery_performance(ctx, Filters()),
        logistics.excursions(ctx, Filters(), Page(limit=500)),
        logistics.live_excursions(ctx, Filters()),
    ]
    assert_no_phi(answers, phi)
