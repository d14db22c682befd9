"""A contract as the validator needs it: a tree of typed fields read from an Avro schema.

Avro is the reference form (it is what a schema registry and Confluent-framed Avro use), but
events arrive as JSON too, where logical types look different: a `timestamp-millis` is an
ISO-8601 string with an offset, a `date` an ISO date, a `decimal` a JSON number. `Kind` names the
JSON-wire shape, so the validator checks what is on the wire while the Avro file stays the
single source of truth. The Avro type itself is kept beside it (`avro_type`, and precision and
scale for decimals), because it bounds the value: an Avro `int` is 32 bits even though the wire
kind is just "an integer". Range, pattern, identifier and PHI rules live in `pharmaflow.*`
attributes on the Avro fields (Avro allows extra attributes and ignores them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    STRING = "string"
    INT = "int"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    ENUM = "enum"
    DECIMAL = "decimal"
    TIMESTAMP = "timestamp"
    DATE = "date"
    STRING_LIST = "string_list"
    RECORD = "record"


# Integer ranges of the Avro integer types (the JSON wire has no limit of its own).
AVRO_INT_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class FieldSpec:
    """One field: its JSON-wire kind, its Avro type, whether it may be absent, its value rules.

    `avro_type` is the Avro type name under any `["null", T]` union: a primitive (`int`,
    `long`, `string`, ...), `enum`, `record`, `array`, or for logical types the underlying
    type (`long` for timestamp-millis, `bytes` for a decimal). `identifier` marks ids and codes
    (`"pharmaflow.identifier": true`): a pattern mismatch there is reported as an invalid
    identifier, since such a field must never carry free text (a name, an e-mail)."""

    name: str
    path: str
    kind: Kind
    required: bool
    avro_type: str = ""
    precision: int | None = None
    scale: int | None = None
    identifier: bool = False
    symbols: tuple[str, ...] = ()
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    const: Any = None
    phi: str | None = None
    doc: str | None = None
    children: tuple[FieldSpec, ...] = ()

    @property
    def int_range(self) -> tuple[int, int] | None:
        """The integer range the Avro type allows (None: not an integer field)."""
        return AVRO_INT_RANGES.get(self.avro_type) if self.kind is Kind.INT else None

    def leaves(self) -> list[FieldSpec]:
        """Every non-record field below (and including) this one, depth first."""
        if self.kind is not Kind.RECORD:
            return [self]
        out: list[FieldSpec] = []
        for child in self.children:
            out.extend(child.leaves())
        return out


@dataclass(frozen=True)
class Contract:
    """One version of one event type: the envelope plus its typed payload."""

    event_type: str
    version: int
    key_field: str
    schema: dict[str, Any]
    envelope: tuple[FieldSpec, ...]
    payload: FieldSpec
    phi_fields: tuple[FieldSpec, ...] = field(default=())

    @property
    def domain(self) -> str:
        return self.event_type.split(".", 1)[0]

    def free_text_fields(self) -> list[FieldSpec]:
        return [f for f in self.payload.leaves() if f.phi == "free_text"]


def _kind_and_required(avro_type: Any) -> tuple[Any, bool]:
    """Unwrap a `["null", T]` union: optional fields are exactly those nullable unions."""
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        if len(branches) != 1:
            raise ValueError(f'unsupported union {avro_type!r}: only ["null", T] is allowed')
        return branches[0], "null" not in avro_type
    return avro_type, True


def _kind_of(avro_type: Any) -> Kind:
    if isinstance(avro_type, str):
        simple = {
            "string": Kind.STRING,
            "int": Kind.INT,
            "long": Kind.INT,
            "float": Kind.DOUBLE,
            "double": Kind.DOUBLE,
            "boolean": Kind.BOOLEAN,
        }
        if avro_type in simple:
            return simple[avro_type]
        raise ValueError(f"unsupported Avro type {avro_type!r}")
    logical = avro_type.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return Kind.TIMESTAMP
    if logical == "date":
        return Kind.DATE
    if logical == "decimal":
        return Kind.DECIMAL
    kind = avro_type["type"]
    if kind == "enum":
        return Kind.ENUM
    if kind == "record":
        return Kind.RECORD
    if kind == "array" and avro_type.get("items") == "string":
        return Kind.STRING_LIST
    return _kind_of(kind)


def _avro_name(avro_type: Any) -> str:
    """The Avro type name of a (non-union) type: `{"type": "long", "logicalType": ...}` is
    `long`, a named record is `record`."""
    if isinstance(avro_type, str):
        return avro_type
    return _avro_name(avro_type["type"])


def field_spec(avro_field: dict[str, Any], parent: str = "") -> FieldSpec:
    """Build a `FieldSpec` (recursively for records) from one Avro field definition."""
    name = avro_field["name"]
    path = f"{parent}.{name}" if parent else name
    avro_type, required = _kind_and_required(avro_field["type"])
    kind = _kind_of(avro_type)
    children: tuple[FieldSpec, ...] = ()
    symbols: tuple[str, ...] = ()
    if kind is Kind.RECORD:
        children = tuple(field_spec(f, path) for f in avro_type["fields"])
    elif kind is Kind.ENUM:
        symbols = tuple(avro_type["symbols"])
    precision = scale = None
    if kind is Kind.DECIMAL:
        precision = int(avro_type["precision"])
        scale = int(avro_type.get("scale", 0))
    return FieldSpec(
        name=name,
        path=path,
        kind=kind,
        required=required,
        avro_type=_avro_name(avro_type),
        precision=precision,
        scale=scale,
        identifier=avro_field.get("pharmaflow.identifier") is True,
        symbols=symbols,
        minimum=avro_field.get("pharmaflow.min"),
        exclusive_minimum=avro_field.get("pharmaflow.exclusive_min"),
        maximum=avro_field.get("pharmaflow.max"),
        pattern=avro_field.get("pharmaflow.pattern"),
        const=avro_field.get("pharmaflow.const"),
        phi=avro_field.get("pharmaflow.phi"),
        doc=avro_field.get("doc"),
        children=children,
    )


def contract_from_schema(schema: dict[str, Any]) -> Contract:
    """Read an event schema (envelope record with a `payload` record field) into a `Contract`."""
    fields = {f["name"]: f for f in schema["fields"]}
    if "payload" not in fields:
        raise ValueError(f"schema {schema.get('name')!r} has no payload field")
    envelope = tuple(field_spec(f) for f in schema["fields"] if f["name"] != "payload")
    payload = field_spec(fields["payload"])
    phi = tuple(f for f in payload.leaves() if f.phi)
    return Contract(
        event_type=schema["pharmaflow.event_type"],
        version=int(schema["pharmaflow.version"]),
        key_field=schema["pharmaflow.key"],
        schema=schema,
        envelope=envelope,
        payload=payload,
        phi_fields=phi,
    )
