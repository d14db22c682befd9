import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import orjson
import pytest

from pharmaflow.config import Settings, TimeWindow
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.ingest.decode import decode_json
from pharmaflow.ingest.validate import validate
from tests.factories import event

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)  # the analysis time of every batch here


def _record(e):
    if isinstance(e, bytes):
        return e
    try:
        return orjson.dumps(e)
    except TypeError:  # integers beyond 64 bits: orjson will not write them, json will
        return json.dumps(e).encode()


def _reasons(events, registry=None, window=None):
    registry = registry or default_registry()
    records = [_record(e) for e in events]
    v = validate(decode_json(records, None, registry), registry, window, NOW)
    return v, list(zip(v.rejects.code.tolist(), v.rejects.field.tolist(), strict=True))


def _placed_born(date_of_birth):
    e = event("pharmacy.order.placed")
    e["payload"]["patient"]["date_of_birth"] = date_of_birth
    return e


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
        # Arrow alone would read these; DuckDB (no seconds) or PostgreSQL (offset) would not
        (event(event_time="2026-11-02T10Z"), "invalid_timestamp", "event_time"),
        (event(event_time="2026-11-02T10:00Z"), "invalid_timestamp", "event_time"),
        (event(event_time="2026-11-02T10:00:00+23:00"), "invalid_timestamp", "event_time"),
        (event(event_time="2026-11-02T10:00:00.1234567890Z"), "invalid_timestamp", "event_time"),
        (event(event_time="1970-01-01T00:00:00Z"), "out_of_range", "event_time"),
        (event(event_time="2999-01-01T00:00:00Z"), "out_of_range", "event_time"),
        (event(event_time="2026-11-04T12:00:01Z"), "out_of_range", "event_time"),  # now + 24h + 1s
        (
            event(
                "logistics.shipment.created", payload__promised_delivery_time="2027-11-05T00:00Z"
            ),
            "invalid_timestamp",
            "payload.promised_delivery_time",
        ),
        (
            event(
                "logistics.shipment.created",
                payload__promised_delivery_time="2027-11-05T00:00:00Z",  # now + 366 days + 12h
            ),
            "out_of_range",
            "payload.promised_delivery_time",
        ),
        (_placed_born("1899-12-31"), "out_of_range", "payload.patient.date_of_birth"),
        (_placed_born("2026-11-04"), "out_of_range", "payload.patient.date_of_birth"),
        (_placed_born("1950-5-2"), "invalid_format", "payload.patient.date_of_birth"),
        (event(event_time=1762077600), "wrong_type", "event_time"),
        (event(payload="nope"), "wrong_type", "payload"),
        (event(payload__quantity="three"), "wrong_type", "payload.quantity"),
        (event(payload__quantity=2.5), "wrong_type", "payload.quantity"),
        (event(payload__quantity=0), "out_of_range", "payload.quantity"),
        (event(payload__quantity=2**31), "out_of_range", "payload.quantity"),  # Avro int
        (event(payload__quantity=-(2**31) - 1), "out_of_range", "payload.quantity"),
        (event(payload__quantity=2**63), "out_of_range", "payload.quantity"),
        (event(payload__quantity=2**64 + 1), "out_of_range", "payload.quantity"),  # a float
        (
            orjson.dumps(event()).replace(b'"event_version":1', b'"event_version":1' + b"0" * 20),
            "out_of_range",
            "event_version",
        ),
        (event(payload__unit_price=12.555), "out_of_range", "payload.unit_price"),
        (event(payload__unit_price="12.555"), "out_of_range", "payload.unit_price"),
        (event(payload__unit_price=1e10), "out_of_range", "payload.unit_price"),
        (event(payload__unit_price="10000000000"), "out_of_range", "payload.unit_price"),
        (event(payload__unit_price="1e2"), "invalid_format", "payload.unit_price"),
        (event(payload__unit_price=" 12.50"), "invalid_format", "payload.unit_price"),
        (event(payload__unit_price="0.00"), "out_of_range", "payload.unit_price"),
        (
            event("logistics.shipment.created", payload__lot_numbers=[None, "LOT-1"]),
            "missing_field",
            "payload.lot_numbers[]",
        ),
        (
            event("logistics.shipment.created", payload__lot_numbers=["LOT-1", 7]),
            "wrong_type",
            "payload.lot_numbers[]",
        ),
        (
            event("logistics.shipment.created", payload__lot_numbers=["LOT-1", ["LOT-2"]]),
            "wrong_type",
            "payload.lot_numbers[]",
        ),
        (b'{"event_id":"x","event_id":"y"}', "duplicate_key", "event_id"),
        (
            b'{"event_type":"feedback.survey.submitted","payload":{"nps":3,"n\\u0070s":10}}',
            "duplicate_key",
            "payload.nps",
        ),
        (event(payload__unit_price=0), "out_of_range", "payload.unit_price"),
        (event(payload__unit_price=True), "wrong_type", "payload.unit_price"),
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


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-02T10:00:00.123456789Z", "2026-11-02T10:00:00.123456+00:00"),
        ("2026-11-02T10:00:00.999999999+05:45", "2026-11-02T04:15:00.999999+00:00"),
        ("2026-11-02T10:00:00.1234567-0330", "2026-11-02T13:30:00.123456+00:00"),
        ("2026-11-02 10:00:00.5+14", "2026-11-01T20:00:00.500000+00:00"),
    ],
)
def test_fractions_up_to_nine_digits_are_truncated_to_microseconds(text, expected):
    v, reasons = _reasons([event(event_time=text)])
    assert reasons == [(None, None)]
    assert v.envelope["event_time"][0].as_py().isoformat(timespec="microseconds") == expected


