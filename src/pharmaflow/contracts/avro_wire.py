"""Confluent-framed Avro on Kafka: the JSON-wire event dict to bytes and back.

Framing: magic byte 0, the 4-byte big-endian schema id, then the Avro binary body. Schemas go
through `confluent_kafka.schema_registry`, one subject per record name
(`record_subject_name_strategy`), because one domain topic carries several event types. The
contract files are registered as they are: their extra `pharmaflow.*` attributes are plain
Avro properties, which fastavro and the registry client accept and keep.

`encode` takes the JSON-wire dict (docs/contracts.md: timestamps as ISO-8601 strings with an offset,
dates as ISO strings, decimals as numbers), checks and converts it per the contract's field
kinds, and serialises it; `decode` returns the same JSON-wire shape (timestamps in UTC with `Z`
and milliseconds, dates ISO, decimals as floats, absent optional fields left out), so a consumer
validates an Avro event exactly like a JSON one.

Errors. `WireError` (with a machine-readable `reason`) means this one record is bad: it does not
fit its schema (`EncodeError`), names a schema id the registry does not know (`UnknownSchemaId`),
or is not Avro of its writer schema (`AvroDecodeError`). `RegistryError` is not a `WireError`:
the registry failed or refused (unreachable, incompatible schema), which is no fault of the
record and must not quarantine it. No message ever echoes a value (events carry PHI).

`mock://` registry URLs (tests): in confluent-kafka 2.15 every `MockSchemaRegistryClient` has its
own in-memory store, even for the same URL, so two clients never see each other's schemas. This
module keeps one client per URL per process (`registry_client`), so every `AvroWire` with the
same `mock://` URL in one process shares ids; across processes `mock://` state is never shared.
"""

from __future__ import annotations

import contextlib
import json
import threading
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from confluent_kafka.serialization import MessageField, SerializationContext

from pharmaflow.contracts.model import Contract, FieldSpec, Kind
from pharmaflow.contracts.registry import ContractRegistry, default_registry
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.reasons import ReasonCode

with warnings.catch_warnings():
    # The registry client imports authlib, which installs an "always" filter for its own
    # DeprecationWarning and then warns about httpx on import: noise on every CLI run, and it
    # breaks one-line error output. Let it install the filter, then put "ignore" in front.
    with contextlib.suppress(ImportError):
        import authlib.deprecate  # noqa: F401
    warnings.simplefilter("ignore", DeprecationWarning)
    from confluent_kafka.schema_registry import (
        Schema,
        SchemaRegistryClient,
        record_subject_name_strategy,
    )
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError

MAGIC_BYTE = 0
HEADER_BYTES = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class WireError(Exception):
    """One record cannot be encoded or decoded; `reason` is a stable code for quarantine."""

    reason = "wire_error"


class EncodeError(WireError):
    """The event does not fit its Avro contract (unknown type, missing field, wrong type)."""

    reason = "avro_encode_error"


class UnknownSchemaId(WireError):
    """The framed record names a schema id the registry does not have."""

    reason = ReasonCode.UNKNOWN_SCHEMA_ID

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"unknown schema id {schema_id}")
        self.schema_id = schema_id


class AvroDecodeError(WireError):
    """The value is not Confluent-framed Avro, or its body does not match its writer schema."""

    reason = "avro_decode_error"


class RegistryError(PharmaflowError):
    """The schema registry failed or refused a request; the record itself may be fine."""


def is_framed(value: bytes) -> bool:
    """True if `value` looks like Confluent-framed Avro (magic byte 0, room for a schema id)."""
    return len(value) >= HEADER_BYTES and value[0] == MAGIC_BYTE


def schema_id_of(value: bytes) -> int:
    """The schema id of a framed value (see `is_framed`)."""
    return int.from_bytes(value[1:HEADER_BYTES], "big")


_clients: dict[str, SchemaRegistryClient] = {}
_clients_lock = threading.Lock()


def registry_client(url: str) -> SchemaRegistryClient:
    """The process-wide client for a registry URL (`http(s)://…` or `mock://…`)."""
    if not url.startswith(("http://", "https://", "mock://")):
        raise PharmaflowError(
            f"schema registry URL must start with http://, https:// or mock://, got {url!r}"
        )
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = SchemaRegistryClient.new_client({"url": url})
        return client


