"""The compliance page (streamlit AppTest) on the served data dir: it runs, says how fresh its
data is, charts open deviations by severity and age and investigation times with
gold.fact_deviation's numbers, lists CAPAs, and shows the audit trail with its hash chain
verified, newest entry first; no patient identifier anywhere on it."""

from __future__ import annotations

import orjson
import pytest

from pharmaflow.serve.dashboard import common
from pharmaflow.serve.security.store import open_security
from tests.unit.serve.dashboard.apptest import (
    assert_no_phi,
    charts,
    dashboard_env,
    freshness_caption,
    run,
)


@pytest.fixture
def key_id(served, tmp_path):
    """A key created just now in the page's security store, so its audit trail has an entry."""
    with dashboard_env(served, tmp_path / "security.db"):
        keys, _audit = open_security(common.context().settings)
        try:
            info, _raw = keys.create("compliance page test", "qa", actor="test", reason="page")
        finally:
            keys.close()
        yield info.key_id


def test_without_a_security_store_the_page_says_so(served, tmp_path):
    with dashboard_env(served, tmp_path / "none.db"):
        page = run("compliance.py")
        assert any("no security store" in i.value for i in page.info)
        assert not (tmp_path / "none.db").exists()  # the page never creates one
        assert charts(page)


def test_the_page_shows_deviations_investigations_capas_and_the_audit_trail(key_id):
    page = run("compliance.py")
    ctx = common.context()
    assert "warehouse built" in freshness_caption(page)
    with ctx.reading() as q:
        fact = q.one(
            "test_deviations",
            "select count(*) filter (where is_open) as open, "
            "count(*) filter (where is_open and severity = 'CRITICAL') as critical, "
            "count(*) filter (where has_capa) as capas from gold.fact_deviation",
        )
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Open deviations"] == str(fact["open"])
    assert metrics["Open critical"] == str(fact["critical"])
    assert metrics["CAPAs raised"] == str(fact["capas"])
    figures = [orjson.loads(spec) for spec in charts(page)]
    assert len(figures) == 2  # open by severity and age, investigation time
    assert sum(sum(t["y"]) for t in figures[0]["data"]) == fact["open"]
    assert any("Hash chain verified" in s.value for s in page.success)
    assert any("verified: 1 entry," in s.value for s in page.success)
    trail = page.dataframe[-1].value
    assert list(trail.columns) == ["seq", "at", "actor", "action", "target", "reason", "details"]
    newest = trail.iloc[0]
    assert (newest["action"], newest["target"]) == ("apikey.create", key_id)
    assert list(trail["seq"]) == sorted(trail["seq"], reverse=True)
    assert_no_phi(page)