def test_the_time_window_comes_from_settings_and_the_batch_time():
    window = Settings(
        timestamp_min="2026-01-01T00:00:00Z",
        event_time_max_ahead_hours=1,
        timestamp_max_ahead_days=2,
    ).time_window
    assert window == TimeWindow(
        minimum=datetime(2026, 1, 1, tzinfo=UTC),
        event_time_ahead=timedelta(hours=1),
        max_ahead=timedelta(days=2),
    )
    ship = "logistics.shipment.created"
    events = [
        event(event_time="2025-12-31T23:59:59Z"),
        event(event_time="2026-11-03T13:00:00Z"),  # exactly now + 1 h: still fine
        event(event_time="2026-11-03T13:00:01Z"),
        event(ship, payload__promised_delivery_time="2026-11-05T12:00:00Z"),
        event(ship, payload__promised_delivery_time="2026-11-05T12:00:00.000001Z"),
    ]
    v, reasons = _reasons(events, window=window)
    assert [code for code, _ in reasons] == [
        "out_of_range",
        None,
        "out_of_range",
        None,
        "out_of_range",
    ]
    assert v.rejects.detail[0] == ("must lie between 2026-01-01T00:00:00Z and 1 hours after ingest")


def test_decimals_are_read_exactly_from_numbers_and_strings():
    prices = [12.5, "12.50", "-0", "007.10", 9999999999.99, "9999999999.99", 3, 0.29, 1.15]
    events = [event(payload__unit_price=p) for p in prices]
    # a negative price breaks the contract's own rule (> 0), not the decimal reading
    events[2]["payload"]["unit_price"] = "0.01"
    v, reasons = _reasons(events)
    assert v.rejects.ok.all(), reasons
    column = v.columns[("sales.sale.completed", 1)]["payload.unit_price"]
    assert column.type.precision == 12 and column.type.scale == 2
    expected = ["12.50", "12.50", "0.01", "7.10", "9999999999.99", "9999999999.99", "3.00"]
    expected += ["0.29", "1.15"]
    assert column.to_pylist() == [Decimal(x) for x in expected]


