"""Confluent-framed Avro: every event type round-trips to the same JSON-wire dict; bad input gets
a specific error that never echoes the record."""

from __future__ import annotations

import io
import json
import math
import uuid
from datetime import datetime
from typing import Any

import fastavro
import orjson
import pytest

from pharmaflow.contracts import default_registry
from pharmaflow.contracts.avro_wire import (
    AvroDecodeError,
    AvroWire,
    EncodeError,
    RegistryError,
    UnknownSchemaId,
    WireError,
    is_framed,
    registry_client,
    schema_id_of,
)
from pharmaflow.errors import PharmaflowError
from pharmaflow.simulate import SimConfig, generate
from tests.factories import event

# Ten days are enough for deviations to close: every event type shows up.
ALL_TYPES = SimConfig(
    seed=3,
    days=10,
    scale=0.05,
    duplicate_rate=0,
    late_rate=0,
    out_of_order_rate=0,
    malformed_rate=0,
)
SECRET = "Zuleika-SECRET-Okonkwo"


def _url() -> str:
    return f"mock://avro-wire-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    output = generate(ALL_TYPES)
    return [orjson.loads(line) for line in output.lines]


@pytest.fixture
def wire() -> AvroWire:
    return AvroWire(_url())


def assert_same_event(sent: Any, got: Any, path: str = "") -> None:
    """Equal as JSON-wire values: timestamps as the same instant (ms), numbers by value."""
    if isinstance(sent, dict):
        assert isinstance(got, dict) and set(sent) == set(got), path
        for name in sent:
            assert_same_event(sent[name], got[name], f"{path}.{name}")
    elif isinstance(sent, str) and isinstance(got, str) and sent != got:
        sent_at, got_at = datetime.fromisoformat(sent), datetime.fromisoformat(got)
        assert sent_at.tzinfo is not None and got_at.tzinfo is not None, path
        assert sent_at == got_at, path
        assert got.endswith("Z"), path
    elif isinstance(sent, float) or isinstance(got, float):
        assert type(got) is float and math.isclose(sent, got), path
    else:
        assert sent == got and type(sent) is type(got), path


def test_every_event_type_round_trips(wire: AvroWire, events: list[dict[str, Any]]) -> None:
    first_of_type: dict[str, dict[str, Any]] = {}
    for e in events:
        first_of_type.setdefault(e["event_type"], e)
    assert set(first_of_type) == set(default_registry().event_types())
    for event_type, e in sorted(first_of_type.items()):
        value = wire.encode(e, "pharma.any")
        assert is_framed(value)
        assert schema_id_of(value) == wire.schema_id(event_type)
        assert_same_event(e, wire.decode(value, "pharma.any"))


def test_a_whole_simulated_window_round_trips(wire: AvroWire, events: list[dict[str, Any]]) -> None:
    for e in events:
        assert_same_event(e, wire.decode(wire.encode(e, "t"), "t"))


def test_offsets_come_back_as_the_same_instant_in_utc(wire: AvroWire) -> None:
    e = event("logistics.shipment.created", event_time="2026-11-02T05:30:00.123-05:00")
    e["payload"]["promised_delivery_time"] = "2026-11-03T12:00:00+01:00"
    got = wire.decode(wire.encode(e, "t"), "t")
    assert got["event_time"] == "2026-11-02T10:30:00.123Z"
    assert got["payload"]["promised_delivery_time"] == "2026-11-03T11:00:00.000Z"


def test_optional_fields_absent_or_null_come_back_absent(wire: AvroWire) -> None:
    e = event("pharmacy.order.insurance_validated")  # trace_id None, no reject_code
    got = wire.decode(wire.encode(e, "t"), "t")
    assert "trace_id" not in got and "reject_code" not in got["payload"]
    assert got["payload"]["copay_amount"] == 10.5


def test_date_and_decimal_logical_types(wire: AvroWire) -> None:
    e = event("pharmacy.order.placed")
    got = wire.decode(wire.encode(e, "t"), "t")
    assert got["payload"]["patient"]["date_of_birth"] == "1950-05-02"
    sale = wire.decode(wire.encode(event("sales.sale.completed", payload__unit_price=7), "t"), "t")
    assert sale["payload"]["unit_price"] == 7.0 and type(sale["payload"]["unit_price"]) is float


def test_the_body_is_plain_avro_of_the_contract_schema(wire: AvroWire) -> None:
    """Any Avro reader with the contract (e.g. a non-Python consumer) can read the body."""
    e = event("sales.sale.completed")
    value = wire.encode(e, "pharma.sales")
    schema = fastavro.parse_schema(default_registry().get("sales.sale.completed").schema)
    record = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
    assert record["payload"]["sale_id"] == "SAL-1"
    assert value[:5] == b"\x00" + wire.schema_id("sales.sale.completed").to_bytes(4, "big")


