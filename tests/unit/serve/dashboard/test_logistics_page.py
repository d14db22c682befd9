"""The logistics and cold-chain page renders from the served data dir: its charts, tables and
freshness caption, and a chosen shipment's temperature trace against its band."""

from __future__ import annotations

from tests.unit.serve.dashboard.apptest import assert_fresh, figures, run


def test_logistics_page(dashboard_env, served):
    at = run("logistics.py")
    assert_fresh(at)
    assert at.title[0].value == "Logistics and cold chain"
    drawn = figures(at)
    assert len(drawn) == 3  # on time by carrier and service, its daily trend, a trace
    services = {trace["name"] for trace in drawn[0]["data"]}
    assert {"OVERNIGHT", "TWO_DAY"} <= services
    delivered = next(m for m in at.metric if m.label == "Delivered")
    assert int(delivered.value) > 100
    excursions = at.dataframe[1].value
    assert len(excursions) > 0 and "minutes out of range" in excursions.columns
    # the trace of the first (longest) excursion, against its 2-8 C band
    trace = drawn[2]
    assert trace["layout"]["shapes"][0]["y0"] == 2.0 and trace["layout"]["shapes"][0]["y1"] == 8.0
    assert at.text_input(key="logistics_shipment").value == excursions["shipment"].iloc[0]


def test_logistics_page_unknown_shipment_and_carrier_filter(dashboard_env):
    at = run("logistics.py")
    at.text_input(key="logistics_shipment").set_value("SHP-000000-000000").run()
    assert not at.exception
    assert any("No shipment SHP-000000-000000" in w.value for w in at.warning)
    at.sidebar.selectbox(key="logistics_carrier").set_value("CR-UPS").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["carrier_id"]) == {"CR-UPS"}
