"""The KPI series' seam: gold before the watermark, live from it on, nothing twice, no gap.

A no-fault stream is cut in two at a moment T inside an hour. The batch layer sees only the
first part (ingested and built); the speed layer sees both, in order. The hourly series must
then count each bucket before the watermark (the hour holding gold's newest event) exactly
as gold does, each bucket from it on exactly as the speed layer does (the seam hour holds
events from both parts), and add up to every event of the stream: conservation across the
seam, per pharmacy too.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pharmaflow.serve.query import kpis
from pharmaflow.serve.query.base import Filters, QueryContext
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from tests.serve_data import served_settings

CUT = datetime(2026, 11, 2, 13, 37, tzinfo=UTC)  # inside an hour: the seam hour is split


def _time(event: dict) -> datetime:
    """The event time as UTC (producers write other offsets too)."""
    return datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).astimezone(UTC)


def _hour(event: dict) -> datetime:
    return _time(event).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def seamed(tmp_path_factory: pytest.TempPathFactory):
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.realtime.workers import run_realtime_worker
    from pharmaflow.warehouse.runner import build

    folder = tmp_path_factory.mktemp("seam")
    config = SimConfig(
        seed=5, days=3, scale=0.08, duplicate_rate=0, late_rate=0, out_of_order_rate=0,
        malformed_rate=0,
    )  # fmt: skip
    events = folder / "all.jsonl"
    simulate(config, events)
    lines = events.read_bytes().splitlines()
    parsed = [orjson.loads(line) for line in lines]
    before = [ln for ln, e in zip(lines, parsed, strict=True) if _time(e) < CUT]
    after = [ln for ln, e in zip(lines, parsed, strict=True) if _time(e) >= CUT]
    first, second = folder / "first.jsonl", folder / "second.jsonl"
    first.write_bytes(b"\n".join(before) + b"\n")
    second.write_bytes(b"\n".join(after) + b"\n")
    settings = served_settings(folder / "data")
    run_ingest(settings, str(first))
    assert build(settings).success
    run_realtime_worker(settings, str(first), alerts=False)
    run_realtime_worker(settings, str(second), alerts=False)
    placed = [e for e in parsed if e["event_type"] == "pharmacy.order.placed"]
    return settings, placed


def test_each_bucket_has_one_source_and_the_series_adds_up(seamed) -> None:
    settings, placed = seamed
    ctx = QueryContext(settings)
    try:
        series = kpis.series(ctx, "orders_placed", "hour", Filters())
    finally:
        ctx.close()
    seam = CUT.replace(minute=0)
    assert series["watermark"] == seam
    truth = Counter(_hour(e) for e in placed)
    points = {p["start"]: p for p in series["points"]}
    assert len(points) == len(series["points"])  # one point per bucket
    starts = sorted(points)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(starts))
    for start, point in points.items():
        assert point["source"] == ("gold" if start < seam else "live"), start
        assert point["value"] == truth.get(start, 0), start
    assert truth[seam] > 0 and any(_hour(e) == seam for e in placed)
    # the seam hour holds events of both halves, counted once each
    halves = Counter(_time(e) < CUT for e in placed if _hour(e) == seam)
    assert halves[True] > 0 and halves[False] > 0
    assert points[seam]["value"] == halves[True] + halves[False]
    assert sum(p["value"] for p in series["points"]) == len(placed)


def test_the_seam_holds_for_one_pharmacy_and_for_days(seamed) -> None:
    settings, placed = seamed
    pharmacy = Counter(e["payload"]["pharmacy_id"] for e in placed).most_common(1)[0][0]
    ctx = QueryContext(settings)
    try:
        mine = kpis.series(ctx, "orders_placed", "hour", Filters(pharmacy_id=pharmacy))
        daily = kpis.daily(ctx, Filters())
    finally:
        ctx.close()
    expected = sum(1 for e in placed if e["payload"]["pharmacy_id"] == pharmacy)
    assert sum(p["value"] for p in mine["points"]) == expected
    assert sum(row["orders_placed"] for row in daily["days"]) == len(placed)
    assert [row["source"] for row in daily["days"]] == ["gold", "live", "live"]


def test_a_date_range_cuts_both_halves(seamed) -> None:
    settings, placed = seamed
    day = CUT.date()
    ctx = QueryContext(settings)
    try:
        series = kpis.series(ctx, "orders_placed", "hour", Filters(date_from=day, date_to=day))
    finally:
        ctx.close()
    expected = sum(1 for e in placed if _time(e).date() == day)
    assert {p["start"].date() for p in series["points"]} == {day}
    assert sum(p["value"] for p in series["points"]) == expected
    assert {p["source"] for p in series["points"]} == {"gold", "live"}
