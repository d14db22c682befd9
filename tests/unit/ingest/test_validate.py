import numpy as np
import orjson
import pytest

from pharmaflow.contracts.registry import default_registry
from pharmaflow.ingest.decode import decode_json
from pharmaflow.ingest.validate import validate
from tests.factories import event


def _reasons(events):
    records = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
    v = validate(decode_json(records), default_registry())
    return v, list(zip(v.rejects.code.tolist(), v.rejects.field.tolist(), strict=True))


def test_valid_events_of_several_types_pass():
    types = [
        "pharmacy.order.placed",
        "sales.sale.completed",
        "manufacturing.batch.status",
        "logistics.shipment.created",
        "feedback.survey.submitted",
        "pharmacy.order.insurance_validated",
    ]
    v, reasons = _reasons([event(t) for t in types])
    assert v.rejects.ok.all(), reasons
    assert {k[0] for k in v.groups} == set(types)


@pytest.mark.parametrize(
    "bad, code, field",
    [
        (b'{"event_id": "x", ', "malformed_json", None),
        (b"[1, 2]", "not_an_object", None),
        (event(event_type="pharmacy.order.teleported"), "unknown_event_type", "event_type"),
        (event(event_version=7), "unknown_version", "event_version"),
        (event(event_version="1"), "wrong_type", "event_version"),
        (event(event_id=None), "missing_field", "event_id"),
        (event(event_id=""), "missing_field", "event_id"),
        (event(event_time="2026-11-02T10:00:00"), "invalid_timestamp", "event_time"),
        (event(event_time=1762077600), "wrong_type", "event_time"),
        (event(payload="nope"), "wrong_type", "payload"),
        (event(payload__quantity="three"), "wrong_type", "payload.quantity"),
        (event(payload__quantity=2.5), "wrong_type", "payload.quantity"),
        (event(payload__quantity=0), "out_of_range", "payload.quantity"),
        (event(payload__unit_price=0), "out_of_range", "payload.unit_price"),
        (event(payload__unit_price=True), "wrong_type", "payload.unit_price"),
        (event(payload__ndc="2-1433-80"), "invalid_format", "payload.ndc"),
        (
            event("manufacturing.batch.status", payload__status="TELEPORTED"),
            "unknown_enum",
            "payload.status",
        ),
        (
            event("logistics.shipment.created", payload__lot_numbers="LOT-1"),
            "wrong_type",
            "payload.lot_numbers",
        ),
        (
            event("logistics.shipment.created", payload__cold_chain="yes"),
            "wrong_type",
            "payload.cold_chain",
        ),
        (event("feedback.survey.submitted", payload__rating=9), "out_of_range", "payload.rating"),
        (
            event("pharmacy.order.placed", payload__patient="Zuleika"),
            "wrong_type",
            "payload.patient",
        ),
    ],
)
def test_each_kind_of_bad_event_gets_its_reason(bad, code, field):
    v, reasons = _reasons([event(), bad, event()])
    assert reasons[1] == (code, field)
    assert v.rejects.ok.tolist() == [True, False, True]


def test_missing_nested_patient_field_is_reported_with_its_path():
    bad = event("pharmacy.order.placed")
    del bad["payload"]["patient"]["address"]["zip"]
    _, reasons = _reasons([bad])
    assert reasons[0] == ("missing_field", "payload.patient.address.zip")


def test_optional_fields_may_be_absent_or_null():
    sale = event(payload__promotion_code=None)
    other = event()
    other["payload"].pop("promotion_code", None)
    v, _ = _reasons([sale, other, event(trace_id="t-1")])
    assert v.rejects.ok.all()


def test_bad_rows_are_isolated_among_many_good_ones():
    events = [event() for _ in range(1000)]
    bad_positions = [3, 517, 998]
    for i in bad_positions:
        events[i]["payload"]["quantity"] = "many"
    v, _ = _reasons(events)
    assert np.flatnonzero(~v.rejects.ok).tolist() == bad_positions
    quantity = v.columns[("sales.sale.completed", 1)]["payload.quantity"]
    assert quantity.null_count == 3 and quantity[0].as_py() == 3


def test_first_failure_wins_and_details_never_echo_the_value():
    secret = "Zuleika Okonkwo 415-555-0134"
    bad = event(event_time=secret, payload__quantity=secret)
    v, reasons = _reasons([bad])
    assert reasons[0] == ("invalid_timestamp", "event_time")
    assert "Zuleika" not in v.rejects.detail[0] and "555" not in v.rejects.detail[0]


def test_timestamps_with_offsets_are_normalised_to_utc():
    v, _ = _reasons([event(event_time="2026-11-02T10:00:00-05:00")])
    assert v.envelope["event_time"][0].as_py().isoformat() == "2026-11-02T15:00:00+00:00"


def test_fast_struct_path_agrees_with_field_by_field_checks():
    """The struct fast path must give exactly the reasons and values of the slow path."""
    import random

    import pyarrow as pa

    from pharmaflow.ingest.rejects import Rejects
    from pharmaflow.ingest.validate import check_record, check_record_fast

    rng = random.Random(1)
    junk = [None, "x", "", 2.5, 1.0, True, -3, 10**30, [], ["a", 1], {"k": 1}, "2026-13-01"]
    events = []
    for _ in range(3000):
        e = event(
            rng.choice(
                [
                    "sales.sale.completed",
                    "pharmacy.order.placed",
                    "logistics.shipment.created",
                    "manufacturing.batch.status",
                ]
            )
        )
        if rng.random() < 0.2:
            target = e["payload"]
            if "patient" in target and rng.random() < 0.5:
                target = target["patient"]
            target[rng.choice(list(target))] = rng.choice(junk)
        events.append(e)
    registry = default_registry()
    for event_type in {e["event_type"] for e in events}:
        payloads = [e["payload"] for e in events if e["event_type"] == event_type]
        spec = registry.get(event_type).payload
        rows = np.arange(len(payloads))
        slow, fast = Rejects(len(rows)), Rejects(len(rows))
        slow_cols: dict[str, pa.Array] = {}
        fast_cols: dict[str, pa.Array] = {}
        check_record(spec, payloads, rows, slow, slow_cols)
        check_record_fast(spec, payloads, rows, fast, fast_cols)
        assert not slow.ok.all(), event_type  # the mutations did break something
        assert slow.code.tolist() == fast.code.tolist()
        assert slow.field.tolist() == fast.field.tolist()
        ok = pa.array(slow.ok)
        for path, column in slow_cols.items():
            assert column.filter(ok).equals(fast_cols[path].filter(ok)), path
