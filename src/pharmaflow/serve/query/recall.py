"""Recall: everything a lot (or a batch's lots) reached, as lists, a graph and a CSV.

The trace itself is the warehouse's (pharmaflow.warehouse.trace, the same reads `pharmaflow
trace` makes over gold.fact_batch_production and gold.lot_genealogy): serving calls it on the
pinned snapshot's file, so the CLI, the API and the dashboard give one answer. This module
adds what a screen needs around it: a not-found answer (None, the API's 404), the cache (one
trace per snapshot and key), a genealogy graph for a picture, and the CSV a recall
coordinator exports.

The graph follows the goods: batch → lot → the facilities it left from → each leg's
destination facility (an edge per origin, destination and leg, weighted by shipments) → each
pharmacy's patients (the orders it dispensed from the lot and the shipments to patients).
Patients appear only as pseudonymous `patient_key`s in the lists (analysts and QA may see
those); never a name, date of birth, address or contact.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import Any

from pharmaflow.serve.query.base import QueryContext, SnapshotQuery
from pharmaflow.warehouse import trace

LOT_SQL = "select lot_number from gold.dim_lot where lot_number = ?"
BATCH_SQL = "select batch_id from gold.fact_batch_production where batch_id = ? limit 1"
# Lots with a QA outcome that needs a look (rejected or in review) first, then the newest.
LOTS_SQL = (
    "select lot_number, batch_id, quality_flag, shipments, orders, patients, last_linked_at "
    "from gold.dim_lot where shipments > 0 or orders > 0 "
    "order by quality_flag in ('REJECTED', 'REVIEW') desc, last_linked_at desc nulls last, "
    "lot_number limit ?"
)

# The edge from a pharmacy to its patients: shipments to them and orders dispensed from the lot.
TO_PATIENTS = "TO_PATIENTS"
CSV_COLUMNS = (
    "batch_id",
    "lot_number",
    "link_type",
    "leg",
    "shipment_id",
    "origin_facility_id",
    "destination_facility_id",
    "carrier_id",
    "cold_chain",
    "order_id",
    "patient_key",
    "quantity",
    "linked_at",
    "delivered_at",
    "cancelled_at",
)


def lot_trace(ctx: QueryContext, lot: str) -> dict[str, Any] | None:
    """The trace of lot `lot` (gold.dim_lot, fact_batch_production, lot_genealogy): its batch
    and QA outcome, shipments with legs, orders, distinct patient keys, counts and a graph.
    None for a lot no batch, shipment or order names."""
    with ctx.reading() as q:
        if q.one("recall.lot", LOT_SQL, [lot]) is None:
            return None
        return _answer(q, "lot", lot)


def batch_trace(ctx: QueryContext, batch_id: str) -> dict[str, Any] | None:
    """The trace of the lot(s) batch `batch_id` made (as `lot_trace`). None for a batch the
    warehouse does not know (gold.fact_batch_production)."""
    with ctx.reading() as q:
        if q.one("recall.batch", BATCH_SQL, [batch_id]) is None:
            return None
        return _answer(q, "batch", batch_id)


def lots(ctx: QueryContext, limit: int = 50) -> list[dict[str, Any]]:
    """Lots that reached somewhere, for a recall page to offer (gold.dim_lot): those whose
    batch was rejected or needs review first, then by their newest link."""
    with ctx.reading() as q:
        return q.rows("recall.lots", LOTS_SQL, [max(1, min(int(limit), 500))])


def _answer(q: SnapshotQuery, kind: str, key: str) -> dict[str, Any]:
    """The trace on the pinned snapshot, computed once per (snapshot, kind, key)."""

    def compute() -> dict[str, Any]:
        run = trace.trace_lot_on if kind == "lot" else trace.trace_batch_on
        found = run(q.snap.cursor(), key).to_dict()
        found["graph"] = genealogy_graph(found)
        return found

    found = q.cache.get_or_compute((q.snap.id, "recall.trace", kind, key), compute)
    return {**found, "as_of": q.info.built_at, "snapshot": q.info.id}


def genealogy_graph(found: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Nodes and weighted edges of a trace (see the module docstring), for a Sankey or a
    network picture. Node ids are typed (`batch:`, `lot:`, `facility:`, `orders:`) so one id
    never names two things; each edge carries how many shipments and orders it stands for."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}

    def node(node_id: str, kind: str, label: str, **extra: Any) -> str:
        nodes.setdefault(node_id, {"id": node_id, "kind": kind, "label": label, **extra})
        return node_id

    def edge(source: str, target: str, kind: str, shipments: int = 0, orders: int = 0) -> None:
        e = edges.setdefault(
            (source, target, kind),
            {"source": source, "target": target, "kind": kind, "shipments": 0, "orders": 0},
        )
        e["shipments"] += shipments
        e["orders"] += orders

    def facility(facility_id: str, facility_type: str | None) -> str:
        label = facility_id if facility_type is None else f"{facility_id} ({facility_type})"
        return node(f"facility:{facility_id}", "facility", label, facility_type=facility_type)

    for lot in found["lots"]:
        node(f"lot:{lot}", "lot", f"lot {lot}")
    for b in found["batches"]:
        if b["lot_number"] is not None:
            flag = b["quality_flag"] or "no QA outcome"
            node(f"batch:{b['batch_id']}", "batch", f"batch {b['batch_id']} ({flag})")
            edge(f"batch:{b['batch_id']}", f"lot:{b['lot_number']}", "MADE")

    # Per lot: which facilities it left from, and which it reached (to find where it entered).
    left: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    reached: dict[str, set[str]] = defaultdict(set)
    seen: set[tuple[str, str, str]] = set()
    for s in found["shipments"]:
        origin = s["origin_facility_id"]
        if origin is None or (s["shipment_id"], s["leg"], origin) in seen:
            continue  # one shipment carrying two traced lots is one flow
        seen.add((s["shipment_id"], s["leg"], origin))
        source = facility(origin, s["origin_facility_type"])
        left[s["lot_number"]][source].add(s["shipment_id"])
        destination = s["destination_facility_id"]
        if destination is None:  # to a patient: the pharmacy's patients node
            edge(source, node(f"orders:{origin}", "orders", origin), TO_PATIENTS, shipments=1)
        else:
            target = facility(destination, s["destination_facility_type"])
            reached[s["lot_number"]].add(target)
            edge(source, target, s["leg"], shipments=1)
    dispensed: dict[str, set[str]] = defaultdict(set)
    for o in found["orders"]:
        if o["pharmacy_id"] is not None:
            source = facility(o["pharmacy_id"], "PHARMACY")
            dispensed[source].add(o["order_id"])
            left[o["lot_number"]].setdefault(source, set())
    for source, orders in dispensed.items():
        pharmacy = source.removeprefix("facility:")
        target = node(f"orders:{pharmacy}", "orders", pharmacy)
        edge(source, target, TO_PATIENTS, orders=len(orders))
    # The lot enters the picture where it left a facility none of its shipments reached.
    for lot, sources in left.items():
        for source, shipments in sources.items():
            if source not in reached[lot]:
                edge(f"lot:{lot}", source, "FROM", shipments=len(shipments))
    for n in nodes.values():
        if n["kind"] == "orders":
            pharmacy = n["id"].removeprefix("orders:")
            count = len(dispensed.get(f"facility:{pharmacy}", ()))
            n["label"] = f"{count} orders at {pharmacy}"
    for e in edges.values():  # a width for the picture: what the edge carried
        e["value"] = max(1, e["shipments"], e["orders"])
    return {"nodes": list(nodes.values()), "edges": list(edges.values())}


def trace_csv(found: dict[str, Any]) -> str:
    """The trace as CSV, one row per shipment or order link (a lot's link to a shipment leg,
    or to an order it was dispensed to), with the batch that made the lot."""
    batch_of = {b["lot_number"]: b["batch_id"] for b in found["batches"]}
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for s in found["shipments"]:
        writer.writerow(
            _cells(
                s,
                batch_id=batch_of.get(s["lot_number"]),
                link_type="SHIPMENT",
                linked_at=s["created_at"],
            )
        )
    for o in found["orders"]:
        writer.writerow(
            _cells(
                o,
                batch_id=batch_of.get(o["lot_number"]),
                link_type="ORDER",
                leg="DISPENSE",
                origin_facility_id=o["pharmacy_id"],
                linked_at=o["filled_at"],
            )
        )
    return out.getvalue()


def _cells(row: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A CSV row; a text cell a spreadsheet would run as a formula is quoted with `'`."""
    cells = {**row, **extra}
    for key, value in cells.items():
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            cells[key] = "'" + value
    return cells
