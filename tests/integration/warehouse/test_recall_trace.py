"""Recall trace against a hand-built scenario whose answers are known.

Two batches make two lots at PL-01; BAT-BAD fails a lab test (QA: REJECTED), BAT-GOOD passes
(RELEASABLE). Both lots go plant -> DC-01 in one shipment and DC-01 -> PH-001 in another;
only LOT-GOOD goes on to PH-002. Pharmacies fill orders from the lots and ship them to patients:

    order   patient  pharmacy  fills (in order)        shipped to the patient in
    ORD-A1  Ada      PH-001    LOT-BAD                 SHP-A1 (delivered)
    ORD-A2  Ada      PH-001    LOT-BAD                 SHP-A2
    ORD-B1  Bram     PH-001    LOT-BAD, then LOT-GOOD  SHP-B1 (carries LOT-GOOD)
    ORD-C1  Cato     PH-001    LOT-GOOD                SHP-C1
    ORD-D1  Dora     PH-002    LOT-GOOD                not shipped yet
    ORD-E1  Ezra     PH-002    never filled            -

So LOT-BAD reached 4 shipments (one per leg plus two to Ada), 3 orders and 2 patients (Ada
twice, and Bram, whose re-fill from another lot does not undo the first dispense); LOT-GOOD
reached 5 shipments, 3 orders and 3 patients. The events go through real ingest (patients are
tokenised there) and a real dbt build, as a user runs them.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.warehouse.trace import RecallTrace, trace_batch, trace_lot
from tests.conftest import TEST_KEYS, env_with_keys
from tests.factories import PATIENT, jsonl
from tests.phi_scan import leaks

pytestmark = pytest.mark.slow

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
NDC = "00002-1433-80"  # Trulicity, cold chain

PATIENTS = {
    "ada": ("MRN-RC-0001", "Adaline", "Quenneville", "1961-03-14", "(617) 555-0101",
            "ada.quenneville@example.com", "4 Larkspur Row"),
    "bram": ("MRN-RC-0002", "Bramwell", "Okafor", "1977-08-02", "(617) 555-0102",
             "bram.okafor@example.com", "19 Thistledown Way"),
    "cato": ("MRN-RC-0003", "Catoline", "Vantongeren", "1949-12-30", "(617) 555-0103",
             "cato.v@example.com", "200 Marrowbone Ct"),
    "dora": ("MRN-RC-0004", "Dorabella", "Achterberg", "1990-06-21", "(212) 555-0104",
             "dora.achterberg@example.com", "7 Fennimore Pl"),
    "ezra": ("MRN-RC-0005", "Ezrael", "Fairweather", "1955-01-09", "(212) 555-0105",
             "ezra.fw@example.com", "88 Quillon St"),
}  # fmt: skip

_ids = itertools.count(1)


def _ev(kind: str, hours: float, key: str, payload: dict[str, Any], system: str) -> dict:
    return {
        "event_id": f"evt-recall-{next(_ids):04d}",
        "event_type": kind,
        "event_version": 1,
        "event_time": (T0 + dt.timedelta(hours=hours)).isoformat().replace("+00:00", "Z"),
        "source_system": system,
        "trace_id": None,
        "key": key,
        "payload": payload,
    }


def _patient(name: str) -> dict[str, Any]:
    mrn, first, last, dob, phone, email, street = PATIENTS[name]
    patient = copy.deepcopy(PATIENT)
    patient.update(
        patient_id=mrn,
        first_name=first,
        last_name=last,
        date_of_birth=dob,
        phone=phone,
        email=email,
    )
    patient["address"]["street"] = street
    return patient


def _batch(batch: str, lot: str, equipment: str, outcomes: list[str]) -> list[dict]:
    base = {
        "batch_id": batch,
        "lot_number": lot,
        "ndc": NDC,
        "site_id": "PL-01",
        "equipment_id": equipment,
        "operator_id": "OP-7",
        "batch_size_kg": 100.0,
    }
    events = [
        _ev("manufacturing.batch.status", 0, batch, {**base, "status": "IN_PROGRESS"}, "mes"),
        _ev(
            "manufacturing.batch.status",
            10,
            batch,
            {**base, "status": "COMPLETED", "actual_yield_kg": 96.0},
            "mes",
        ),
    ]
    for i, outcome in enumerate(outcomes, start=1):
        events.append(
            _ev(
                "manufacturing.lab.result",
                11 + i,
                batch,
                {
                    "test_id": f"{batch}-T{i}",
                    "batch_id": batch,
                    "test_name": f"ASSAY-{i}",
                    "result": 99.0 if outcome == "PASS" else 80.0,
                    "unit": "%",
                    "spec_min": 95.0,
                    "spec_max": 105.0,
                    "outcome": outcome,
                    "analyst_id": "AN-3",
                },
                "lims",
            )
        )
    return events


def _shipment(
    shipment: str,
    hours: float,
    origin: str,
    destination: str | None,
    lots: list[str],
    order: str | None = None,
    delivered_after: float | None = None,
) -> list[dict]:
    payload: dict[str, Any] = {
        "shipment_id": shipment,
        "origin_facility_id": origin,
        "carrier_id": "CR-MKN" if order is None else "CR-UPS",
        "service_level": "OVERNIGHT",
        "promised_delivery_time": (T0 + dt.timedelta(hours=hours + 24)).isoformat(),
        "cold_chain": True,
        "lot_numbers": lots,
    }
    if destination is not None:
        payload["destination_facility_id"] = destination
    if order is not None:
        payload["order_id"] = order
    events = [_ev("logistics.shipment.created", hours, shipment, payload, "wms")]
    if delivered_after is not None:
        events.append(
            _ev(
                "logistics.shipment.delivered",
                hours + delivered_after,
                shipment,
                {"shipment_id": shipment},
                "carrier",
            )
        )
    return events


def _order(
    order: str,
    hours: float,
    patient: str,
    pharmacy: str,
    fills: list[str],
    shipment: str | None = None,
    delivered: bool = False,
) -> list[dict]:
    placed = {
        "order_id": order,
        "pharmacy_id": pharmacy,
        "payer_id": "PY-001",
        "ndc": NDC,
        "quantity": 2,
        "days_supply": 28,
        "priority": "STANDARD",
        "patient": _patient(patient),
    }
    events = [_ev("pharmacy.order.placed", hours, order, placed, "oms")]
    for i, lot in enumerate(fills):
        fill = {
            "order_id": order,
            "ndc": NDC,
            "lot_number": lot,
            "quantity": 2,
            "pharmacist_id": "RPH-011",
        }
        events.append(_ev("pharmacy.order.filled", hours + 2 + i, order, fill, "oms"))
    if shipment is not None:
        at = hours + 2 + len(fills)
        events += _shipment(
            shipment, at, pharmacy, None, fills[-1:], order, 20 if delivered else None
        )
        shipped = {"order_id": order, "shipment_id": shipment, "carrier_id": "CR-UPS"}
        events.append(_ev("pharmacy.order.shipped", at + 0.1, order, shipped, "oms"))
        if delivered:
            events.append(
                _ev("pharmacy.order.delivered", at + 20, order, {"order_id": order}, "carrier")
            )
    return events


def scenario_events() -> list[dict]:
    return [
        *_batch("BAT-GOOD", "LOT-GOOD", "EQ-PL01-01", ["PASS", "PASS"]),
        *_batch("BAT-BAD", "LOT-BAD", "EQ-PL01-02", ["PASS", "FAIL"]),
        *_shipment("SHP-P1", 20, "PL-01", "DC-01", ["LOT-GOOD", "LOT-BAD"], delivered_after=18),
        *_shipment("SHP-D1", 44, "DC-01", "PH-001", ["LOT-GOOD", "LOT-BAD"], delivered_after=10),
        *_shipment("SHP-D2", 45, "DC-01", "PH-002", ["LOT-GOOD"], delivered_after=12),
        *_order("ORD-A1", 60, "ada", "PH-001", ["LOT-BAD"], "SHP-A1", delivered=True),
        *_order("ORD-A2", 61, "ada", "PH-001", ["LOT-BAD"], "SHP-A2"),
        *_order("ORD-B1", 62, "bram", "PH-001", ["LOT-BAD", "LOT-GOOD"], "SHP-B1"),
        *_order("ORD-C1", 63, "cato", "PH-001", ["LOT-GOOD"], "SHP-C1"),
        *_order("ORD-D1", 64, "dora", "PH-002", ["LOT-GOOD"]),
        *_order("ORD-E1", 65, "ezra", "PH-002", []),
    ]


def pharmaflow(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=300,
    )


def last_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scenario ingested and built, once for the module (a dbt build takes seconds)."""
    root = tmp_path_factory.mktemp("recall")
    source = root / "events.jsonl"
    events = scenario_events()
    source.write_bytes(jsonl(events))
    ingested = last_json(pharmaflow(root / "data", "ingest", "--source", str(source), "--json"))
    assert ingested["landed"] == len(events) and ingested["quarantined"] == 0, ingested
    built = last_json(pharmaflow(root / "data", "build", "--json"))
    assert built["success"] and built["tests_failed"] == 0, built["failures"]
    return root / "data"


