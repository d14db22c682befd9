"""Recall answers are `pharmaflow trace`'s on the same snapshot, with a graph and a CSV that
account for every link, and no raw patient identifier."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from pharmaflow.serve.query import recall
from pharmaflow.serve.query.base import QueryContext
from pharmaflow.warehouse import trace
from tests.serve_data import assert_no_phi, raw_phi

EXTRA = ("graph", "as_of", "snapshot")


def gold(ctx: QueryContext, sql: str) -> list[dict[str, Any]]:
    with ctx.reading() as q:
        cur = q.snap.cursor()
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def made_lot(ctx) -> dict[str, Any]:
    """The lot made inside the data window (it has a batch) that reached the most."""
    return gold(
        ctx,
        "select lot_number, batch_id from gold.dim_lot where batch_id is not null "
        "order by shipments + orders desc, lot_number limit 1",
    )[0]


@pytest.fixture(scope="module")
def old_lot(ctx) -> str:
    """The busiest lot made before the data window (no batch: it enters at the DCs)."""
    return gold(
        ctx,
        "select lot_number from gold.dim_lot where batch_id is null "
        "order by shipments + orders desc, lot_number limit 1",
    )[0]["lot_number"]


def _snapshot_path(ctx: QueryContext):
    with ctx.reading() as q:
        return q.snap.meta.path


def test_lot_trace_is_the_warehouse_trace(ctx, made_lot, old_lot):
    for lot in (made_lot["lot_number"], old_lot):
        found = recall.lot_trace(ctx, lot)
        expected = trace.trace_lot(_snapshot_path(ctx), lot).to_dict()
        assert {k: v for k, v in found.items() if k not in EXTRA} == expected
        assert found["counts"]["shipments"] > 10 and found["patient_keys"]


def test_batch_trace_is_the_warehouse_trace(ctx, made_lot):
    found = recall.batch_trace(ctx, made_lot["batch_id"])
    expected = trace.trace_batch(_snapshot_path(ctx), made_lot["batch_id"]).to_dict()
    assert {k: v for k, v in found.items() if k not in EXTRA} == expected
    assert found["lots"] == [made_lot["lot_number"]]


def test_unknown_lot_or_batch_is_none(ctx):
    assert recall.lot_trace(ctx, "L000000-0-00") is None
    assert recall.batch_trace(ctx, "BT-NOPE") is None


def test_graph_accounts_for_every_shipment_and_order(ctx, made_lot, old_lot):
    for lot in (made_lot["lot_number"], old_lot):
        found = recall.lot_trace(ctx, lot)
        graph = found["graph"]
        ids = {n["id"] for n in graph["nodes"]}
        assert len(ids) == len(graph["nodes"])
        assert all(e["source"] in ids and e["target"] in ids for e in graph["edges"])
        legs = [e for e in graph["edges"] if e["kind"] not in ("MADE", "FROM")]
        assert sum(e["shipments"] for e in legs) == found["counts"]["shipments"]
        assert sum(e["orders"] for e in legs) == found["counts"]["orders"]
        by_leg: dict[str, int] = {}
        for e in legs:
            leg = "PHARMACY_TO_PATIENT" if e["kind"] == recall.TO_PATIENTS else e["kind"]
            by_leg[leg] = by_leg.get(leg, 0) + e["shipments"]
        assert {k: v for k, v in by_leg.items() if v} == found["counts"]["shipments_by_leg"]
        # the lot enters the picture: from its batch, and into the facilities it left from
        assert any(e["kind"] == "FROM" and e["source"] == f"lot:{lot}" for e in graph["edges"])
        assert all(e["value"] >= 1 for e in graph["edges"])


def test_graph_starts_at_the_batch_and_its_plant(ctx, made_lot):
    found = recall.lot_trace(ctx, made_lot["lot_number"])
    edges = {(e["source"], e["target"], e["kind"]) for e in found["graph"]["edges"]}
    lot = f"lot:{made_lot['lot_number']}"
    assert (f"batch:{made_lot['batch_id']}", lot, "MADE") in edges
    site = found["batches"][0]["site_id"]
    if found["counts"]["shipments_by_leg"].get("PLANT_TO_DC"):
        assert (lot, f"facility:{site}", "FROM") in edges


def test_csv_has_one_row_per_link(ctx, made_lot):
    found = recall.lot_trace(ctx, made_lot["lot_number"])
    rows = list(csv.DictReader(io.StringIO(recall.trace_csv(found))))
    assert len(rows) == len(found["shipments"]) + len(found["orders"])
    assert [r["link_type"] for r in rows].count("ORDER") == len(found["orders"])
    assert {r["shipment_id"] for r in rows if r["link_type"] == "SHIPMENT"} == {
        s["shipment_id"] for s in found["shipments"]
    }
    keys = {r["patient_key"] for r in rows if r["patient_key"]}
    assert keys == set(found["patient_keys"])
    assert {r["batch_id"] for r in rows} == {made_lot["batch_id"]}
    assert list(rows[0]) == list(recall.CSV_COLUMNS)


def test_csv_cells_never_start_a_formula():
    found = {
        "batches": [],
        "shipments": [],
        "orders": [
            {
                "lot_number": "L1",
                "order_id": "=HYPERLINK(1)",
                "patient_key": None,
                "pharmacy_id": "PH-1",
                "quantity": 1,
                "filled_at": "2026-11-01T00:00:00Z",
                "shipment_id": None,
                "delivered_at": None,
                "cancelled_at": None,
                "is_current_fill": True,
            }
        ],
    }
    row = next(csv.DictReader(io.StringIO(recall.trace_csv(found))))
    assert row["order_id"] == "'=HYPERLINK(1)"


def test_lots_lists_lots_needing_a_look_first(ctx):
    lots = recall.lots(ctx, limit=20)
    assert 0 < len(lots) <= 20
    flags = [lot["quality_flag"] in ("REJECTED", "REVIEW") for lot in lots]
    assert flags == sorted(flags, reverse=True)


def test_no_raw_patient_identifier_in_a_trace(ctx, served, made_lot, old_lot):
    found = [recall.lot_trace(ctx, lot) for lot in (made_lot["lot_number"], old_lot)]
    assert_no_phi([*found, *(recall.trace_csv(f) for f in found)], raw_phi(served.events))
