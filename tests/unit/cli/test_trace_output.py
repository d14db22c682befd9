"""`pharmaflow trace` for people: whole ids at any width, a block per link when narrow."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from rich.console import Console

from pharmaflow.cli import trace as trace_cli
from pharmaflow.warehouse.trace import BatchOutcome, OrderLink, RecallTrace, ShipmentLink

T0 = dt.datetime(2026, 11, 3, 8, 30, tzinfo=dt.UTC)
KEY = "pk_884e1571b148ba96f0e6f651fd831acd"


def recall(links: int) -> RecallTrace:
    """A lot that reached `links` pharmacies and one patient (a fill later replaced)."""
    lot = "L261102-2-04"
    batch = BatchOutcome(
        batch_id="BT-PL02-261102-04",
        lot_number=lot,
        ndc="00006-0277-31",
        site_id="PL-02",
        final_status="COMPLETED",
        quality_flag="RELEASABLE",
        lab_pass_rate=1.0,
        lab_tests=6,
        lab_tests_failed=0,
        open_deviations=0,
        completed_at=T0,
    )
    shipments = tuple(
        ShipmentLink(
            lot_number=lot,
            shipment_id=f"SHB-261104-{i:06d}",
            leg="DC_TO_PHARMACY",
            origin_facility_id="DC-01",
            origin_facility_type="DC",
            destination_facility_id=f"PH-{i:03d}",
            destination_facility_type="PHARMACY",
            carrier_id="CAR-01",
            cold_chain=False,
            order_id=None,
            patient_key=None,
            created_at=T0 + dt.timedelta(hours=i),
            delivered_at=None,
        )
        for i in range(links)
    )
    order = OrderLink(
        lot_number=lot,
        order_id="ORD-261107-00345",
        patient_key=KEY,
        pharmacy_id="PH-010",
        quantity=90,
        filled_at=T0,
        shipment_id=None,
        delivered_at=None,
        cancelled_at=None,
        is_current_fill=False,
    )
    return RecallTrace("lot", lot, (lot,), (batch,), shipments, (order,), (KEY,))


def shown(trace: RecallTrace, width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    monkeypatch.setattr(trace_cli, "console", console)
    trace_cli.show(trace)
    return console.file.getvalue()


def test_wide_terminal_gets_one_line_per_shipment(monkeypatch):
    out = shown(recall(3), 200, monkeypatch)
    lines = out.splitlines()
    rows = [line for line in lines if line.startswith(" SHB-")]
    assert len(rows) == 3
    assert rows[0].split(" | ")[:5] == [
        " SHB-261104-000000", "L261102-2-04", "DC_TO_PHARMACY", "DC-01", "PH-000",
    ]  # fmt: skip
    assert "2026-11-03 08:30" in rows[0]  # UTC, to the minute
    assert "shipments (3)" in out and "orders (1)" in out
    assert any(KEY in line and "L261102-2-04 (re-filled)" in line for line in lines)
    assert "3 shipments (DC_TO_PHARMACY 3), 1 orders (90 units)" in out


def test_80_columns_gets_one_block_per_link_with_ids_whole(monkeypatch):
    out = shown(recall(500), 80, monkeypatch)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert sum(line.startswith("-[ RECORD") for line in lines) == 501  # shipments + order
    assert "shipment    | SHB-261104-000499" in lines
    assert f"patient key | {KEY}" in lines
    assert "lot         | L261102-2-04 (re-filled)" in lines
