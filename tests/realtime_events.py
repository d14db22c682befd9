"""Builders the speed-layer tests share: protected events and bronze-shaped batches.

Events are built as the engine hands them to the store: already validated and PHI-protected
(`payload.patient` holds a patient key and generalised fields), in the bronze column layout,
with each event's partition and offset. `Feed` numbers offsets per (topic, partition) the way a
broker would, so a test can cut one stream into batches at any point.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from pharmaflow.broker.topics import topic_for
from pharmaflow.realtime.config import RealtimeConfig
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.reader import StateReader
from pharmaflow.realtime.schema import TABLES
from pharmaflow.realtime.store import Applied, StateStore

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # a whole hour: windows align on it
_ids = itertools.count(1)
# An hour of lateness and four of retention: tests move hours, not days, of event time.
CONFIG = RealtimeConfig(allowed_lateness_s=3600, retention_s=4 * 3600, dedupe_ttl_hours=2)
SALE = "sales.sale.completed"
ORDER = "pharmacy.order."

BRONZE = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("event_version", pa.int32()),
        pa.field("event_time", pa.timestamp("us")),
        pa.field("key", pa.string()),
        pa.field("event_json", pa.string()),
        pa.field("source_uri", pa.string()),
        pa.field("source_partition", pa.int32()),
        pa.field("source_offset", pa.int64()),
    ]
)
REJECTED = pa.schema(
    [
        pa.field("source_uri", pa.string()),
        pa.field("source_partition", pa.int32()),
        pa.field("source_offset", pa.int64()),
        pa.field("event_type", pa.string()),
        pa.field("reason_code", pa.string()),
    ]
)

# A protected patient record, as `Protector` leaves it (a key, no identifier).
PROTECTED_PATIENT = {
    "patient_key": "pk_0f3a9c2e5b7d41a8",
    "birth_year": 1950,
    "age_90_plus": False,
    "state": "MA",
    "zip3": "011",
}


def at(minutes: float = 0.0, **delta: float) -> datetime:
    """T0 plus some minutes (and/or other timedelta fields)."""
    return T0 + timedelta(minutes=minutes, **delta)


def _payload(kind: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any]
    if kind.startswith("pharmacy.order."):
        base = {"order_id": key}
        if kind == "pharmacy.order.placed":
            base.update(
                pharmacy_id="PH-001", payer_id="PY-001", ndc="00002-1433-80", quantity=1,
                days_supply=30, priority="STANDARD", patient=dict(PROTECTED_PATIENT),
            )  # fmt: skip
        elif kind == "pharmacy.order.insurance_validated":
            base.update(status="APPROVED", copay_amount=10.0)
        elif kind == "pharmacy.order.shipped":
            base.update(shipment_id=f"SHP-{key}", carrier_id="CR-UPS")
        elif kind == "pharmacy.order.cancelled":
            base.update(reason="Patient request")
    elif kind == "manufacturing.sensor.reading":
        base = {
            "sensor_id": "S-1", "batch_id": key, "equipment_id": "EQ-1",
            "sensor_type": "TEMPERATURE", "value": 37.0, "unit": "C", "spec_min": 36.0,
            "spec_max": 38.0,
        }  # fmt: skip
    elif kind == "manufacturing.lab.result":
        base = {
            "test_id": "T-1", "batch_id": key, "test_name": "Assay", "result": 99.0,
            "unit": "%", "spec_min": 95.0, "spec_max": 105.0, "outcome": "PASS",
            "analyst_id": "QC-01",
        }  # fmt: skip
    elif kind == "logistics.temperature.reading":
        base = {
            "shipment_id": key, "logger_id": "LG-1", "celsius": 5.0, "spec_min": 2.0,
            "spec_max": 8.0,
        }  # fmt: skip
    elif kind == "logistics.shipment.created":
        base = {
            "shipment_id": key, "origin_facility_id": "DC-01", "carrier_id": "CR-UPS",
            "service_level": "OVERNIGHT", "promised_delivery_time": "2026-11-03T12:00:00Z",
            "cold_chain": True, "lot_numbers": ["LOT-1"],
        }  # fmt: skip
    elif kind == "logistics.shipment.exception":
        base = {"shipment_id": key, "exception_code": "DELAY", "detail": "Held at hub"}
    elif kind.startswith("logistics.shipment."):
        base = {"shipment_id": key}
    else:
        base = {"sale_id": key, "pharmacy_id": "PH-001", "ndc": "00002-1433-80",
                "quantity": 1, "unit_price": 9.5}  # fmt: skip
    base.update(fields)
    return base


def event(kind: str, when: datetime, key: str = "K-1", **fields: Any) -> dict[str, Any]:
    """A protected event of type `kind` at `when`; `fields` override payload fields."""
    return {
        "event_id": f"rt-{next(_ids):09d}",
        "event_type": kind,
        "event_version": 1,
        "event_time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "source_system": "test",
        "key": key,
        "payload": _payload(kind, key, fields),
    }


class Feed:
    """Numbers events per (topic, partition) like a broker and builds bronze batches.
    `topic`: one topic for everything (a file replay); default: each type's domain topic."""

    def __init__(self, topic: str | None = None) -> None:
        self.topic = topic
        self._next: dict[tuple[str, int], int] = {}

    def place(self, events: Iterable[dict[str, Any]], partition: int = 0) -> list[tuple]:
        """Give each event its (topic, partition, offset): the records of one stream."""
        records = []
        for e in events:
            topic = self.topic or topic_for(e["event_type"])
            offset = self._next.get((topic, partition), 0)
            self._next[(topic, partition)] = offset + 1
            records.append((e, topic, partition, offset))
        return records


