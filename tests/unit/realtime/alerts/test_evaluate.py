"""Rules over hand-built snapshots: which incidents are active, their keys, and that what
they say is made only of the snapshot fields each kind chose."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from pharmaflow.realtime.alerts.evaluate import evaluate_rules
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.snapshot import (
    LabFailure,
    OrderWaiting,
    SensorState,
    ShipmentState,
    Snapshot,
    WindowValue,
)

NOW = datetime(2026, 3, 2, 12, 2, 30, tzinfo=UTC)
CLOCK = datetime(2026, 3, 2, 12, 1, 10, tzinfo=UTC)


def rules(text: str) -> AlertRules:
    return AlertRules.parse("rules:\n" + text, origin="test")


def snap(**parts) -> Snapshot:
    return Snapshot(clock=parts.pop("clock", CLOCK), taken_at=NOW, **parts)


def shipment(sid: str, minutes: float = 0, excursion: bool = False, **kw) -> ShipmentState:
    base = dict(
        shipment_id=sid,
        carrier_id="CAR-7",
        cold_chain=True,
        minutes_out_of_range=minutes,
        in_excursion=excursion,
        last_celsius=9.25 if excursion else 5.0,
        spec_min=2.0,
        spec_max=8.0,
        last_reading_at=CLOCK - timedelta(minutes=3),
    )
    return ShipmentState(**{**base, **kw})


def sensor(batch: str, sid: str, n: int) -> SensorState:
    return SensorState(batch, "EQ-2", sid, "temperature", n, 9.3, 2.0, 8.0, CLOCK)


def order(oid: str, stage: str, hours: float, status: str | None = None) -> OrderWaiting:
    return OrderWaiting(oid, "PH-001", stage, CLOCK - timedelta(hours=hours), hours * 3600, status)


def window(kpi: str, start: datetime, entity: str, value: float, width: int = 300, label=""):
    return WindowValue(kpi, width, start, entity, label, value, False)


COLD = rules("  - {id: coldchain_excursion, kind: coldchain_excursion, severity: critical}\n")


def test_coldchain_fires_on_a_current_excursion_or_above_the_minutes_threshold():
    s = snap(
        shipments=[
            shipment("SHP-1", minutes=15, excursion=True),  # in excursion now
            shipment("SHP-2", minutes=45),  # back in range, but over 30 min in total
            shipment("SHP-3", minutes=30),  # exactly at the threshold: not above it
            shipment("SHP-4", minutes=90, excursion=True, delivered=True),  # delivered
            shipment("SHP-5"),
        ]
    )
    active = evaluate_rules(COLD, s, NOW)
    assert list(active) == ["coldchain_excursion:SHP-1", "coldchain_excursion:SHP-2"]
    one = active["coldchain_excursion:SHP-1"]
    assert one.severity == "critical" and one.rule_id == "coldchain_excursion"
    assert one.summary == (
        "Cold-chain excursion on shipment SHP-1 (carrier CAR-7): 15 min out of range, "
        "last reading 9.2 °C outside 2.0 to 8.0 °C"
    )
    assert one.details["last_reading_at"] == "2026-03-02T11:58:10Z"
    assert "within 2.0 to 8.0" in active["coldchain_excursion:SHP-2"].summary

    delivered_too = rules(
        "  - {id: c, kind: coldchain_excursion, severity: info, "
        "thresholds: {include_delivered: true, in_excursion: false, minutes_out_of_range: 60}}\n"
    )
    assert list(evaluate_rules(delivered_too, s, NOW)) == ["c:SHP-4"]


def test_sensor_fires_at_n_consecutive_readings():
    r = rules(
        "  - {id: sensor_out_of_spec, kind: sensor_out_of_spec, severity: warning, "
        "thresholds: {consecutive_readings: 3}}\n"
    )
    s = snap(sensors=[sensor("B-1", "S-1", 2), sensor("B-1", "S-2", 3), sensor("B-2", "S-1", 7)])
    active = evaluate_rules(r, s, NOW)
    assert list(active) == ["sensor_out_of_spec:B-1/S-2", "sensor_out_of_spec:B-2/S-1"]
    assert active["sensor_out_of_spec:B-2/S-1"].summary == (
        "Sensor S-1 (temperature) on equipment EQ-2, batch B-2: 7 consecutive readings out "
        "of spec (last 9.30, spec 2.0 to 8.0)"
    )


def test_orders_stuck_longer_than_their_stage_threshold():
    r = rules(
        "  - id: order_stuck\n    kind: order_stuck\n    severity: warning\n"
        "    thresholds: {hours: {placed: 2, insurance_validated: 24}}\n"
    )
    s = snap(
        orders=[
            order("ORD-1", "placed", 2.5),
            order("ORD-2", "placed", 2.0),  # exactly the threshold: not longer
            order("ORD-3", "insurance_validated", 30, "PRIOR_AUTH_REQUIRED"),
            order("ORD-4", "filled", 500),  # no threshold for filled in this file
        ]
    )
    active = evaluate_rules(r, s, NOW)
    assert list(active) == ["order_stuck:ORD-1", "order_stuck:ORD-3"]
    assert active["order_stuck:ORD-3"].summary == (
        "Order ORD-3 (pharmacy PH-001, insurance PRIOR_AUTH_REQUIRED) stuck in "
        "insurance_validated for 30.0 h (threshold 24 h)"
    )
    assert active["order_stuck:ORD-1"].details["waiting_hours"] == 2.5


def test_lab_failures_per_batch_within_the_lookback_of_the_stream_clock():
    r = rules("  - {id: lab_failure, kind: lab_failure, severity: critical}\n")
    s = snap(
        lab_failures=[
            LabFailure("B-1", "T-2", "Endotoxin", CLOCK - timedelta(hours=1)),
            LabFailure("B-1", "T-1", "Sterility", CLOCK - timedelta(hours=2)),
            LabFailure("B-9", "T-1", "Sterility", CLOCK - timedelta(hours=25)),  # too old
        ]
    )
    active = evaluate_rules(r, s, NOW)
    assert list(active) == ["lab_failure:B-1"]
    b1 = active["lab_failure:B-1"]
    assert b1.summary == "Lab failure on batch B-1: 2 failed tests (T-1 Sterility, T-2 Endotoxin)"
    assert b1.details["failed_tests"] == 2 and b1.details["test_ids"] == "T-1, T-2"
    forever = rules(
        "  - {id: lab, kind: lab_failure, severity: info, thresholds: {within: never}}\n"
    )
    assert list(evaluate_rules(forever, s, NOW)) == ["lab:B-1", "lab:B-9"]


# Processing-time windows: NOW is 12:02:30, so the last complete 5-minute window is
# 11:55-12:00 and the one before it 11:50-11:55; 12:00-12:05 is still filling.
LAST = datetime(2026, 3, 2, 11, 55, tzinfo=UTC)
QUARANTINE = rules(
    "  - {id: quarantine_rate, kind: quarantine_rate, severity: warning, "
    "thresholds: {percent: 5, min_records: 100, width: 300s}}\n"
)


def test_quarantine_rate_reads_the_last_complete_processing_time_window_per_topic():
    five = timedelta(minutes=5)
    windows = [
        window("records", LAST, "orders", 200),
        window("quarantined", LAST, "orders", 8, label="SCHEMA_INVALID"),
        window("quarantined", LAST, "orders", 4, label="MALFORMED_JSON"),  # 12/200 = 6%
        window("records", LAST, "sensors", 1000),
        window("quarantined", LAST, "sensors", 50, label="MALFORMED_JSON"),  # exactly 5%
        window("records", LAST, "labs", 99),
        window("quarantined", LAST, "labs", 99, label="MALFORMED_JSON"),  # under min_records
        window("records", LAST + five, "shipments", 100),  # the open window: not read
        window("quarantined", LAST + five, "shipments", 100, label="MALFORMED_JSON"),
        window("records", LAST - five, "events", 100),  # older than the last window
        window("quarantined", LAST - five, "events", 100, label="MALFORMED_JSON"),
        window("records", LAST, "orders", 10, width=60),  # another width
        window("quarantined", LAST, "orders", 10, width=60),
    ]
    active = evaluate_rules(QUARANTINE, snap(windows=windows), NOW)
    assert list(active) == ["quarantine_rate:orders"]
    orders = active["quarantine_rate:orders"]
    assert orders.details == {
        "topic": "orders",
        "quarantined": 12,
        "records": 200,
        "rate_percent": 6.0,
        "threshold_percent": 5.0,
        "window_start": "2026-03-02T11:55:00Z",
        "window_end": "2026-03-02T12:00:00Z",
        "width_s": 300,
    }
    assert orders.summary == (
        "Quarantine rate on topic orders: 6.0% (12 quarantined of 200 records) over 5 min "
        "to 2026-03-02 12:00 UTC (threshold 5%)"
    )
    # five minutes on, 12:00-12:05 is the last complete window: orders resolves, and the
    # shipments topic, whose window has now completed, fires
    later = evaluate_rules(QUARANTINE, snap(windows=windows), NOW + five)
    assert list(later) == ["quarantine_rate:shipments"]


def test_a_rate_for_all_topics_together():
    r = rules(
        "  - {id: q, kind: quarantine_rate, severity: info, for_each: all, "
        "thresholds: {percent: 5, min_records: 100}}\n"
    )
    windows = [
        window("records", LAST, "a", 60),
        window("quarantined", LAST, "a", 3),
        window("records", LAST, "b", 60),
        window("quarantined", LAST, "b", 4),
    ]
    active = evaluate_rules(r, snap(windows=windows), NOW)
    assert list(active) == ["q:*"]
    assert active["q:*"].details["records"] == 120 and active["q:*"].details["quarantined"] == 7
    assert "on topic all:" in active["q:*"].summary


def test_carrier_exception_rate_sums_the_lookback_in_event_time_with_a_minimum():
    r = rules(
        "  - {id: carrier_exception_rate, kind: carrier_exception_rate, severity: warning, "
        "thresholds: {percent: 10, min_shipments: 20, width: 300s, over: 1h}}\n"
    )
    # CLOCK is 12:01:10: the hour read is 11:00-12:00 (12 windows of 5 minutes).
    hour = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    windows = []
    for k in range(12):
        start = hour + timedelta(minutes=5 * k)
        windows += [
            window("shipments_created", start, "CAR-7", 2, label="EXPRESS"),
            window("shipments_created", start, "CAR-8", 1, label="STANDARD"),
            window("shipments_created", start, "CAR-9", 5, label="STANDARD"),
        ]
    windows += [
        window("shipment_exceptions", hour, "CAR-7", 2, label="DAMAGED"),
        window("shipment_exceptions", hour + timedelta(minutes=30), "CAR-7", 1, label="DELAY"),
        window("shipment_exceptions", hour, "CAR-8", 12, label="DELAY"),  # only 12 shipments
        window("shipment_exceptions", hour, "CAR-9", 6, label="DELAY"),  # 6/60 = 10%: not above
        window("shipment_exceptions", hour - timedelta(minutes=5), "CAR-9", 50),  # before
        window("shipment_exceptions", hour + timedelta(hours=1), "CAR-9", 50),  # still open
    ]
    active = evaluate_rules(r, snap(windows=windows), NOW)
    assert list(active) == ["carrier_exception_rate:CAR-7"]
    car7 = active["carrier_exception_rate:CAR-7"]
    assert car7.details["exceptions"] == 3 and car7.details["shipments"] == 24
    assert car7.details["rate_percent"] == 12.5
    assert car7.details["window_start"] == "2026-03-02T11:00:00Z"
    assert car7.summary == (
        "Shipment exception rate of carrier CAR-7: 12.5% (3 exceptions of 24 shipments) over "
        "1 h to 2026-03-02 12:00 UTC (threshold 10%)"
    )
    # no stream clock yet (no data): event-time rates are not judged
    assert evaluate_rules(r, snap(windows=windows, clock=None), NOW) == {}


def test_an_empty_snapshot_has_no_incidents_under_the_default_rules():
    assert evaluate_rules(AlertRules.load(None), snap(), NOW) == {}
    assert evaluate_rules(AlertRules.load(None), snap(clock=None), NOW) == {}


# ---- what alert texts are made of ----------------------------------------------------------

# Per kind: the details an incident carries (docs/alerts.md), nothing else.
DETAILS = {
    "coldchain_excursion": {
        "shipment_id", "carrier_id", "minutes_out_of_range", "in_excursion", "last_celsius",
        "spec_min", "spec_max", "last_reading_at", "delivered",
    },
    "sensor_out_of_spec": {
        "batch_id", "equipment_id", "sensor_id", "sensor_type", "consecutive_out_of_spec",
        "last_value", "spec_min", "spec_max", "last_at",
    },
    "order_stuck": {
        "order_id", "pharmacy_id", "stage", "entered_at", "waiting_hours", "threshold_hours",
        "insurance_status",
    },
    "lab_failure": {
        "batch_id", "failed_tests", "test_ids", "test_names", "first_failed_at",
        "last_failed_at",
    },
    "quarantine_rate": {
        "topic", "quarantined", "records", "rate_percent", "threshold_percent",
        "window_start", "window_end", "width_s",
    },
    "carrier_exception_rate": {
        "carrier_id", "exceptions", "shipments", "rate_percent", "threshold_percent",
        "window_start", "window_end", "width_s",
    },
}  # fmt: skip
# The words of the summary templates: whatever else a summary says is a snapshot id.
_TEMPLATES = (
    "Cold chain excursion on shipment carrier min out of range last reading C outside within "
    "Sensor equipment batch consecutive readings of spec Order pharmacy insurance stuck in "
    "for h threshold Lab failure failed tests test Quarantine rate topic quarantined records "
    "over to UTC Shipment exception exceptions shipments and more"
)
TEMPLATE_WORDS = set(_TEMPLATES.split())
IDS = {
    "SHP-1", "CAR-7", "EQ-2", "S-1", "B-1", "temperature", "ORD-1", "PH-001", "placed",
    "T-1", "Sterility", "orders", "APPROVED",
}  # fmt: skip


def test_texts_and_details_are_made_only_of_the_snapshot_fields_each_kind_chose():
    s = snap(
        shipments=[shipment("SHP-1", 40, True)],
        sensors=[sensor("B-1", "S-1", 5)],
        orders=[order("ORD-1", "placed", 5, "APPROVED")],
        lab_failures=[LabFailure("B-1", "T-1", "Sterility", CLOCK)],
        windows=[
            window("records", LAST, "orders", 200),
            window("quarantined", LAST, "orders", 50),
            window("shipments_created", LAST, "CAR-7", 30),
            window("shipment_exceptions", LAST, "CAR-7", 9),
        ],
    )
    active = evaluate_rules(AlertRules.load(None), s, NOW)
    assert sorted(i.rule_id for i in active.values()) == sorted(DETAILS)
    iso_time = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    for incident in active.values():
        assert set(incident.details) == DETAILS[incident.rule_id], incident.rule_id
        for name, value in incident.details.items():
            if isinstance(value, str):
                parts = value.split(", ")  # lists (test ids/names) are joined with ", "
                assert all(p in IDS or iso_time.match(p) for p in parts), (name, value)
            else:
                assert value is None or isinstance(value, int | float | bool), (name, value)
        assert incident.key.split(":", 1)[1].split("/")[0] in IDS
        residue = incident.summary
        for value in sorted(IDS, key=len, reverse=True):
            residue = residue.replace(value, " ")
        residue = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", " ", residue)
        words = set(re.findall(r"[A-Za-z_]+", residue))
        assert words <= TEMPLATE_WORDS, (incident.summary, words - TEMPLATE_WORDS)


@pytest.mark.parametrize("n", [1_000, 20_000])
def test_large_snapshots_evaluate_in_one_pass(n):
    s = snap(
        orders=[order(f"ORD-{i}", "placed", 1 + (i % 3)) for i in range(n)],
        shipments=[shipment(f"SHP-{i}", minutes=i % 60) for i in range(n)],
        windows=[window("records", LAST, f"t{i}", 100) for i in range(n)],
    )
    active = evaluate_rules(AlertRules.load(None), s, NOW)
    stuck = sum(1 for i in range(n) if 1 + (i % 3) > 2)
    cold = sum(1 for i in range(n) if i % 60 > 30)
    assert len(active) == stuck + cold
