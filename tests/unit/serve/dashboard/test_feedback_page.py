"""The patient feedback page renders NPS, ratings and scrubbed comments from the served data
dir, with its freshness caption and no raw patient identifier."""

from __future__ import annotations

import pytest

from pharmaflow.serve.query import feedback
from pharmaflow.serve.query.base import Filters
from tests.serve_data import assert_no_phi, raw_phi
from tests.unit.serve.dashboard.apptest import assert_fresh, figures, run

pytestmark = pytest.mark.usefixtures("dashboard_env")


def test_feedback_page(served):
    at = run("feedback.py")
    assert_fresh(at)
    drawn = figures(at)
    assert len(drawn) == 2
    nps_line = next(t for t in drawn[0]["data"] if t["name"] == "NPS")
    from pharmaflow.serve.dashboard import common

    expected = feedback.nps_trend(common.context(), Filters(), "day")
    assert at.sidebar.radio(key="feedback_period").value == "day"
    assert nps_line["y"] == [p["nps"] for p in expected["items"]]
    nps = next(m for m in at.metric if m.label == "NPS")
    assert nps.value == f"{expected['overall']['nps']:+.1f}"
    comments = at.dataframe[0].value
    assert len(comments) > 20 and comments["comment"].str.contains(r"\[EMAIL\]|\[NAME\]").any()
    texts = [m.value for m in (*at.markdown, *at.caption, *at.metric)]
    assert_no_phi([texts, comments.to_json(date_format="iso")], raw_phi(served.events))


def test_feedback_page_category_and_period():
    at = run("feedback.py")
    at.selectbox(key="feedback_category").set_value("DETRACTOR").run()
    at.sidebar.radio(key="feedback_period").set_value("week").run()
    assert not at.exception
    assert set(at.dataframe[0].value["category"]) == {"DETRACTOR"}