@pytest.fixture(scope="module")
def warehouse(data_dir: Path) -> Path:
    return data_dir / "warehouse" / "pharmaflow.duckdb"


def key_of(name: str) -> str:
    """The patient_key ingest derives from the patient's MRN with the test HMAC key."""
    return Tokenizer(bytes.fromhex(TEST_KEYS["PHARMAFLOW_HMAC_KEY"])).patient_key(PATIENTS[name][0])


BAD = {
    "batch": ("BAT-BAD", "REJECTED", "COMPLETED", 0.5),
    "shipments": {
        "SHP-P1": "PLANT_TO_DC",
        "SHP-D1": "DC_TO_PHARMACY",
        "SHP-A1": "PHARMACY_TO_PATIENT",
        "SHP-A2": "PHARMACY_TO_PATIENT",
    },
    "orders": {"ORD-A1": True, "ORD-A2": True, "ORD-B1": False},  # is_current_fill
    "patients": ("ada", "bram"),
}
GOOD = {
    "batch": ("BAT-GOOD", "RELEASABLE", "COMPLETED", 1.0),
    "shipments": {
        "SHP-P1": "PLANT_TO_DC",
        "SHP-D1": "DC_TO_PHARMACY",
        "SHP-D2": "DC_TO_PHARMACY",
        "SHP-B1": "PHARMACY_TO_PATIENT",
        "SHP-C1": "PHARMACY_TO_PATIENT",
    },
    "orders": {"ORD-B1": True, "ORD-C1": True, "ORD-D1": True},
    "patients": ("bram", "cato", "dora"),
}


