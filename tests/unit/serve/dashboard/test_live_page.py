"""The live operations page (AppTest runs its fragment once; the browser test watches it
refresh): the counts are the speed layer's, the charts are drawn, no patient appears."""

from __future__ import annotations

import pytest

from pharmaflow.realtime.reader import waiting_by_stage
from pharmaflow.serve.query.base import QueryContext
from tests.serve_data import assert_no_phi, raw_phi
from tests.unit.serve.dashboard.apptest import assert_fresh, figures, readable_texts, run

pytestmark = pytest.mark.usefixtures("dashboard_env")


def test_the_live_page_shows_the_speed_layer_now(served) -> None:
    at = run("live.py")
    assert_fresh(at)
    assert at.title[0].value == "Live operations"
    shown = {m.label: m.value for m in at.metric}
    ctx = QueryContext(served.settings)
    try:
        live = ctx.live()
        assert live is not None
        counted = sum(on + late for on, late in live.totals.values())
        stuck = sum(s for _n, s in waiting_by_stage(live, ctx.realtime_config).values())
    finally:
        ctx.close()
    assert shown["Events counted live"] == f"{counted:,}"
    assert shown["Orders waiting"] == f"{len(live.orders):,}"
    assert shown["Stuck orders"] == f"{stuck:,}"
    drawn = figures(at)
    assert len(drawn) == 2
    placed = drawn[1]
    assert {t["name"] for t in placed["data"]} == {"gold", "live"}
    assert len(at.dataframe) == 1
    assert_no_phi(readable_texts(at) + [str(d) for d in drawn], raw_phi(served.events))
