"""The batch quality page (streamlit AppTest) on the served data dir: it runs, says how fresh
its data is, charts the pass-rate trend and yield by equipment, and its numbers are
gold.kpi_quality's; no patient identifier anywhere on it."""

from __future__ import annotations

import orjson
import pytest

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.query import manufacturing
from pharmaflow.serve.query.base import Filters, QueryContext
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
        yield run("batch_quality.py")


def gold_kpi(ctx: QueryContext, where: str) -> dict:
    with ctx.reading() as q:
        return q.one(f"test_kpi:{where}", f"select * from gold.kpi_quality where {where}")


@pytest.fixture
def ctx(page) -> QueryContext:
    """The page's own query layer (one per process: a second one on the same snapshot file
    would be a second DuckDB connection with its own configuration)."""
    return common.context()


@pytest.fixture
def kpi(ctx):
    return gold_kpi(ctx, "scope = 'ALL'")


def test_the_page_shows_the_trend_failures_and_yields(page, ctx, kpi):
    assert "warehouse built" in freshness_caption(page)
    figures = [orjson.loads(spec) for spec in charts(page)]
    assert len(figures) == 2  # pass-rate trend, yield by equipment
    trend = figures[0]["data"]
    assert {t["name"] for t in trend} == {"released", "review", "rejected", "pass rate %"}
    released = next(t for t in trend if t["name"] == "released")
    assert sum(released["y"]) == kpi["releasable_batches"]
    metrics = {m.label: m.value for m in page.metric}
    # the default dates (the data's last 30 days) cover the whole served week
    assert metrics["Batches finished"] == str(kpi["finished_batches"])
    assert metrics["Released"] == str(kpi["releasable_batches"])
    assert metrics["Batch pass rate"] == f"{100 * float(kpi['batch_pass_rate']):.1f} %"
    failures = page.dataframe[0].value
    assert len(failures) == len(manufacturing.recent_failures(ctx, Filters(), 50)) > 0
    assert set(failures["failure"]) <= {"BATCH_FAILED", "LAB_FAIL"}
    assert_no_phi(page)


def test_a_site_filter_narrows_the_page(page, ctx):
    page.sidebar.selectbox(key="site").select("PL-01").run()
    assert not page.exception
    site = gold_kpi(ctx, "site_id = 'PL-01'")
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Batches finished"] == str(site["finished_batches"])
    yields = page.dataframe[-1].value
    assert set(yields["site_id"]) == {"PL-01"}
