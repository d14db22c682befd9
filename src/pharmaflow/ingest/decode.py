"""Decode raw records into Python values, marking the ones that are not JSON objects.

Decoding is the one step that must touch each record on its own (JSON is not columnar);
orjson does it in C at well over a million records a second. Everything after works on columns.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from pharmaflow.contracts.model import Kind
from pharmaflow.contracts.registry import ContractRegistry


class Undecodable:
    """Stands in for a record that could not be decoded; carries the reason."""

    __slots__ = ("code", "detail")

    def __init__(self, detail: str, code: str = "malformed_json") -> None:
        self.detail = detail
        self.code = code


_loads = orjson.loads


def _decode_one(raw: bytes) -> Any:
    try:
        return _loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message names the position, never the content: safe to keep.
        return Undecodable(f"not valid JSON ({str(exc).split(':')[0]})")


def decode_json(records: Sequence[bytes]) -> list[Any]:
    """orjson-decode each record; failures become `Undecodable` so the batch never stops."""
    return [_decode_one(r) for r in records]


_INT = re.compile(r"^[+-]?\d+$")


def _to_int(text: str) -> Any:
    return int(text) if _INT.match(text) else text


def _to_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _to_bool(text: str) -> Any:
    return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), text)


def _to_list(text: str) -> Any:
    return [item for item in text.split("|") if item]


_CONVERT: dict[Kind, Callable[[str], Any]] = {
    Kind.INT: _to_int,
    Kind.DOUBLE: _to_float,
    Kind.DECIMAL: _to_float,
    Kind.BOOLEAN: _to_bool,
    Kind.STRING_LIST: _to_list,
}


def decode_csv(
    records: Sequence[bytes], columns: Sequence[str], registry: ContractRegistry
) -> list[Any]:
    """CSV rows (envelope columns, then one column per payload field) into event dicts.

    Cells are text; each is converted to its contract type here, and a value that does not
    convert is passed on as text so the validator reports it (`wrong_type`) like any other.
    Lists are `|`-separated; an empty cell is null. One record per line.
    """
    return [_csv_record(r, columns, registry) for r in records]


def _csv_record(raw: bytes, columns: Sequence[str], registry: ContractRegistry) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Undecodable("not valid UTF-8")
    rows = list(csv.reader([text]))
    if len(rows) != 1 or len(rows[0]) != len(columns):
        return Undecodable(f"expected {len(columns)} CSV columns")
    cells = {c: (v if v != "" else None) for c, v in zip(columns, rows[0], strict=True)}
    envelope: dict[str, Any] = {f.name: cells.pop(f.name, None) for f in registry.envelope}
    if envelope["event_version"] is not None:
        envelope["event_version"] = _to_int(envelope["event_version"])
    version = envelope["event_version"] if isinstance(envelope["event_version"], int) else None
    contract = registry.get(envelope["event_type"] or "", version)
    if contract is not None:
        for spec in contract.payload.children:
            value = cells.get(spec.name)
            if value is not None and spec.kind in _CONVERT:
                cells[spec.name] = _CONVERT[spec.kind](value)
    envelope["payload"] = cells
    return envelope


def decode(
    records: Sequence[bytes], fmt: str, columns: Sequence[str], registry: ContractRegistry
) -> list[Any]:
    """Decode records of a batch in its source's format (`json` or `csv`)."""
    if fmt == "json":
        return decode_json(records)
    if fmt == "csv":
        return decode_csv(records, columns, registry)
    raise ValueError(f"unknown record format {fmt!r}")