def test_out_of_range_details_name_the_rule_not_the_value():
    v, _ = _reasons([event(payload__quantity=2**31), event(payload__unit_price="123.456")])
    assert v.rejects.detail.tolist() == [
        "must fit an Avro int (-2147483648..2147483647)",
        "must have at most 2 decimal places and at most 10 digits before the point (decimal(12,2))",
    ]


def _test_registry(payload_fields):
    """A one-contract registry (envelope of the shipped contracts, this payload)."""
    schema = copy.deepcopy(default_registry().get("sales.sale.completed").schema)
    schema["pharmaflow.event_type"] = "test.thing.happened"
    for f in schema["fields"]:
        f.pop("pharmaflow.pattern", None)  # envelope rules are not under test here
        f.pop("pharmaflow.identifier", None)
        if f["name"] == "event_type":
            f["pharmaflow.const"] = "test.thing.happened"
        if f["name"] == "payload":
            f["type"]["fields"] = payload_fields
    registry = ContractRegistry()
    registry.register(schema)
    return registry


def test_a_pattern_mismatch_on_an_identifier_is_an_invalid_identifier():
    registry = _test_registry(
        [
            {
                "name": "pharmacist_id",
                "type": "string",
                "pharmaflow.identifier": True,
                "pharmaflow.pattern": "^RPH-[0-9]{4}$",
            },
            {"name": "code", "type": "string", "pharmaflow.pattern": "^[A-Z]{3}$"},
            {
                "name": "lots",
                "type": {"type": "array", "items": "string"},
                "pharmaflow.identifier": True,
                "pharmaflow.pattern": "^L[0-9]+$",
            },
        ]
    )
    spec = registry.get("test.thing.happened").payload.children
    assert [c.identifier for c in spec] == [True, False, True]

    def thing(**payload):
        return {
            **event(),
            "event_type": "test.thing.happened",
            "payload": {"pharmacist_id": "RPH-0001", "code": "ABC", "lots": ["L1"], **payload},
        }

    v, reasons = _reasons(
        [
            thing(),
            thing(pharmacist_id="zuleika.okonkwo@example.com"),
            thing(pharmacist_id="Zuleika Okonkwo"),
            thing(code="abc"),
            thing(lots=["L1", "Zuleika"]),
        ],
        registry,
    )
    assert reasons == [
        (None, None),
        ("invalid_identifier", "payload.pharmacist_id"),
        ("invalid_identifier", "payload.pharmacist_id"),
        ("invalid_format", "payload.code"),
        ("invalid_identifier", "payload.lots[]"),
    ]
    assert not any("Zuleika" in d or "@" in d for d in v.rejects.detail[1:])


def test_avro_types_bound_the_integers_and_are_recorded():
    registry = _test_registry(
        [
            {"name": "small", "type": "int"},
            {"name": "big", "type": ["null", "long"], "default": None},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 3},
            },
        ]
    )
    small, big, amount = registry.get("test.thing.happened").payload.children
    assert (small.avro_type, small.int_range) == ("int", (-(2**31), 2**31 - 1))
    assert (big.avro_type, big.int_range) == ("long", (-(2**63), 2**63 - 1))
    assert (amount.kind, amount.avro_type, amount.precision, amount.scale) == (
        "decimal",
        "bytes",
        5,
        3,
    )

    def thing(**payload):
        base = {"small": 1, "big": None, "amount": "1.5"}
        return {**event(), "event_type": "test.thing.happened", "payload": {**base, **payload}}

    _, reasons = _reasons(
        [
            thing(small=2**31 - 1, big=2**63 - 1, amount="99.999"),
            thing(big=-(2**63)),
            thing(big=2**63),
            thing(small=2**31),
            thing(amount="100"),
            thing(amount=1.2345),
        ],
        registry,
    )
    assert reasons == [
        (None, None),
        (None, None),
        ("out_of_range", "payload.big"),
        ("out_of_range", "payload.small"),
        ("out_of_range", "payload.amount"),
        ("out_of_range", "payload.amount"),
    ]