class AvroWire:
    """Encode JSON-wire events as Confluent-framed Avro, and decode them back.

    With `auto_register` (the default) a contract's schema is registered under its record name
    on first use; without it the schema must already be registered (production registries often
    forbid producers to register).
    """

    def __init__(
        self,
        registry_url: str | None = None,
        *,
        client: SchemaRegistryClient | None = None,
        contracts: ContractRegistry | None = None,
        auto_register: bool = True,
    ) -> None:
        if client is None:
            if registry_url is None:
                raise PharmaflowError("Avro needs a schema registry URL")
            client = registry_client(registry_url)
        self.client = client
        self.contracts = contracts or default_registry()
        self.auto_register = auto_register
        self._encoders: dict[tuple[str, int | None], _Encoder] = {}
        self._deserializer = AvroDeserializer(
            client, conf={"subject.name.strategy": record_subject_name_strategy}
        )

    def encode(self, event: dict[str, Any], topic: str) -> bytes:
        """The framed Avro bytes of a JSON-wire event; `EncodeError` if it does not fit."""
        if not isinstance(event, dict):
            raise EncodeError("event is not a JSON object")
        event_type, version = event.get("event_type"), event.get("event_version")
        if not isinstance(event_type, str):
            raise EncodeError("event_type is missing or not a string")
        if version is not None and (type(version) is not int):
            raise EncodeError(f"{event_type}: event_version must be an integer")
        encoder = self._encoders.get((event_type, version)) or self._encoder(event_type, version)
        record = encoder.convert(event)
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            return encoder.serializer(record, ctx)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # fastavro's messages can quote the value: keep only the exception type.
            raise EncodeError(
                f"{event_type}: does not fit schema v{encoder.contract.version} "
                f"({type(exc).__name__})"
            ) from None

    def decode(self, value: bytes, topic: str) -> dict[str, Any]:
        """The JSON-wire dict of a framed Avro value.

        `topic` names where the value came from; subjects are per record name, so decoding
        needs only the schema id in the frame. Raises `AvroDecodeError`, `UnknownSchemaId`
        (both `WireError`) or `RegistryError`."""
        if not is_framed(value):
            raise AvroDecodeError("not Confluent-framed Avro (no magic byte 0 and schema id)")
        schema_id = schema_id_of(value)
        if len(value) == HEADER_BYTES:
            raise AvroDecodeError(f"empty Avro body (schema id {schema_id})")
        self._writer_schema(schema_id)
        try:
            # No SerializationContext: it would only run registry data-contract rules, which
            # pharmaflow does not use, and costs about a third of the decode time.
            record = self._deserializer(bytes(value), None)
        except Exception as exc:  # fastavro raises many unrelated types for a bad body
            raise AvroDecodeError(
                f"Avro body does not match writer schema id {schema_id} ({type(exc).__name__})"
            ) from None
        if not isinstance(record, dict):
            raise AvroDecodeError(f"writer schema id {schema_id} is not a record")
        return _to_wire(record)

    def schema_id(self, event_type: str, version: int | None = None) -> int:
        """The registry id of a contract's schema (registering it if allowed)."""
        encoder = self._encoders.get((event_type, version)) or self._encoder(event_type, version)
        return encoder.schema_id

    def _writer_schema(self, schema_id: int) -> None:
        """Fetch (and cache) the writer schema, turning registry failures into our errors."""
        try:
            self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaId(schema_id) from None
            raise RegistryError(f"schema registry error for schema id {schema_id}: {exc}") from exc
        except Exception as exc:  # transport errors (httpx, OAuth, …)
            raise RegistryError(
                f"schema registry unreachable ({type(exc).__name__}: {exc})"
            ) from exc

    def _encoder(self, event_type: str, version: int | None) -> _Encoder:
        contract = self.contracts.get(event_type, version)
        if contract is None:
            raise EncodeError(f"no contract for event type {event_type!r} version {version}")
        schema_str = json.dumps(contract.schema)
        subject = _fullname(contract.schema)
        schema = Schema(schema_str, "AVRO")
        try:
            if self.auto_register:
                schema_id = self.client.register_schema(subject, schema)
            else:
                schema_id = self.client.lookup_schema(subject, schema).schema_id
        except SchemaRegistryError as exc:
            raise RegistryError(f"schema registry refused {subject}: {exc}") from exc
        except Exception as exc:
            raise RegistryError(
                f"schema registry unreachable ({type(exc).__name__}: {exc})"
            ) from exc
        serializer = AvroSerializer(
            self.client,
            schema_str,
            conf={
                "auto.register.schemas": self.auto_register,
                "subject.name.strategy": record_subject_name_strategy,
            },
        )
        encoder = _Encoder(contract, int(schema_id), serializer)
        self._encoders[(event_type, version)] = encoder
        return encoder


