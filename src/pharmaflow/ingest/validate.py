"""Validate a batch of decoded events against their contracts, column by column.

Each field is pulled out once into a column, its JSON types checked in one C-level pass, and
converted to Arrow in one call. Only a column holding a bad value is looked at row by row (or,
for unparsable timestamps, bisected), so bad input costs extra work in proportion to how bad it
is, and never stops the batch. Enums, ranges, patterns and timestamps are then checked
with Arrow compute kernels over the whole column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from itertools import repeat
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
# The JSON types each kind accepts. Checking the set of Python types present in a column is one
# C-level pass, and stricter than Arrow's own conversion (which takes true as 1.0, "ab" as a list).
_JSON_TYPES: dict[Kind, frozenset[type]] = {
    Kind.STRING: frozenset({str}),
    Kind.ENUM: frozenset({str}),
    Kind.TIMESTAMP: frozenset({str}),
    Kind.DATE: frozenset({str}),
    Kind.INT: frozenset({int}),
    Kind.DOUBLE: frozenset({int, float}),
    Kind.DECIMAL: frozenset({int, float}),
    Kind.BOOLEAN: frozenset({bool}),
    Kind.STRING_LIST: frozenset({list}),
}
_PARSED_FROM_TEXT = {Kind.TIMESTAMP: "invalid_timestamp", Kind.DATE: "invalid_format"}
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
_CONVERSION_ERRORS = (
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    OverflowError,
    TypeError,
    ValueError,
)


def typed_column(values: list[Any], kind: Kind) -> tuple[pa.Array, np.ndarray]:
    """Convert one column to its Arrow type; return it and a per-row failure code (None = ok)."""
    n = len(values)
    codes = np.full(n, None, dtype=object)
    allowed = _JSON_TYPES[kind]
    present = set(map(type, values))
    present.discard(type(None))
    if not present <= allowed:
        allowed_codes = [_TYPE_CODES[t] for t in allowed] + [0]
        wrong = ~np.isin(_type_codes(values), allowed_codes)
        codes[wrong] = "wrong_type"
        values = [None if w else v for v, w in zip(values, wrong, strict=True)]
    text_parsed = kind in _PARSED_FROM_TEXT
    build_type = pa.string() if text_parsed else _TARGET[kind]
    arr = _isolate(
        n, lambda lo, hi: pa.array(values[lo:hi], type=build_type), build_type, codes, "wrong_type"
    )
    if text_parsed:
        arr = _isolate(
            n,
            lambda lo, hi: arr.slice(lo, hi - lo).cast(_TARGET[kind]),
            _TARGET[kind],
            codes,
            _PARSED_FROM_TEXT[kind],
        )
    return arr, codes


def _isolate(
    n: int,
    attempt: Callable[[int, int], pa.Array],
    arrow_type: pa.DataType,
    codes: np.ndarray,
    code: str,
) -> pa.Array:
    """Run `attempt` over all rows; if it fails, bisect to the failing rows, null them and mark
    them with `code`. Clean columns cost one call; k bad rows cost about k·log(n) calls."""
    chunks: list[pa.Array] = []

    def run(lo: int, hi: int) -> None:
        if lo >= hi:
            return
        try:
            chunks.append(attempt(lo, hi))
        except _CONVERSION_ERRORS:
            if hi - lo == 1:
                chunks.append(pa.nulls(1, arrow_type))
                codes[lo] = code
                return
            mid = (lo + hi) // 2
            run(lo, mid)
            run(mid, hi)

    run(0, n)
    if not chunks:
        return pa.array([], arrow_type)
    return chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)


def check_field(spec: FieldSpec, values: list[Any], rows: np.ndarray, rej: Rejects) -> pa.Array:
    """Type, presence and value rules for one leaf field; returns the typed column."""
    arr, codes = typed_column(values, spec.kind)
    return check_rules(spec, arr, _reject_codes(spec, codes, rows, rej), rows, rej)


def _reject_codes(spec: FieldSpec, codes: np.ndarray, rows: np.ndarray, rej: Rejects) -> np.ndarray:
    """Reject rows whose value had the wrong type; return the mask of those rows."""
    bad = codes != None  # noqa: E711 - elementwise comparison on an object array
    if bad.any():
        for code in set(codes[bad]):
            rej.reject(rows[codes == code], code, spec.path, f"expected {_EXPECTED[spec.kind]}")
    return bad


def check_rules(
    spec: FieldSpec, arr: pa.Array, bad: np.ndarray, rows: np.ndarray, rej: Rejects
) -> pa.Array:
    """Presence, enum, range and pattern rules over a typed column (`bad`: already failed)."""
    if spec.required:
        missing = arr.is_null().to_numpy(zero_copy_only=False) & ~bad
        if spec.kind in (Kind.STRING, Kind.ENUM):
            missing |= pc.fill_null(pc.equal(arr, ""), False).to_numpy(zero_copy_only=False)
        rej.reject(rows[missing], "missing_field", spec.path, "required field is absent or null")
    if spec.symbols:
        unknown = pc.invert(pc.fill_null(pc.is_in(arr, value_set=pa.array(spec.symbols)), True))
        rej.reject(
            rows[unknown.to_numpy(zero_copy_only=False)],
            "unknown_enum",
            spec.path,
            f"expected one of {', '.join(spec.symbols)}",
        )
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


_EMPTY: dict[str, Any] = {}


# JSON value types as small ints, so type checks run as numpy integer comparisons.
_TYPE_CODES: dict[type, int] = {type(None): 0, dict: 1, str: 2, int: 3, float: 4, bool: 5, list: 6}
_OTHER = 7


def _type_codes(values: list[Any]) -> np.ndarray:
    return np.array(list(map(_TYPE_CODES.get, map(type, values), repeat(_OTHER))), dtype=np.int8)


def record_kinds(values: list[Any]) -> np.ndarray | None:
    """Per value: 0 null, 1 object, 2 anything else — or None when every value is an object
    (the common case, found with one C-level pass instead of a Python loop)."""
    if set(map(type, values)) == {dict}:
        return None
    codes = _type_codes(values)
    return np.where(codes == 1, 1, np.where(codes == 0, 0, 2)).astype(np.int8)


def check_record(
    spec: FieldSpec,
    dicts: list[dict[str, Any]],
    rows: np.ndarray,
    rej: Rejects,
    columns: dict[str, pa.Array],
) -> None:
    """Check every child of a record field; nested records recurse. Typed leaves go to `columns`.

    `dicts` holds one dict per row (an empty one where the record itself was missing)."""
    get = dict.get
    for child in spec.children:
        values = list(map(get, dicts, repeat(child.name)))
        if child.kind is Kind.RECORD:
            kinds = record_kinds(values)
            if kinds is not None:
                rej.reject(rows[kinds == 2], "wrong_type", child.path, "expected an object")
                if child.required:
                    rej.reject(
                        rows[kinds == 0],
                        "missing_field",
                        child.path,
                        "required field is absent or null",
                    )
                values = [v if type(v) is dict else _EMPTY for v in values]
            check_record(child, values, rows, rej, columns)
        else:
            columns[child.path] = check_field(child, values, rows, rej)


# --------------------------------------------------------------------------- fast path
#
# Arrow converts a list of dicts to a struct array in one C++ pass, touching each dict once,
# which is several times faster than pulling every field out on its own. Its conversion is
# strict for strings, booleans and records but lenient for a few JSON types (it truncates 2.5
# into an int field, takes true as 1.0 and "ab" as a list), so those fields are re-checked
# by Python type; a chunk that does not convert is bisected down to small pieces that go through the
# field-by-field path above, so every reason stays exact; rules then run once per column.

_GUARDED = frozenset({Kind.INT, Kind.DOUBLE, Kind.DECIMAL, Kind.STRING_LIST})
_CHUNK = 128  # rows converted per call: a bad row costs its chunk a bisection, not the batch
_SMALLEST_PIECE = 16


@cache
def _struct_type(spec: FieldSpec) -> pa.StructType:
    fields = []
    for child in spec.children:
        if child.kind is Kind.RECORD:
            arrow_type: pa.DataType = _struct_type(child)
        elif child.kind in _PARSED_FROM_TEXT:
            arrow_type = pa.string()
        else:
            arrow_type = _TARGET[child.kind]
        fields.append(pa.field(child.name, arrow_type))
    return pa.struct(fields)


def check_record_fast(
    spec: FieldSpec,
    dicts: list[dict[str, Any]],
    rows: np.ndarray,
    rej: Rejects,
    columns: dict[str, pa.Array],
) -> None:
    """Same contract as `check_record` (same reasons, same typed leaves), faster."""
    struct_type = _struct_type(spec)
    n = len(dicts)
    converted: list[pa.StructArray] = []
    fast: list[tuple[int, int]] = []
    slow: list[tuple[int, int]] = []

    def run(lo: int, hi: int) -> None:
        try:
            converted.append(pa.array(dicts[lo:hi], type=struct_type))
            fast.append((lo, hi))
        except _CONVERSION_ERRORS:
            if hi - lo <= _SMALLEST_PIECE:
                slow.append((lo, hi))
                return
            mid = (lo + hi) // 2
            run(lo, mid)
            run(mid, hi)

    for lo in range(0, n, _CHUNK):
        run(lo, min(lo + _CHUNK, n))
    if not converted:
        combined = pa.array([], struct_type)
    else:
        combined = converted[0] if len(converted) == 1 else pa.concat_arrays(converted)
    if not slow:
        _check_struct(spec, combined, dicts, rows, rej, columns)
        return
    fast_at = _positions(fast)
    slow_at = _positions(slow)
    fast_columns: dict[str, pa.Array] = {}
    slow_columns: dict[str, pa.Array] = {}
    _check_struct(spec, combined, [dicts[i] for i in fast_at], rows[fast_at], rej, fast_columns)
    check_record(spec, [dicts[i] for i in slow_at], rows[slow_at], rej, slow_columns)
    order = pa.array(np.argsort(np.concatenate([fast_at, slow_at]), kind="stable"))
    for path, arr in fast_columns.items():
        columns[path] = pa.concat_arrays([arr, slow_columns[path]]).take(order)


def _positions(spans: list[tuple[int, int]]) -> np.ndarray:
    if not spans:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in spans])


def _check_struct(
    spec: FieldSpec,
    converted: pa.StructArray,
    dicts: list[dict[str, Any]],
    rows: np.ndarray,
    rej: Rejects,
    columns: dict[str, pa.Array],
) -> None:
    get = dict.get
    for child, arr in zip(spec.children, converted.flatten(), strict=True):
        if child.kind is Kind.RECORD:
            if child.required:
                rej.reject(
                    rows[arr.is_null().to_numpy(zero_copy_only=False)],
                    "missing_field",
                    child.path,
                    "required field is absent or null",
                )
            nested = [v if v is not None else _EMPTY for v in map(get, dicts, repeat(child.name))]
            _check_struct(child, arr, nested, rows, rej, columns)
            continue
        bad = np.zeros(len(arr), dtype=bool)
        if child.kind in _GUARDED:
            values = list(map(get, dicts, repeat(child.name)))
            present = set(map(type, values))
            present.discard(type(None))
            if not present <= _JSON_TYPES[child.kind]:
                arr, codes = typed_column(values, child.kind)
                bad = _reject_codes(child, codes, rows, rej)
        elif child.kind in _PARSED_FROM_TEXT:
            codes = np.full(len(arr), None, dtype=object)
            text = arr
            arr = _isolate(
                len(text),
                lambda lo, hi, t=text, k=child.kind: t.slice(lo, hi - lo).cast(_TARGET[k]),
                _TARGET[child.kind],
                codes,
                _PARSED_FROM_TEXT[child.kind],
            )
            bad = _reject_codes(child, codes, rows, rej)
        columns[child.path] = check_rules(child, arr, bad, rows, rej)


@dataclass
class Validated:
    """A validated batch: per-row verdicts, typed envelope columns and the rows per contract."""

    rejects: Rejects
    envelope: dict[str, pa.Array]
    docs: list[dict[str, Any]]
    groups: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    columns: dict[tuple[str, int], dict[str, pa.Array]] = field(default_factory=dict)


def validate(docs: list[Any], registry: ContractRegistry) -> Validated:
    """Envelope first, then each event type's payload against its contract version."""
    n = len(docs)
    rej = Rejects(n)
    kinds = record_kinds(docs)
    if kinds is not None:
        for i in np.flatnonzero(kinds == 2):
            if isinstance(docs[i], Undecodable):
                rej.reject(np.array([i]), docs[i].code, None, docs[i].detail)
        rej.reject(kinds != 1, "not_an_object", None, "an event must be a JSON object")
        docs = [d if type(d) is dict else _EMPTY for d in docs]

    envelope: dict[str, pa.Array] = {}
    check_record_fast(_envelope_spec(registry.envelope), docs, np.arange(n), rej, envelope)
    payloads = list(map(dict.get, docs, repeat("payload")))
    pkinds = record_kinds(payloads)
    if pkinds is not None:
        rej.reject(pkinds == 0, "missing_field", "payload", "required field is absent or null")
        rej.reject(pkinds == 2, "wrong_type", "payload", "expected an object")
        payloads = [p if type(p) is dict else _EMPTY for p in payloads]

    result = Validated(rej, envelope, docs)
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
                rej.reject(
                    vrows,
                    "unknown_version",
                    "event_version",
                    f"known versions: {registry.versions(event_type)}",
                )
                continue
            columns: dict[str, pa.Array] = {}
            check_record_fast(contract.payload, [payloads[i] for i in vrows], vrows, rej, columns)
            result.groups[(event_type, int(version))] = vrows
            result.columns[(event_type, int(version))] = columns
    return result


@cache
def _envelope_spec(fields: tuple[FieldSpec, ...]) -> FieldSpec:
    return FieldSpec(name="", path="", kind=Kind.RECORD, required=True, children=fields)