@pytest.mark.parametrize(
    "raw, field",
    [
        (b'{"payload":{"nps":3,"nps":10}}', "payload.nps"),
        (b'{"payload":{"nps":3,"n\\u0070s":10}}', "payload.nps"),  # the same key, escaped
        (b'{"payload" : {"nps" \t:3, "nps"\r\n: 10}}', "payload.nps"),  # whitespace
        (b'{"payload":{"comment":"a \\":b","nps":1,"nps":2}}', "payload.nps"),  # \": in a string
        (b'{"payload":{"comment":"x\\u003ay","comment":"z"}}', "payload.comment"),  # \u003a
        (
            b'{"payload":{"patient":{"address":{"zip":"01103","zip":"99999"}}}}',
            "payload.patient.address.zip",
        ),
        (b'{"payload":{},"payload":{}}', "payload"),
        (b'{"payload":{"lot_numbers":[{"a":1,"a":1}]}}', None),  # not a declared path
        (b'{"Zuleika Okonkwo":1,"Zuleika Okonkwo":2}', None),  # nor is this one
    ],
)
def test_a_repeated_key_at_any_depth_is_quarantined(raw, field):
    v, reasons = _reasons([event(), raw, event()])
    assert reasons[1] == ("duplicate_key", field)
    assert "Zuleika" not in v.rejects.detail[1] and "99999" not in v.rejects.detail[1]
    assert v.rejects.ok.tolist() == [True, False, True]


def test_keys_that_only_look_repeated_are_not():
    raws = [
        b'{"a":"\\":","b":"x\\":y","c":"\\u003a"}',  # quote-colon and colons inside strings
        b'{"a":{"k":1},"b":{"k":1},"c":[{"k":1},{"k":2}]}',  # the same key in sibling objects
        b'{"a\\\\":1,"a":2}',  # "a\\" and "a" differ
        b'{"n\\u0070":1,"np":2}',  # "n\u0070" decodes to "np": a real repeat
    ]
    docs = decode_json(raws)
    assert [type(d).__name__ for d in docs] == ["dict", "dict", "dict", "Undecodable"]
    assert docs[3].code == "duplicate_key"


def test_a_nul_character_is_refused_where_the_warehouse_could_not_store_it():
    v, reasons = _reasons([event(), event(payload__promotion_code="FALL\x0010")])
    assert reasons[1] == ("invalid_format", "payload.promotion_code")
    assert "NUL" in v.rejects.detail[1]


def test_fast_struct_path_agrees_with_field_by_field_checks():
    """The struct fast path must give exactly the reasons and values of the slow path."""
    import random

    import pyarrow as pa

    from pharmaflow.ingest.rejects import Rejects
    from pharmaflow.ingest.validate import Limits, check_record, check_record_fast

    rng = random.Random(1)
    junk = [None, "x", "", 2.5, 1.0, True, -3, 2**31, 2**63, [], ["a", 1], [None], ["a", "a b"]]
    junk += [{"k": 1}, "2026-13-01", "12.50", "12.555", 12.555, "1e2", "1970-01-01T00:00:00Z"]
    junk += ["2026-11-02T10:00:00.123456789Z", "2026-11-02T10Z", "1899-01-01", "2026-11-02"]
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
        limits = Limits.at(TimeWindow(), NOW)
        check_record(spec, payloads, rows, slow, slow_cols, limits)
        check_record_fast(spec, payloads, rows, fast, fast_cols, limits)
        assert not slow.ok.all(), event_type  # the mutations did break something
        assert slow.code.tolist() == fast.code.tolist()
        assert slow.field.tolist() == fast.field.tolist()
        ok = pa.array(slow.ok)
        for path, column in slow_cols.items():
            assert column.filter(ok).equals(fast_cols[path].filter(ok)), path