def assert_trace(trace: RecallTrace, lot: str, expected: dict[str, Any]) -> None:
    assert trace.lots == (lot,)
    [batch] = trace.batches
    batch_id, flag, status, pass_rate = expected["batch"]
    assert (batch.batch_id, batch.lot_number, batch.quality_flag, batch.final_status) == (
        batch_id,
        lot,
        flag,
        status,
    )
    assert batch.lab_pass_rate == pass_rate
    assert {s.shipment_id: s.leg for s in trace.shipments} == expected["shipments"]
    assert {o.order_id: o.is_current_fill for o in trace.orders} == expected["orders"]
    assert trace.patient_keys == tuple(sorted(key_of(n) for n in expected["patients"]))
    assert all(o.lot_number == lot for o in trace.orders)
    counts = trace.counts
    assert counts["shipments"] == len(expected["shipments"])
    assert counts["orders"] == len(expected["orders"])
    assert counts["patients"] == len(expected["patients"])
    assert counts["units_dispensed"] == 2 * len(expected["orders"])
    assert counts["orders_without_patient"] == 0


def test_trace_lot_of_the_failed_batch(warehouse: Path) -> None:
    trace = trace_lot(warehouse, "LOT-BAD")
    assert (trace.query, trace.key) == ("lot", "LOT-BAD")
    assert_trace(trace, "LOT-BAD", BAD)
    assert trace.counts["shipments_by_leg"] == {
        "PLANT_TO_DC": 1,
        "DC_TO_PHARMACY": 1,
        "PHARMACY_TO_PATIENT": 2,
    }
    legs = {s.shipment_id: s for s in trace.shipments}
    assert (legs["SHP-P1"].origin_facility_id, legs["SHP-P1"].destination_facility_id) == (
        "PL-01",
        "DC-01",
    )
    assert legs["SHP-A1"].order_id == "ORD-A1" and legs["SHP-A1"].patient_key == key_of("ada")
    assert legs["SHP-A1"].delivered_at == T0 + dt.timedelta(hours=83)
    assert legs["SHP-A2"].delivered_at is None
    orders = {o.order_id: o for o in trace.orders}
    assert orders["ORD-A1"].shipment_id == "SHP-A1" and orders["ORD-A1"].pharmacy_id == "PH-001"
    # Bram was re-filled from LOT-GOOD: still affected by LOT-BAD, and his order left in SHP-B1
    assert orders["ORD-B1"].shipment_id == "SHP-B1"


