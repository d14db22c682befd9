"""Decode raw records into Python values, marking the ones that are not JSON objects.

Decoding is the one step that must touch each record on its own (JSON is not columnar);
orjson does it in C at well over a million records a second. Everything after works on columns.

A JSON record must also have one reading: the value ingest validates has to be the value every
later reader sees. Two things break that for text JSON parsers agree on, and are refused here
(see `ambiguous`): a key repeated in one object (orjson and PostgreSQL keep the last value,
DuckDB the first) and the NUL character in a string (PostgreSQL cannot hold it in text or jsonb).
"""

from __future__ import annotations

import csv
import json
import math
import operator
import re
from collections.abc import Callable, Collection, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from pharmaflow.contracts.model import FieldSpec, Kind
from pharmaflow.contracts.registry import ContractRegistry
from pharmaflow.ingest.reasons import ReasonCode


class Undecodable:
    """Stands in for a record that could not be decoded (or read unambiguously); carries the
    reason and, where known, the dotted path of the field at fault."""

    __slots__ = ("code", "detail", "field")

    def __init__(
        self, detail: str, code: ReasonCode = ReasonCode.MALFORMED_JSON, field: str | None = None
    ) -> None:
        self.detail = detail
        self.code = code
        self.field = field


_loads = orjson.loads


def _decode_one(raw: bytes) -> Any:
    try:
        return _loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's message names the position, never the content: safe to keep.
        return Undecodable(f"not valid JSON ({str(exc).split(':')[0]})")


def decode_json(
    records: Sequence[bytes],
    blob: bytes | None = None,
    registry: ContractRegistry | None = None,
) -> list[Any]:
    """orjson-decode each record; failures become `Undecodable` so the batch never stops, and
    so do objects with a repeated key or a NUL character (`ambiguous`). `blob`: the records'
    bytes in one piece when the caller has them (a file batch), which makes the check cheaper;
    `registry`: its field paths are the only ones a reason names."""
    docs = [_decode_one(r) for r in records]
    for row, problem in ambiguous(records, docs, blob, registry).items():
        docs[row] = problem
    return docs


# --------------------------------------------------------------------------- one reading
#
# Cheap and exact: count the colons. In raw JSON a colon is either a key's separator or a
# character inside a string (written as itself or as the escape \u003a); orjson's re-encoding of
# the decoded value writes every colon as itself. So for a record without a `\u003` escape,
#   colons(raw) = keys(raw) + in-string colons(raw)
#   colons(canonical) = keys(decoded) + in-string colons(decoded),
# each raw term is >= its decoded one (a repeated key drops a pair, with whatever colons it
# held), and keys(raw) == keys(decoded) exactly when no object repeats a key. Equal colon
# counts therefore prove there is no repeated key. The counts are taken over the whole batch at
# once (C-level `bytes.count`, one `orjson.dumps` of the batch, ~1 µs an event); records with a
# `\u003` or `\u0000` escape are set aside, and only when the totals differ are all records
# compared one by one. The records that still differ (and those set aside) are parsed once more
# with Python's json and an `object_pairs_hook` that sees every pair, which also names the path
# of the repeated key. tests/unit/ingest/test_validate_properties.py checks this against that
# exact parse on adversarial input.

_NUL_ESCAPE = b"\\u0000"
_COLON_ESCAPE = b"\\u003"  # \u003a / \u003A; also the escaped digits \u0030-9 (harmless)
_ANY_ESCAPE = b"\\u00"  # the common prefix: one scan of a batch rules both out


def _null(_: object) -> None:
    return None


