"""The recall page: a real lot or batch typed in gives its genealogy Sankey, the shipments,
orders and patient keys of the warehouse trace, and the CSV download."""

from __future__ import annotations

import pytest

from pharmaflow.serve.query import recall
from tests.serve_data import assert_no_phi, raw_phi
from tests.unit.serve.dashboard.apptest import assert_fresh, figures, run

pytestmark = pytest.mark.usefixtures("dashboard_env")


def _lot(ctx) -> dict:
    with ctx.reading() as q:
        return q.one(
            "test.lot",
            "select lot_number, batch_id from gold.dim_lot where batch_id is not null "
            "order by shipments + orders desc, lot_number limit 1",
        )


def test_recall_page_traces_a_lot(served):
    from pharmaflow.serve.dashboard import common

    ctx = common.context()
    lot = _lot(ctx)
    expected = recall.lot_trace(ctx, lot["lot_number"])
    at = run("recall.py")
    assert_fresh(at)
    assert any("Enter a lot number" in i.value for i in at.info)
    at.text_input(key="recall_key").set_value(lot["lot_number"]).run()
    assert not at.exception
    (sankey,) = figures(at)
    assert sankey["data"][0]["type"] == "sankey"
    assert f"lot {lot['lot_number']}" in sankey["data"][0]["node"]["label"]
    assert len(sankey["data"][0]["link"]["value"]) == len(expected["graph"]["edges"])
    shipments, orders, patients = (at.dataframe[i].value for i in (-3, -2, -1))
    assert len(shipments) == len(expected["shipments"])
    assert set(shipments["shipment_id"]) == {s["shipment_id"] for s in expected["shipments"]}
    assert len(orders) == len(expected["orders"])
    assert list(patients["patient_key"]) == expected["patient_keys"]
    (download,) = at.get("download_button")
    assert download.proto.label == "Download the trace (CSV)"
    assert download.proto.url.endswith(".csv")
    shown = {m.label: m.value for m in at.metric}
    assert int(shown["Patients"]) == expected["counts"]["patients"]
    assert_no_phi(
        [
            shipments.to_json(date_format="iso"),
            orders.to_json(date_format="iso"),
            [c.value for c in at.caption],
        ],
        raw_phi(served.events),
    )


def test_recall_page_takes_a_batch_and_refuses_nonsense():
    from pharmaflow.serve.dashboard import common

    lot = _lot(common.context())
    at = run("recall.py")
    at.text_input(key="recall_key").set_value(lot["batch_id"]).run()
    assert not at.exception
    assert any(c.value.startswith(f"Traced batch {lot['batch_id']}") for c in at.caption)
    assert len(figures(at)) == 1
    at.text_input(key="recall_key").set_value("L000000-0-00").run()
    assert any("No lot or batch L000000-0-00" in w.value for w in at.warning)
    at.text_input(key="recall_key").set_value("'; drop table x").run()
    assert at.error and not at.exception