def test_trace_lot_of_the_good_batch(warehouse: Path) -> None:
    assert_trace(trace_lot(warehouse, "LOT-GOOD"), "LOT-GOOD", GOOD)


def test_trace_batch_is_the_trace_of_its_lot(warehouse: Path) -> None:
    for batch, lot, expected in (("BAT-BAD", "LOT-BAD", BAD), ("BAT-GOOD", "LOT-GOOD", GOOD)):
        trace = trace_batch(warehouse, batch)
        assert (trace.query, trace.key) == ("batch", batch)
        assert_trace(trace, lot, expected)
        by_lot = trace_lot(warehouse, lot)
        assert (trace.shipments, trace.orders) == (by_lot.shipments, by_lot.orders)


def test_dim_lot_counts_agree_with_the_trace(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select lot_number, batch_id, quality_flag, shipments, shipments_plant_to_dc, "
            "shipments_dc_to_pharmacy, shipments_to_patients, orders, patients, units_dispensed "
            "from gold.dim_lot order by lot_number"
        ).fetchall()
    assert rows == [
        ("LOT-BAD", "BAT-BAD", "REJECTED", 4, 1, 1, 2, 3, 2, 6),
        ("LOT-GOOD", "BAT-GOOD", "RELEASABLE", 5, 1, 2, 2, 3, 3, 6),
    ]


def test_unknown_lot_or_batch_is_a_clear_error(warehouse: Path) -> None:
    with pytest.raises(PharmaflowError, match="unknown lot 'LOT-NOPE'"):
        trace_lot(warehouse, "LOT-NOPE")
    with pytest.raises(PharmaflowError, match="unknown batch 'BAT-NOPE'"):
        trace_batch(warehouse, "BAT-NOPE")


def test_trace_without_a_warehouse_says_to_build(settings: Settings) -> None:
    with pytest.raises(PharmaflowError, match="run `pharmaflow build`"):
        trace_lot(settings.warehouse_path, "LOT-BAD")


def test_cli_json_gives_the_same_answers(data_dir: Path) -> None:
    for args, lot, expected in (
        (("lot", "LOT-BAD"), "LOT-BAD", BAD),
        (("batch", "BAT-GOOD"), "LOT-GOOD", GOOD),
    ):
        out = last_json(pharmaflow(data_dir, "trace", *args, "--json"))
        assert (out["query"], out["key"], out["lots"]) == (*args, [lot])
        [batch] = out["batches"]
        assert (batch["batch_id"], batch["quality_flag"], batch["lab_pass_rate"]) == (
            expected["batch"][0],
            expected["batch"][1],
            expected["batch"][3],
        )
        assert {s["shipment_id"]: s["leg"] for s in out["shipments"]} == expected["shipments"]
        assert {o["order_id"] for o in out["orders"]} == set(expected["orders"])
        assert out["patient_keys"] == sorted(key_of(n) for n in expected["patients"])
        assert out["counts"]["shipments"] == len(expected["shipments"])
        assert out["counts"]["orders"] == len(expected["orders"])
        assert out["counts"]["patients"] == len(expected["patients"])
        assert all(s["created_at"].endswith("Z") for s in out["shipments"])


def test_cli_unknown_lot_is_one_line(data_dir: Path) -> None:
    result = pharmaflow(data_dir, "trace", "lot", "LOT-NOPE")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "pharmaflow: error: unknown lot 'LOT-NOPE': no batch, shipment or order names it"
    ]


def test_trace_output_has_no_raw_patient_identifiers(data_dir: Path) -> None:
    values = {
        v
        for mrn, _, _, dob, phone, email, street in PATIENTS.values()
        for v in (mrn, dob, phone, email, street)
    }
    names = {n for _, first, last, *_ in PATIENTS.values() for n in (first, last)}
    outputs = [
        pharmaflow(data_dir, "trace", *args).stdout
        for args in (
            ("lot", "LOT-BAD"),
            ("lot", "LOT-GOOD", "--json"),
            ("batch", "BAT-BAD", "--json"),
            ("batch", "BAT-GOOD"),
        )
    ]
    assert all(outputs) and key_of("bram") in outputs[1]
    assert leaks(outputs, values, names) == []
