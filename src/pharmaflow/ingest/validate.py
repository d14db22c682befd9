"""Validate a batch of decoded events against their contracts, column by column.

Each field is pulled out once into a column and converted to Arrow in one call; a column that
converts cleanly (nearly all of them) costs one C-level pass. Only when a conversion fails is
the column bisected to find the offending rows, so bad input costs extra work in proportion to
how bad it is, and never stops the batch. Enums, ranges, patterns and timestamps are then checked
with Arrow compute kernels over the whole column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow.contracts.model import FieldSpec, Kind
from pharmaflow.contracts.registry import ContractRegistry
from pharmaflow.ingest.decode import Undecodable
from pharmaflow.ingest.rejects import Rejects

TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")

_TARGET: dict[Kind, pa.DataType] = {
    Kind.STRING: pa.string(),
    Kind.ENUM: pa.string(),
    Kind.TIMESTAMP: TIMESTAMP_UTC,
    Kind.DATE: pa.date32(),
    Kind.INT: pa.int64(),
    Kind.DOUBLE: pa.float64(),
    Kind.DECIMAL: pa.float64(),
    Kind.BOOLEAN: pa.bool_(),
    Kind.STRING_LIST: pa.list_(pa.string()),
}
_STRINGS = {pa.string(), pa.null()}
_NUMBERS = {pa.int64(), pa.float64(), pa.null()}
# Arrow infers the JSON type; only these inferred types may be cast to the field's type.
# (Casting instead of typed construction keeps Arrow from accepting true as 1.0 or "ab" as a list.)
_ALLOWED: dict[Kind, set[pa.DataType]] = {
    Kind.STRING: _STRINGS,
    Kind.ENUM: _STRINGS,
    Kind.TIMESTAMP: _STRINGS,
    Kind.DATE: _STRINGS,
    Kind.INT: {pa.int64(), pa.null()},
    Kind.DOUBLE: _NUMBERS,
    Kind.DECIMAL: _NUMBERS,
    Kind.BOOLEAN: {pa.bool_(), pa.null()},
    Kind.STRING_LIST: {pa.list_(pa.string()), pa.list_(pa.null()), pa.null()},
}
_TEXT_FORMATS = {Kind.TIMESTAMP: "invalid_timestamp", Kind.DATE: "invalid_format"}
_EXPECTED = {
    Kind.STRING: "a string",
    Kind.ENUM: "a string",
    Kind.TIMESTAMP: "an ISO-8601 timestamp string with an offset",
    Kind.DATE: "an ISO-8601 date string",
    Kind.INT: "an integer",
    Kind.DOUBLE: "a number",
    Kind.DECIMAL: "a number",
    Kind.BOOLEAN: "true or false",
    Kind.STRING_LIST: "a list of strings",
}
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                      OverflowError, TypeError, ValueError)


def typed_column(values: list[Any], kind: Kind) -> tuple[pa.Array, np.ndarray]:
    """Convert one column to its Arrow type; return it and a per-row failure code (None = ok)."""
    codes = np.full(len(values), None, dtype=object)
    chunks: list[pa.Array] = []
    _convert(values, 0, len(values), kind, chunks, codes)
    if not chunks:
        return pa.array([], _TARGET[kind]), codes
    return (chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)), codes


def _convert(values: list[Any], lo: int, hi: int, kind: Kind, out: list[pa.Array],
             codes: np.ndarray) -> None:
    if lo >= hi:
        return
    try:
        arr = pa.array(values[lo:hi])
        if arr.type not in _ALLOWED[kind]:
            raise TypeError(arr.type)
        out.append(arr.cast(_TARGET[kind]))
    except _CONVERSION_ERRORS:
        if hi - lo == 1:
            out.append(pa.nulls(1, _TARGET[kind]))
            is_text = isinstance(values[lo], str)
            codes[lo] = _TEXT_FORMATS.get(kind, "wrong_type") if is_text else "wrong_type"
            return
        mid = (lo + hi) // 2
        _convert(values, lo, mid, kind, out, codes)
        _convert(values, mid, hi, kind, out, codes)


def check_field(spec: FieldSpec, values: list[Any], rows: np.ndarray, rej: Rejects) -> pa.Array:
    """Type, presence and value rules for one leaf field; returns the typed column."""
    arr, codes = typed_column(values, spec.kind)
    bad = codes != None  # noqa: E711 - elementwise comparison on an object array
    if bad.any():
        for code in set(codes[bad]):
            detail = f"expected {_EXPECTED[spec.kind]}"
            rej.reject(rows[codes == code], code, spec.path, detail)
    if spec.required:
        missing = arr.is_null().to_numpy(zero_copy_only=False) & ~bad
        if spec.kind in (Kind.STRING, Kind.ENUM):
            missing |= pc.fill_null(pc.equal(arr, ""), False).to_numpy(zero_copy_only=False)
        rej.reject(rows[missing], "missing_field", spec.path, "required field is absent or null")
    if spec.symbols:
        unknown = pc.invert(pc.fill_null(pc.is_in(arr, value_set=pa.array(spec.symbols)), True))
        rej.reject(rows[unknown.to_numpy(zero_copy_only=False)], "unknown_enum", spec.path,
                   f"expected one of {', '.join(spec.symbols)}")
    out_of_range = _range_violations(spec, arr)
    if out_of_range is not None:
        rej.reject(rows[out_of_range], "out_of_range", spec.path, _range_text(spec))
    if spec.pattern:
        matches = pc.match_substring_regex(arr, spec.pattern)
        mismatch = pc.invert(pc.fill_null(matches, True)).to_numpy(zero_copy_only=False)
        rej.reject(rows[mismatch], "invalid_format", spec.path, f"must match {spec.pattern}")
    return arr


def _range_violations(spec: FieldSpec, arr: pa.Array) -> np.ndarray | None:
    if spec.minimum is None and spec.maximum is None and spec.exclusive_minimum is None:
        return None
    bad = pa.array(np.zeros(len(arr), dtype=bool))
    if spec.minimum is not None:
        bad = pc.or_(bad, pc.fill_null(pc.less(arr, spec.minimum), False))
    if spec.exclusive_minimum is not None:
        bad = pc.or_(bad, pc.fill_null(pc.less_equal(arr, spec.exclusive_minimum), False))
    if spec.maximum is not None:
        bad = pc.or_(bad, pc.fill_null(pc.greater(arr, spec.maximum), False))
    return bad.to_numpy(zero_copy_only=False)


def _range_text(spec: FieldSpec) -> str:
    parts = []
    if spec.minimum is not None:
        parts.append(f">= {spec.minimum}")
    if spec.exclusive_minimum is not None:
        parts.append(f"> {spec.exclusive_minimum}")
    if spec.maximum is not None:
        parts.append(f"<= {spec.maximum}")
    return "must be " + " and ".join(parts)


def check_record(spec: FieldSpec, dicts: list[Any], rows: np.ndarray, rej: Rejects,
                 columns: dict[str, pa.Array]) -> None:
    """Check every child of a record field; nested records recurse. Typed leaves go to `columns`."""
    for child in spec.children:
        name = child.name
        values = [d.get(name) if d is not None else None for d in dicts]
        if child.kind is Kind.RECORD:
            kind = np.fromiter((0 if v is None else 1 if type(v) is dict else 2 for v in values),
                               dtype=np.int8, count=len(values))
            rej.reject(rows[kind == 2], "wrong_type", child.path, "expected an object")
            if child.required:
                rej.reject(rows[kind == 0], "missing_field", child.path,
                           "required field is absent or null")
            sub = [v if type(v) is dict else None for v in values]
            check_record(child, sub, rows, rej, columns)
        else:
            columns[child.path] = check_field(child, values, rows, rej)


@dataclass
class Validated:
    """A validated batch: per-row verdicts, typed envelope columns and the rows per contract."""

    rejects: Rejects
    envelope: dict[str, pa.Array]
    payloads: list[Any]
    groups: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    columns: dict[tuple[str, int], dict[str, pa.Array]] = field(default_factory=dict)


def validate(docs: list[Any], registry: ContractRegistry) -> Validated:
    """Envelope first, then each event type's payload against its contract version."""
    n = len(docs)
    rej = Rejects(n)
    kinds = np.fromiter((0 if type(d) is dict else 1 if isinstance(d, Undecodable) else 2
                         for d in docs), dtype=np.int8, count=n)
    for i in np.flatnonzero(kinds == 1):
        rej.reject(np.array([i]), "malformed_json", None, docs[i].detail)
    rej.reject(kinds == 2, "not_an_object", None, "an event must be a JSON object")
    dicts = [d if k == 0 else None for d, k in zip(docs, kinds, strict=True)]

    any_contract = next(iter(registry))
    everything = np.arange(n)
    envelope: dict[str, pa.Array] = {}
    check_record(_envelope_spec(any_contract.envelope), dicts, everything, rej, envelope)
    payloads = [d.get("payload") if d is not None else None for d in dicts]
    pkind = np.fromiter((0 if p is None else 1 if type(p) is dict else 2 for p in payloads),
                        dtype=np.int8, count=n)
    rej.reject(pkind == 0, "missing_field", "payload", "required field is absent or null")
    rej.reject(pkind == 2, "wrong_type", "payload", "expected an object")

    result = Validated(rej, envelope, payloads)
    types = envelope["event_type"].dictionary_encode()
    type_codes = types.indices.to_numpy(zero_copy_only=False)
    versions = pc.fill_null(envelope["event_version"], -1).to_numpy(zero_copy_only=False)
    for code, event_type in enumerate(types.dictionary.to_pylist()):
        rows = np.flatnonzero((type_codes == code) & rej.ok)
        if rows.size == 0:
            continue
        if registry.get(event_type) is None:
            rej.reject(rows, "unknown_event_type", "event_type", "no contract for this event type")
            continue
        for version in np.unique(versions[rows]).tolist():
            vrows = rows[versions[rows] == version]
            contract = registry.get(event_type, int(version))
            if contract is None:
                rej.reject(vrows, "unknown_version", "event_version",
                           f"known versions: {registry.versions(event_type)}")
                continue
            columns: dict[str, pa.Array] = {}
            check_record(contract.payload, [payloads[i] for i in vrows], vrows, rej, columns)
            result.groups[(event_type, int(version))] = vrows
            result.columns[(event_type, int(version))] = columns
    return result


def _envelope_spec(fields: tuple[FieldSpec, ...]) -> FieldSpec:
    return FieldSpec(name="", path="", kind=Kind.RECORD, required=True, children=fields)