class _Encoder:
    """One contract's converter from the JSON wire to Avro values, and its serializer."""

    def __init__(self, contract: Contract, schema_id: int, serializer: AvroSerializer) -> None:
        self.contract = contract
        self.schema_id = schema_id
        self.serializer = serializer
        fields = {f["name"]: f for f in contract.schema["fields"]}
        envelope = [(spec, fields[spec.name]) for spec in contract.envelope]
        envelope.append((contract.payload, fields["payload"]))
        self._convert = _record_converter(contract.event_type, envelope)

    def convert(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._convert(event, "")


Converter = Callable[[Any, str], Any]


def _record_converter(event_type: str, fields: list[tuple[FieldSpec, dict[str, Any]]]) -> Converter:
    """A function turning one JSON object into the Avro record of `fields` (spec, Avro field)."""
    plan = [
        (spec.name, spec.required, _converter(event_type, spec, avro_field))
        for spec, avro_field in fields
    ]

    def convert(obj: Any, where: str) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise EncodeError(f"{event_type}: {where.rstrip('.') or 'event'} must be an object")
        out: dict[str, Any] = {}
        for name, required, to_avro in plan:
            value = obj.get(name)
            if value is None:
                if required:
                    raise EncodeError(f"{event_type}: {where}{name} is missing")
                out[name] = None
            else:
                out[name] = to_avro(value, f"{where}{name}")
        return out

    return convert


def _converter(event_type: str, spec: FieldSpec, avro_field: dict[str, Any]) -> Converter:
    """The JSON-wire → Avro conversion of one field, by its contract kind."""
    kind = spec.kind

    def wrong(where: str, expected: str) -> EncodeError:
        return EncodeError(f"{event_type}: {where} must be {expected}")

    if kind is Kind.RECORD:
        avro_type = _non_null(avro_field["type"])
        children = {f["name"]: f for f in avro_type["fields"]}
        inner = _record_converter(event_type, [(c, children[c.name]) for c in spec.children])
        return lambda value, where: inner(value, where + ".")
    if kind is Kind.ENUM:
        symbols = frozenset(spec.symbols)

        def symbol(value: Any, where: str) -> Any:
            if type(value) is not str or value not in symbols:
                raise wrong(where, "one of the enum symbols")
            return value

        return symbol
    if kind is Kind.STRING:

        def string(value: Any, where: str) -> Any:
            if type(value) is not str:
                raise wrong(where, "a string")
            return value

        return string
    if kind is Kind.INT:

        def integer(value: Any, where: str) -> Any:
            if type(value) is not int:
                raise wrong(where, "an integer")
            return value

        return integer
    if kind is Kind.DOUBLE:

        def double(value: Any, where: str) -> Any:
            if type(value) is not float and type(value) is not int:
                raise wrong(where, "a number")
            return float(value)

        return double
    if kind is Kind.BOOLEAN:

        def boolean(value: Any, where: str) -> Any:
            if type(value) is not bool:
                raise wrong(where, "true or false")
            return value

        return boolean
    if kind is Kind.STRING_LIST:

        def string_list(value: Any, where: str) -> Any:
            if type(value) is not list or any(type(v) is not str for v in value):
                raise wrong(where, "a list of strings")
            return value

        return string_list
    if kind is Kind.TIMESTAMP:

        def timestamp(value: Any, where: str) -> Any:
            try:
                moment = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise wrong(where, "an ISO-8601 timestamp string with an offset") from None
            if moment.tzinfo is None:
                raise wrong(where, "an ISO-8601 timestamp string with an offset")
            return (moment - _EPOCH) // _MS

        return timestamp
    if kind is Kind.DATE:

        def iso_date(value: Any, where: str) -> Any:
            try:
                return date.fromisoformat(value)
            except (TypeError, ValueError):
                raise wrong(where, "an ISO-8601 date string") from None

        return iso_date
    if kind is Kind.DECIMAL:
        decimal_type = _non_null(avro_field["type"])
        scale, precision = int(decimal_type.get("scale", 0)), int(decimal_type["precision"])
        quantum = Decimal(1).scaleb(-scale)

        def decimal(value: Any, where: str) -> Any:
            if type(value) is not float and type(value) is not int:
                raise wrong(where, "a number")
            try:
                exact = Decimal(repr(value))
                fitted = exact.quantize(quantum)
            except InvalidOperation:
                raise wrong(where, f"a finite number with at most {scale} decimals") from None
            if fitted != exact:
                raise wrong(where, f"a number with at most {scale} decimals")
            if len(fitted.as_tuple().digits) > precision:
                raise wrong(where, f"a number of at most {precision} digits")
            return fitted

        return decimal
    raise ValueError(f"unsupported kind {kind}")  # pragma: no cover - model.Kind is closed


def _fullname(schema: dict[str, Any]) -> str:
    """The record's full name: the subject under `record_subject_name_strategy`."""
    name, namespace = schema["name"], schema.get("namespace")
    return f"{namespace}.{name}" if namespace and "." not in name else name


def _non_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null")
    return avro_type


def _to_wire(value: Any) -> Any:
    """fastavro's Python values back to the JSON wire; nulls (absent optionals) left out."""
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo is not None else value
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value
