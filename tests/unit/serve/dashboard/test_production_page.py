"""The production performance page (streamlit AppTest) on the served data dir: it runs, says
how fresh its data is, charts equipment utilisation, and draws a chosen batch's sensor
readings inside its spec band (a filled area between spec_min and spec_max), bounded in
points and conserving the readings; no patient identifier anywhere on it."""

from __future__ import annotations

import orjson
import pytest

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import manufacturing
from pharmaflow.serve.query.base import Filters
from tests.unit.serve.dashboard.apptest import (
    assert_no_phi,
    charts,
    dashboard_env,
    freshness_caption,
    run,
)


@pytest.fixture
def page(served, tmp_path):
    with dashboard_env(served, tmp_path / "security.db"):
        yield run("production.py")


def test_the_page_shows_utilisation_and_a_sensor_trend(page):
    ctx = common.context()
    assert "warehouse built" in freshness_caption(page)
    figures = [orjson.loads(spec) for spec in charts(page)]
    assert len(figures) >= 2  # utilisation, then one chart per sensor of the chosen type
    utilisation = manufacturing.equipment_utilisation(ctx, Filters())
    bars = [y for trace in figures[0]["data"] for y in trace["y"]]
    assert sorted(bars) == pytest.approx(sorted(100 * (r["utilisation"] or 0) for r in utilisation))
    assert page.selectbox(key="batch").options == manufacturing.batch_ids(ctx, Filters())
    assert_no_phi(page)


def test_a_chosen_batch_is_drawn_in_its_spec_band(page):
    ctx = common.context()
    with ctx.reading() as q:
        batch_id = q.one(
            "test_biggest",
            "select batch_id from gold.fact_batch_production order by sensor_readings desc, "
            "batch_id limit 1",
        )["batch_id"]
    page.selectbox(key="batch").select(batch_id).run()
    page.selectbox(key="sensor_type").select("VIBRATION").run()
    assert not page.exception
    points = manufacturing.sensor_trend(ctx, batch_id, "VIBRATION")
    sensors = sorted({p["sensor_id"] for p in points})
    figures = [orjson.loads(spec) for spec in charts(page)][1:]
    assert [f["layout"]["title"]["text"] for f in figures] == sensors
    for figure, sensor in zip(figures, sensors, strict=True):
        traces = {t["name"]: t for t in figure["data"]}
        mine = [p for p in points if p["sensor_id"] == sensor]
        assert traces["spec min"]["fill"] == "tonexty"  # filled up to the spec max line
        assert traces["spec max"]["y"] == [p["spec_max"] for p in mine]
        assert traces["spec min"]["y"] == [p["spec_min"] for p in mine]
        assert traces["reading (mean)"]["y"] == [p["value"] for p in mine]
        assert len(mine) <= manufacturing.SENSOR_TREND_POINTS
    readings = sum(p["readings"] for p in points)
    with ctx.reading() as q:
        expected = q.one(
            "test_vibration",
            "select count(*) as n from silver.manufacturing_sensor_reading "
            "where batch_id = ? and sensor_type = 'VIBRATION'",
            [batch_id],
        )["n"]
    assert readings == expected
    assert any(c.value.startswith(f"{readings} readings") for c in page.caption)