def test_contract_attributes_survive_registration(wire: AvroWire) -> None:
    schema_id = wire.schema_id("pharmacy.order.placed")
    registered = json.loads(wire.client.get_schema(schema_id).schema_str)
    assert registered["pharmaflow.event_type"] == "pharmacy.order.placed"
    assert registered["pharmaflow.key"] == "order_id"
    # subjects are record names: one domain topic carries several event types
    assert "pharmaflow.pharmacy.OrderPlacedEvent" in wire.client.get_subjects()


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"event_type": "sales.sale.teleported"}, "no contract"),
        ({"event_type": None}, "event_type"),
        ({"event_version": "1"}, "event_version"),
        ({"event_time": SECRET}, "event_time"),
        ({"event_time": "2026-11-02T10:00:00"}, "offset"),  # naive: no offset
        ({"key": None}, "key is missing"),
        ({"payload__quantity": SECRET}, "payload.quantity must be an integer"),
        ({"payload__quantity": True}, "payload.quantity must be an integer"),
        ({"payload__unit_price": 12.345}, "at most 2 decimals"),
        ({"payload__unit_price": SECRET}, "payload.unit_price must be a number"),
        ({"payload__promotion_code": 7}, "payload.promotion_code must be a string"),
        ({"payload": SECRET}, "payload must be an object"),
    ],
)
def test_events_that_do_not_fit_raise_encode_error(
    wire: AvroWire, change: dict[str, Any], reason: str
) -> None:
    e = event("sales.sale.completed", **change)
    with pytest.raises(EncodeError) as info:
        wire.encode(e, "pharma.sales")
    assert reason in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.reason == "avro_encode_error"


def test_unknown_enum_symbol_and_missing_nested_field(wire: AvroWire) -> None:
    with pytest.raises(EncodeError, match=r"payload\.priority must be one of the enum symbols"):
        wire.encode(event("pharmacy.order.placed", payload__priority="TELEPORTED"), "t")
    placed = event("pharmacy.order.placed")
    del placed["payload"]["patient"]["address"]["zip"]
    with pytest.raises(EncodeError, match=r"payload\.patient\.address\.zip is missing"):
        wire.encode(placed, "t")
    with pytest.raises(EncodeError, match="not a JSON object"):
        wire.encode([1, 2], "t")  # type: ignore[arg-type]


def test_unknown_schema_id_raises_unknown_schema_id(wire: AvroWire) -> None:
    value = wire.encode(event(), "t")
    stranger = b"\x00" + (999_999).to_bytes(4, "big") + value[5:]
    with pytest.raises(UnknownSchemaId) as info:
        wire.decode(stranger, "t")
    assert info.value.schema_id == 999_999 and info.value.reason == "unknown_schema_id"
    assert isinstance(info.value, WireError)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00\x00\x00",
        b"\x01" + SECRET.encode(),
        SECRET.encode(),
        b'{"event_id": "' + SECRET.encode() + b'"}',
    ],
)
def test_unframed_values_raise_avro_decode_error(wire: AvroWire, value: bytes) -> None:
    assert not is_framed(value)
    with pytest.raises(AvroDecodeError) as info:
        wire.decode(value, "t")
    assert SECRET not in str(info.value)


def test_garbage_after_a_known_schema_id_raises_avro_decode_error(wire: AvroWire) -> None:
    header = wire.encode(event("pharmacy.order.placed"), "t")[:5]
    for body in (b"", b"\xff" * 3, b"\x02" + SECRET.encode(), b"\x10" + b"\xfe" * 40):
        with pytest.raises(AvroDecodeError) as info:
            wire.decode(header + body, "t")
        assert SECRET not in str(info.value)
        assert info.value.reason == "avro_decode_error"


def test_is_framed() -> None:
    assert is_framed(b"\x00\x00\x00\x00\x01")
    assert not is_framed(b"\x00\x00\x00\x00")
    assert not is_framed(b"{}\x00\x00\x00")


def test_wires_with_the_same_mock_url_share_schema_ids() -> None:
    url = _url()
    producer_side, consumer_side = AvroWire(url), AvroWire(url)
    value = producer_side.encode(event(), "pharma.sales")
    assert consumer_side.decode(value, "pharma.sales")["payload"]["sale_id"] == "SAL-1"
    with pytest.raises(UnknownSchemaId):
        AvroWire(_url()).decode(value, "pharma.sales")  # another URL: another registry


def test_plain_mock_clients_do_not_share_state_even_with_the_same_url() -> None:
    """What confluent-kafka 2.15 does, and why `registry_client` caches one per URL."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    url = _url()
    first = SchemaRegistryClient.new_client({"url": url})
    second = SchemaRegistryClient.new_client({"url": url})
    schema = json.dumps(default_registry().get("sales.sale.completed").schema)
    schema_id = first.register_schema("s", Schema(schema, "AVRO"))
    assert first.get_schema(schema_id).schema_str == schema
    with pytest.raises(Exception, match="Not Found"):
        second.get_schema(schema_id)
    assert registry_client(url) is registry_client(url)


def test_without_auto_register_an_unregistered_schema_is_a_registry_error() -> None:
    strict = AvroWire(_url(), auto_register=False)
    with pytest.raises(RegistryError) as info:
        strict.encode(event(), "pharma.sales")
    assert not isinstance(info.value, WireError)  # not the record's fault: never quarantine


def test_bad_registry_url_is_a_one_line_error() -> None:
    with pytest.raises(PharmaflowError, match="must start with"):
        AvroWire("ftp://registry:8081")
