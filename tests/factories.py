"""Hand-built events for tests that need exact control over every field."""

from __future__ import annotations

import copy
import itertools
from datetime import datetime, timedelta
from typing import Any

import orjson

from pharmaflow.warehouse.build_log import BuildRecord

_ids = itertools.count(1)

PATIENT = {
    "patient_id": "MRN00123456",
    "first_name": "Zuleika",
    "last_name": "Okonkwo",
    "date_of_birth": "1950-05-02",
    "phone": "(415) 555-0134",
    "email": "zuleika.okonkwo@example.com",
    "address": {
        "street": "12 Quillfeather Lane",
        "city": "Springfield",
        "state": "MA",
        "zip": "01103",
    },
}

PAYLOADS: dict[str, dict[str, Any]] = {
    "pharmacy.order.placed": {
        "order_id": "ORD-1",
        "pharmacy_id": "PH-001",
        "payer_id": "PY-001",
        "ndc": "00002-1433-80",
        "quantity": 2,
        "days_supply": 30,
        "priority": "STANDARD",
        "patient": PATIENT,
    },
    "pharmacy.order.insurance_validated": {
        "order_id": "ORD-1",
        "status": "APPROVED",
        "copay_amount": 10.5,
    },
    "feedback.survey.submitted": {
        "survey_id": "SRV-1",
        "order_id": "ORD-1",
        "rating": 5,
        "nps": 9,
        "comment": "Great service",
    },
    "sales.sale.completed": {
        "sale_id": "SAL-1",
        "pharmacy_id": "PH-001",
        "ndc": "00002-1433-80",
        "quantity": 3,
        "unit_price": 12.5,
    },
    "manufacturing.batch.status": {
        "batch_id": "BAT-1",
        "lot_number": "LOT-1",
        "ndc": "00002-1433-80",
        "site_id": "PL-01",
        "equipment_id": "EQ-PL01-01",
        "operator_id": "OP-1",
        "status": "COMPLETED",
        "batch_size_kg": 100.0,
        "actual_yield_kg": 97.5,
    },
    "logistics.shipment.created": {
        "shipment_id": "SHP-1",
        "origin_facility_id": "PL-01",
        "destination_facility_id": "DC-01",
        "carrier_id": "CR-UPS",
        "service_level": "GROUND",
        "promised_delivery_time": "2026-11-03T12:00:00Z",
        "cold_chain": True,
        "lot_numbers": ["LOT-1"],
    },
}


def event(kind: str = "sales.sale.completed", **overrides: Any) -> dict[str, Any]:
    """A valid event of type `kind`; `payload__field=value` overrides one payload field."""
    payload = copy.deepcopy(PAYLOADS[kind])
    envelope: dict[str, Any] = {
        "event_id": f"evt-{next(_ids):08d}",
        "event_type": kind,
        "event_version": 1,
        "event_time": "2026-11-02T10:00:00.000Z",
        "source_system": "test",
        "trace_id": None,
        "key": "K-1",
        "payload": payload,
    }
    for name, value in overrides.items():
        if name.startswith("payload__"):
            payload[name.removeprefix("payload__")] = value
        else:
            envelope[name] = value
    return envelope


def jsonl(events: list[Any]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def typed_event(kind: str, key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A valid envelope of type `kind` around a hand-written payload (types without a factory)."""
    return {**event("sales.sale.completed"), "event_type": kind, "key": key, "payload": payload}


def order_placed(patient: dict[str, Any], order_id: str) -> dict[str, Any]:
    """A placed order for `patient` (a PATIENT-shaped record)."""
    return event(
        "pharmacy.order.placed",
        key=order_id,
        payload__order_id=order_id,
        payload__patient=copy.deepcopy(patient),
    )


def shipment_exception(detail: str) -> dict[str, Any]:
    payload = {"shipment_id": "SHP-1", "exception_code": "DELAY", "detail": detail}
    return typed_event("logistics.shipment.exception", "SHP-1", payload)


def deviation_opened(description: str) -> dict[str, Any]:
    payload = {
        "deviation_id": "DEV-26-00001",
        "batch_id": "BAT-1",
        "severity": "MINOR",
        "category": "LABELLING",
        "description": description,
    }
    return typed_event("manufacturing.deviation.opened", "BAT-1", payload)


def survey(comment: str, order_id: str = "ORD-1") -> dict[str, Any]:
    return event(
        "feedback.survey.submitted",
        key="SRV-1",
        payload__order_id=order_id,
        payload__comment=comment,
    )


def build_record(
    finished: datetime,
    outcome: str = "success",
    *,
    build_id: str | None = None,
    seconds: float = 60.0,
    **extra: Any,
) -> BuildRecord:
    """One build-log record (warehouse/build_log.py) that finished at `finished`."""
    return BuildRecord(
        build_id=build_id or f"b-{finished:%Y%m%dT%H%M%S}-{outcome}",
        trace_id="t",
        target="duckdb",
        started_at=finished - timedelta(seconds=seconds),
        finished_at=finished,
        seconds=seconds,
        outcome=outcome,
        **extra,
    )