def ambiguous(
    records: Sequence[bytes],
    docs: list[Any],
    blob: bytes | None = None,
    registry: ContractRegistry | None = None,
) -> dict[int, Undecodable]:
    """Rows whose JSON object has no single reading, with the reason (`duplicate_key`, or
    `invalid_format` for a NUL character). Rows that are not objects are left alone."""
    n = len(docs)
    is_object = np.fromiter(map(operator.is_, map(type, docs), repeat(dict)), bool, count=n)
    others = np.flatnonzero(~is_object).tolist()
    if len(others) == n:
        return {}
    objects = np.flatnonzero(is_object).tolist()
    # Records with a \u003 or \u0000 escape are checked on their own; the rest as one batch.
    escaped: list[int] = []
    # (no backslash, no escape; counting one byte is twice as fast as a multi-byte search)
    if blob is None or (blob.count(b"\\") and _ANY_ESCAPE in blob):
        escaped = [i for i in objects if _NUL_ESCAPE in records[i] or _COLON_ESCAPE in records[i]]
    aside = [*others, *escaped]
    if blob is not None:  # one C-level pass over the batch, less the rows set aside
        raw_colons = blob.count(b":") - sum(records[i].count(b":") for i in aside)
    else:
        raw_colons = sum(r.count(b":") for r in records)
        raw_colons -= sum(records[i].count(b":") for i in aside)
    suspects = escaped
    try:
        # the whole batch in one call; rows set aside are taken out of the count again
        # (an Undecodable is written as null)
        canonical = orjson.dumps(docs, default=_null).count(b":")
        canonical -= sum(orjson.dumps(docs[i], default=_null).count(b":") for i in aside)
    except orjson.JSONEncodeError:  # nested too deeply for the encoder: find which
        suspects = objects
    else:
        if canonical != raw_colons:
            suspects = objects
    if not suspects:
        return {}
    found: dict[int, Undecodable] = {}
    declared: Collection[str] | None = None
    for i in suspects:
        raw = records[i]
        try:
            canonical = orjson.dumps(docs[i])
        except orjson.JSONEncodeError:
            found[i] = Undecodable("nested too deeply (more than 254 levels)")
            continue
        if raw.count(b":") != canonical.count(b":") or _NUL_ESCAPE in raw or _COLON_ESCAPE in raw:
            if declared is None:
                declared = declared_paths(registry) if registry is not None else frozenset()
            problem = _exact_check(raw, declared)
            if problem is not None:
                found[i] = problem
    return found


class _Repeated(dict):  # type: ignore[type-arg]
    """An object that had a repeated key (which one: `key`)."""

    key: str = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    repeated = _Repeated(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            repeated.key = key
            break
        seen.add(key)
    return repeated


def _exact_check(raw: bytes, declared: Collection[str]) -> Undecodable | None:
    """Parse once more seeing every key/value pair: the first repeated key (depth first) or
    NUL character, with its path when the path is a declared field."""
    try:
        value = json.loads(raw, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return Undecodable("not valid JSON")
    hit = _first_problem(value, [])
    if hit is None:
        return None
    path, code = hit
    dotted = ".".join(path)
    field = dotted if dotted in declared else None
    where = "" if field is not None or not path else " (in a field the contract does not declare)"
    if code == ReasonCode.DUPLICATE_KEY:
        return Undecodable(
            "a key appears more than once in one object; readers disagree on which value "
            "counts" + where,
            ReasonCode.DUPLICATE_KEY,
            field,
        )
    return Undecodable(
        "text contains the NUL character (U+0000), which the warehouse cannot store" + where,
        ReasonCode.INVALID_FORMAT,
        field,
    )


def _first_problem(value: Any, path: list[str]) -> tuple[list[str], str] | None:
    if isinstance(value, dict):
        if isinstance(value, _Repeated):
            return [*path, value.key], ReasonCode.DUPLICATE_KEY
        for key, item in value.items():
            if "\x00" in key:
                return [*path, key], "nul"
            hit = _first_problem(item, [*path, key])
            if hit is not None:
                return hit
    elif isinstance(value, list):
        for item in value:
            hit = _first_problem(item, [*path[:-1], path[-1] + "[]"] if path else ["[]"])
            if hit is not None:
                return hit
    elif isinstance(value, str) and "\x00" in value:
        return path, "nul"
    return None


def declared_paths(registry: ContractRegistry) -> frozenset[str]:
    """Every field path any contract declares (envelope, payload records and leaves, list
    items as `name[]`): the paths a reason may name without echoing what a producer sent."""
    out: set[str] = set()

    def walk(spec: FieldSpec) -> None:
        if spec.path:
            out.add(spec.path)
        if spec.kind is Kind.STRING_LIST:
            out.add(spec.path + "[]")
        for child in spec.children:
            walk(child)

    for contract in registry:
        for spec in contract.envelope:
            walk(spec)
        walk(contract.payload)
    return frozenset(out)


_INT = re.compile(r"^[+-]?\d+$")


def _to_int(text: str) -> Any:
    return int(text) if _INT.match(text) else text


def _to_float(text: str) -> Any:
    """A finite number, else the text (JSON has no NaN or infinity, so neither may a CSV)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _to_bool(text: str) -> Any:
    return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), text)


def _to_list(text: str) -> Any:
    return [item for item in text.split("|") if item]


# Decimals stay text: the validator reads a decimal string exactly ("9.99" is not 9.99000000001).
_CONVERT: dict[Kind, Callable[[str], Any]] = {
    Kind.INT: _to_int,
    Kind.DOUBLE: _to_float,
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
    records: Sequence[bytes],
    fmt: str,
    columns: Sequence[str],
    registry: ContractRegistry,
    blob: bytes | None = None,
) -> list[Any]:
    """Decode records of a batch in its source's format (`json` or `csv`)."""
    if fmt == "json":
        return decode_json(records, blob, registry)
    if fmt == "csv":
        return decode_csv(records, columns, registry)
    raise ValueError(f"unknown record format {fmt!r}")