def batch(records: list[tuple]) -> tuple[pa.Table, dict[tuple[str, int], int]]:
    """The bronze table of placed records and the offsets to commit with it."""
    rows = {name: [] for name in BRONZE.names}
    offsets: dict[tuple[str, int], int] = {}
    for e, topic, partition, offset in records:
        when = datetime.fromisoformat(e["event_time"].replace("Z", "+00:00"))
        rows["event_id"].append(e["event_id"])
        rows["event_type"].append(e["event_type"])
        rows["event_version"].append(1)
        rows["event_time"].append(when.replace(tzinfo=None))
        rows["key"].append(e["key"])
        rows["event_json"].append(orjson.dumps(e).decode())
        rows["source_uri"].append(topic)
        rows["source_partition"].append(partition)
        rows["source_offset"].append(offset)
        offsets[(topic, partition)] = max(offsets.get((topic, partition), -1), offset)
    return pa.table(rows, schema=BRONZE), offsets


def rejected(rows: list[tuple[str, int, int, str | None, str]]) -> pa.Table:
    """Quarantined records: (topic, partition, offset, event_type, reason_code)."""
    return pa.Table.from_pylist(
        [dict(zip(REJECTED.names, r, strict=True)) for r in rows],
        schema=REJECTED,
    )


def apply(store: StateStore, records: list[tuple], wall: datetime) -> Applied:
    """Apply placed records as one batch (no rejects), committing their offsets."""
    table, offsets = batch(records)
    return store.apply(table, None, offsets, wall)


def dump(db: Database) -> dict[str, list[tuple]]:
    """Every row of every table the store owns; seen ids as (partition, hour, id), since how
    they are grouped into rows depends on where batches were cut."""
    with db.reading() as tx:
        rows = {t: sorted(tx.query(f"SELECT * FROM {t}"), key=repr) for t in TABLES}
    rows["rt_seen"] = sorted(
        (pid, hour, i) for pid, hour, _seq, ids in rows["rt_seen"] for i in ids.split("\n")
    )
    return rows


def view(db: Database, config: RealtimeConfig = CONFIG) -> dict:
    """A snapshot without its read time: what two runs must agree on."""
    snap = StateReader(db, config).snapshot(at(0))
    return {
        "clock": snap.clock,
        "windows": snap.windows,
        "orders": snap.orders,
        "shipments": snap.shipments,
        "sensors": snap.sensors,
        "lab_failures": snap.lab_failures,
        "late": snap.late,
        "totals": snap.totals,
    }


def mixed_events(n: int, seed: int = 1) -> list[dict]:
    """A stream of orders, sensors, shipments and sales, some out of order and some late."""
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        minute = i * 0.5 + rnd.choice([0, 0, 0, -3, -90, -200])
        kind = rnd.choice(
            [SALE, "manufacturing.sensor.reading", "logistics.temperature.reading",
             ORDER + "placed", ORDER + "filled", ORDER + "insurance_validated",
             "logistics.shipment.created", "logistics.shipment.exception",
             "manufacturing.lab.result"]
        )  # fmt: skip
        key = f"K-{rnd.randrange(12)}"
        fields = {
            "value": rnd.choice([37.0, 40.0]),
            "celsius": rnd.choice([5.0, 9.0]),
            "status": rnd.choice(["APPROVED", "REJECTED"]),
            "outcome": rnd.choice(["PASS", "FAIL"]),
        }
        if not kind.startswith(("manufacturing.sensor", "pharmacy.order.ins")):
            fields.pop("value")
            fields.pop("status")
        if kind != "logistics.temperature.reading":
            fields.pop("celsius")
        if kind != "manufacturing.lab.result":
            fields.pop("outcome")
        events.append(event(kind, at(minute), key=key, **fields))
    return events
