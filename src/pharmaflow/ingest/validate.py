"""Validate a batch of decoded events against their contracts, column by column.

Each field is pulled out once into a column, its JSON types checked in one C-level pass, and
converted to Arrow in one call. Only a column holding a bad value is looked at row by row (or,
for unparsable timestamps, bisected), so bad input costs extra work in proportion to how bad it
is, and never stops the batch. Enums, ranges, patterns and timestamps are then checked
with Arrow compute kernels over the whole column.

What passes is what the warehouse will read from the stored JSON, value for value: integers fit
their Avro type (an Avro `int` is a SQL INTEGER), decimals fit their precision and scale
exactly, list items are all present and of the item type, and timestamps follow the one
ISO-8601 form that Arrow, DuckDB and PostgreSQL all read alike (fractions beyond microseconds
are truncated, as DuckDB does) within a plausible window (`pharmaflow.config.TimeWindow`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import chain, repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow.config import TimeWindow
from pharmaflow.contracts.model import FieldSpec, Kind
from pharmaflow.contracts.registry import ContractRegistry
from pharmaflow.ingest.decode import Undecodable
from pharmaflow.ingest.reasons import ReasonCode
from pharmaflow.ingest.rejects import Rejects

TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")

_TARGET: dict[Kind, pa.DataType] = {
    Kind.STRING: pa.string(),
    Kind.ENUM: pa.string(),
    Kind.TIMESTAMP: TIMESTAMP_UTC,
    Kind.DATE: pa.date32(),
    Kind.INT: pa.int64(),
    Kind.DOUBLE: pa.float64(),
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
    Kind.DECIMAL: frozenset({int, float, str}),
    Kind.BOOLEAN: frozenset({bool}),
    Kind.STRING_LIST: frozenset({list}),
}
_PARSED_FROM_TEXT = {
    Kind.TIMESTAMP: ReasonCode.INVALID_TIMESTAMP,
    Kind.DATE: ReasonCode.INVALID_FORMAT,
}
_EXPECTED = {
    Kind.STRING: "a string",
    Kind.ENUM: "a string",
    Kind.TIMESTAMP: "an ISO-8601 timestamp with seconds and an offset "
    "(YYYY-MM-DDTHH:MM:SS[.fraction of up to 9 digits] then Z or +HH:MM)",
    Kind.DATE: "an ISO-8601 date (YYYY-MM-DD)",
    Kind.INT: "an integer",
    Kind.DOUBLE: "a number",
    Kind.DECIMAL: "a number or a decimal string such as 12.50",
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

# The one timestamp form every reader takes alike: Arrow here, DuckDB and PostgreSQL in the
# warehouse (`pf_cast_timestamp_utc`). Arrow alone would also take "2026-11-02T10Z", which
# DuckDB refuses, and offsets beyond ±15:59, which PostgreSQL refuses; real zones span
# -12:00..+14:00. Seconds are required; a fraction may have up to 9 digits (Java's Instant and
# Go's RFC3339Nano write nanoseconds) and is truncated to microseconds, the warehouse's unit.
_TIMESTAMP_FORM = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)$"
)
_BEYOND_MICROS = r"(\.[0-9]{6})[0-9]+"
_DATE_FORM = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# A decimal as text: plain notation only (what BigDecimal.toPlainString and Python's str of a
# Decimal write). An exponent is refused in text; a JSON number may have one.
_DECIMAL_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"

_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Limits:
    """The value limits that depend on when a batch is validated: the `TimeWindow` made
    absolute at `now` (the batch's analysis time)."""

    timestamp_min: pa.Scalar
    event_time_max: pa.Scalar
    timestamp_max: pa.Scalar
    date_min: pa.Scalar
    date_max: pa.Scalar
    event_time_text: str
    timestamp_text: str
    date_text: str

    @classmethod
    def at(cls, window: TimeWindow | None = None, now: datetime | None = None) -> Limits:
        window = window or TimeWindow()
        now = now or datetime.now(UTC)
        lowest = f"{window.minimum.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
        return cls(
            timestamp_min=pa.scalar(window.minimum, TIMESTAMP_UTC),
            event_time_max=pa.scalar(now + window.event_time_ahead, TIMESTAMP_UTC),
            timestamp_max=pa.scalar(now + window.max_ahead, TIMESTAMP_UTC),
            date_min=pa.scalar(window.date_min, pa.date32()),
            date_max=pa.scalar(now.astimezone(UTC).date(), pa.date32()),
            event_time_text=f"must lie between {lowest} and {_span(window.event_time_ahead)} "
            "after ingest",
            timestamp_text=f"must lie between {lowest} and {_span(window.max_ahead)} after ingest",
            date_text=f"must lie between {window.date_min.isoformat()} and the day of ingest",
        )

    def window(self, spec: FieldSpec) -> tuple[pa.Scalar, pa.Scalar, str] | None:
        if spec.kind is Kind.TIMESTAMP:
            if spec.path == "event_time":
                return self.timestamp_min, self.event_time_max, self.event_time_text
            return self.timestamp_min, self.timestamp_max, self.timestamp_text
        if spec.kind is Kind.DATE:
            return self.date_min, self.date_max, self.date_text
        return None


def _span(delta: timedelta) -> str:
    hours = delta / timedelta(hours=1)
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"


def _arrow_type(spec: FieldSpec) -> pa.DataType:
    if spec.kind is Kind.DECIMAL:
        precision, scale = spec.precision or 38, spec.scale or 0
        return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
    return _TARGET[spec.kind]


def typed_column(values: list[Any], spec: FieldSpec) -> tuple[pa.Array, np.ndarray]:
    """Convert one column to its Arrow type; return it and a per-row failure code (None = ok)."""
    kind = spec.kind
    n = len(values)
    codes = np.full(n, None, dtype=object)
    allowed = _JSON_TYPES[kind]
    present = set(map(type, values))
    present.discard(type(None))
    if not present <= allowed:
        allowed_codes = [_TYPE_CODES[t] for t in allowed] + [0]
        wrong = ~np.isin(_type_codes(values), allowed_codes)
        if kind is Kind.INT:  # an integer beyond int64 is out of range, not of the wrong type
            huge = np.fromiter(map(_beyond_int64, values), dtype=bool, count=n)
            codes[huge] = ReasonCode.OUT_OF_RANGE
            wrong &= ~huge
        codes[wrong] = ReasonCode.WRONG_TYPE
        values = [None if c is not None else v for v, c in zip(values, codes, strict=True)]
    elif kind is Kind.INT and not _all_int64(values):
        huge = np.fromiter(map(_beyond_int64, values), dtype=bool, count=n)
        codes[huge] = ReasonCode.OUT_OF_RANGE
        values = [None if h else v for v, h in zip(values, huge, strict=True)]
    if kind is Kind.DECIMAL:
        return _decimal_column(spec, values, codes), codes
    if kind is Kind.DOUBLE and int in present:  # ints beyond int64 are numbers too
        values = [float(v) if type(v) is int else v for v in values]
    text_parsed = kind in _PARSED_FROM_TEXT
    build_type = pa.string() if text_parsed else _TARGET[kind]
    arr = _isolate(
        n,
        lambda lo, hi: pa.array(values[lo:hi], type=build_type),
        build_type,
        codes,
        ReasonCode.WRONG_TYPE,
    )
    if text_parsed:
        arr = parse_text(kind, arr, codes)
    return arr, codes


def _beyond_int64(value: Any) -> bool:
    """An integer (or the float orjson returns for an integer literal beyond 64 bits) that
    no 64-bit integer holds."""
    if type(value) is int:
        return not _INT64[0] <= value <= _INT64[1]
    return type(value) is float and value.is_integer() and not _INT64[0] <= value <= _INT64[1]


def _all_int64(values: list[Any]) -> bool:
    ints = [v for v in values if v is not None]
    return not ints or (_INT64[0] <= min(ints) and max(ints) <= _INT64[1])


def parse_text(kind: Kind, text: pa.Array, codes: np.ndarray) -> pa.Array:
    """Timestamps and dates from their text: the exact form first (`_TIMESTAMP_FORM`), then
    Arrow's cast; a timestamp fraction beyond microseconds is truncated (only when a cast
    fails, so clean columns cost one regex match and one cast)."""
    code = _PARSED_FROM_TEXT[kind]
    form = _TIMESTAMP_FORM if kind is Kind.TIMESTAMP else _DATE_FORM
    bad = pc.invert(pc.fill_null(pc.match_substring_regex(text, form), True))
    bad_rows = bad.to_numpy(zero_copy_only=False)
    if bad_rows.any():
        codes[bad_rows & (codes == None)] = code  # noqa: E711 - elementwise on an object array
        text = pc.if_else(bad, pa.scalar(None, pa.string()), text)
    target = _TARGET[kind]
    try:
        return text.cast(target)
    except _CONVERSION_ERRORS:
        pass
    if kind is Kind.TIMESTAMP:
        text = pc.replace_substring_regex(text, _BEYOND_MICROS, r"\1")
    return _isolate(
        len(text), lambda lo, hi: text.slice(lo, hi - lo).cast(target), target, codes, code
    )


def _decimal_column(spec: FieldSpec, values: list[Any], codes: np.ndarray) -> pa.Array:
    """A decimal column from JSON numbers and decimal strings, exactly: a value with more
    fractional digits than the scale, or more integer digits than precision - scale, is
    out of range (never rounded); a string not in plain decimal notation is a format error."""
    target = _arrow_type(spec)
    scale = spec.scale or 0
    whole_digits = (spec.precision or 38) - scale
    n = len(values)
    out: list[pa.Array] = []
    present = set(map(type, values))
    if present <= {float, type(None)}:  # the common case: no per-value work in Python
        numbers, strings = np.arange(n), np.zeros(0, dtype=np.int64)
    else:
        kinds = _type_codes(values)
        numbers = np.flatnonzero((kinds == _TYPE_CODES[int]) | (kinds == _TYPE_CODES[float]))
        strings = np.flatnonzero(kinds == _TYPE_CODES[str])
    result = pa.nulls(n, target)
    if numbers.size:
        # As doubles, which is how orjson (and DuckDB) read a JSON number: a value passes only
        # if it is the double nearest to a decimal of `scale` places.
        if numbers.size == n and int not in present:
            floats = pa.array(values, pa.float64())
        else:
            nums = [float(v) for v in (values[i] for i in numbers.tolist())]
            floats = pa.array(nums, pa.float64())
        inexact = pc.not_equal(pc.round(floats, scale), floats)
        too_big = pc.greater_equal(pc.abs(floats), 10.0**whole_digits)
        bad = pc.fill_null(pc.or_(inexact, too_big), False).to_numpy(zero_copy_only=False)
        codes[numbers[bad]] = ReasonCode.OUT_OF_RANGE
        floats = pc.if_else(pa.array(bad), pa.scalar(None, pa.float64()), floats)
        typed = floats.cast(target)
        out.append(typed if numbers.size == n else _scatter(n, numbers, typed))
    if strings.size:
        text = pa.array([values[i] for i in strings.tolist()], pa.string())
        plain = pc.match_substring_regex(text, _DECIMAL_TEXT).to_numpy(zero_copy_only=False)
        codes[strings[~plain]] = ReasonCode.INVALID_FORMAT
        fraction = pc.utf8_length(pc.replace_substring_regex(text, r"^[^.]*\.?", ""))
        whole = pc.utf8_length(pc.replace_substring_regex(text, r"^-?0*([0-9]*).*$", r"\1"))
        bad = plain & pc.or_(pc.greater(fraction, scale), pc.greater(whole, whole_digits)).to_numpy(
            zero_copy_only=False
        )
        codes[strings[bad]] = ReasonCode.OUT_OF_RANGE
        keep = pa.array(plain & ~bad)
        out.append(_scatter(n, strings, pc.if_else(keep, text, None).cast(target)))
    if len(out) == 1:
        return out[0]
    for part in out:
        result = pc.coalesce(result, part)
    return result


def _scatter(n: int, at: np.ndarray, arr: pa.Array) -> pa.Array:
    """`arr` placed at rows `at` of a column of `n` rows (null elsewhere)."""
    index = np.full(n, -1, dtype=np.int64)
    index[at] = np.arange(at.size)
    return arr.take(pa.array(index, mask=index < 0))


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
                if codes[lo] is None:
                    codes[lo] = code
                return
            mid = (lo + hi) // 2
            run(lo, mid)
            run(mid, hi)

    run(0, n)
    if not chunks:
        return pa.array([], arrow_type)
    return chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)


def check_field(
    spec: FieldSpec, values: list[Any], rows: np.ndarray, rej: Rejects, limits: Limits
) -> pa.Array:
    """Type, presence and value rules for one leaf field; returns the typed column."""
    arr, bad = _convert(spec, values, rows, rej)
    return check_rules(spec, arr, bad, rows, rej, limits)


def _convert(
    spec: FieldSpec, values: list[Any], rows: np.ndarray, rej: Rejects
) -> tuple[pa.Array, np.ndarray]:
    """One leaf column typed, rows that failed conversion rejected (and their mask)."""
    if spec.kind is Kind.STRING_LIST:
        values = _check_items(spec, values, rows, rej)
    arr, codes = typed_column(values, spec)
    return arr, _reject_codes(spec, codes, rows, rej)


def _check_items(spec: FieldSpec, values: list[Any], rows: np.ndarray, rej: Rejects) -> list[Any]:
    """Every item of a list field must be a string: a null item is a missing value, anything
    else the wrong type (reported at `path[]`). Those rows' lists are dropped from the column."""
    items = set(map(type, chain.from_iterable(v for v in values if type(v) is list)))
    if items <= {str}:
        return values
    where = spec.path + "[]"
    nulls, wrong = [], []
    for i, value in enumerate(values):
        if type(value) is list:
            for item in value:
                if type(item) is not str:
                    (nulls if item is None else wrong).append(i)
                    break
    rej.reject(
        rows[np.array(nulls, dtype=np.int64)],
        ReasonCode.MISSING_FIELD,
        where,
        "a list item is null",
    )
    rej.reject(
        rows[np.array(wrong, dtype=np.int64)], ReasonCode.WRONG_TYPE, where, "expected a string"
    )
    dropped = set(nulls) | set(wrong)
    return [None if i in dropped else v for i, v in enumerate(values)]


def _detail(spec: FieldSpec, code: str) -> str:
    if code == ReasonCode.OUT_OF_RANGE:
        if spec.kind is Kind.DECIMAL:
            return (
                f"must have at most {spec.scale} decimal places and at most "
                f"{(spec.precision or 0) - (spec.scale or 0)} digits before the point "
                f"(decimal({spec.precision},{spec.scale}))"
            )
        return _int_range_text(spec)
    return f"expected {_EXPECTED[spec.kind]}"


def _int_range_text(spec: FieldSpec) -> str:
    lo, hi = spec.int_range or _INT64
    return f"must fit an Avro {spec.avro_type or 'long'} ({lo}..{hi})"


def _reject_codes(spec: FieldSpec, codes: np.ndarray, rows: np.ndarray, rej: Rejects) -> np.ndarray:
    """Reject rows whose value failed conversion; return the mask of those rows."""
    bad = codes != None  # noqa: E711 - elementwise comparison on an object array
    if bad.any():
        for code in set(codes[bad]):
            rej.reject(rows[codes == code], code, spec.path, _detail(spec, code))
    return bad


def check_rules(
    spec: FieldSpec,
    arr: pa.Array,
    bad: np.ndarray,
    rows: np.ndarray,
    rej: Rejects,
    limits: Limits,
) -> pa.Array:
    """Presence, enum, range and pattern rules over a typed column (`bad`: already failed)."""
    if spec.required:
        missing = arr.is_null().to_numpy(zero_copy_only=False) & ~bad
        if spec.kind in (Kind.STRING, Kind.ENUM):
            missing |= pc.fill_null(pc.equal(arr, ""), False).to_numpy(zero_copy_only=False)
        rej.reject(
            rows[missing], ReasonCode.MISSING_FIELD, spec.path, "required field is absent or null"
        )
    if spec.kind is Kind.STRING_LIST and arr.null_count < len(arr):
        items = pc.list_flatten(arr)
        if items.null_count:
            parents = pc.list_parent_indices(arr).filter(items.is_null())
            rej.reject(
                rows[np.unique(parents.to_numpy(zero_copy_only=False))],
                ReasonCode.MISSING_FIELD,
                spec.path + "[]",
                "a list item is null",
            )
    if spec.symbols:
        unknown = pc.invert(pc.fill_null(pc.is_in(arr, value_set=pa.array(spec.symbols)), True))
        rej.reject(
            rows[unknown.to_numpy(zero_copy_only=False)],
            ReasonCode.UNKNOWN_ENUM,
            spec.path,
            f"expected one of {', '.join(spec.symbols)}",
        )
    _reject_outside(spec, arr, rows, rej, limits)
    if spec.pattern:
        code = ReasonCode.INVALID_IDENTIFIER if spec.identifier else ReasonCode.INVALID_FORMAT
        if spec.kind is Kind.STRING_LIST:  # the pattern is each item's
            items = pc.list_flatten(arr)
            mismatch = pc.invert(pc.fill_null(pc.match_substring_regex(items, spec.pattern), True))
            parents = pc.list_parent_indices(arr).filter(mismatch).to_numpy(zero_copy_only=False)
            rej.reject(
                rows[np.unique(parents)], code, spec.path + "[]", f"must match {spec.pattern}"
            )
        else:
            matches = pc.match_substring_regex(arr, spec.pattern)
            mismatch = pc.invert(pc.fill_null(matches, True)).to_numpy(zero_copy_only=False)
            rej.reject(rows[mismatch], code, spec.path, f"must match {spec.pattern}")
    return arr


def _reject_outside(
    spec: FieldSpec, arr: pa.Array, rows: np.ndarray, rej: Rejects, limits: Limits
) -> None:
    """Range rules: the Avro type's own range, finite doubles, the time window, then the
    contract's `pharmaflow.min` / `max` rules."""
    if spec.int_range is not None and spec.int_range != _INT64 and len(arr):
        lo, hi = spec.int_range
        outside = pc.or_(pc.less(arr, lo), pc.greater(arr, hi))
        rej.reject(_mask(outside, rows), ReasonCode.OUT_OF_RANGE, spec.path, _int_range_text(spec))
    elif spec.kind is Kind.DOUBLE and len(arr):
        rej.reject(
            _mask(pc.invert(pc.is_finite(arr)), rows),
            ReasonCode.OUT_OF_RANGE,
            spec.path,
            "must be a finite number",
        )
    window = limits.window(spec)
    if window is not None and len(arr):
        lo, hi, text = window
        outside = pc.or_(pc.less(arr, lo), pc.greater(arr, hi))
        rej.reject(_mask(outside, rows), ReasonCode.OUT_OF_RANGE, spec.path, text)
    out_of_range = _range_violations(spec, arr)
    if out_of_range is not None:
        rej.reject(rows[out_of_range], ReasonCode.OUT_OF_RANGE, spec.path, _range_text(spec))


def _mask(condition: pa.Array, rows: np.ndarray) -> np.ndarray:
    return rows[pc.fill_null(condition, False).to_numpy(zero_copy_only=False)]


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
    limits: Limits | None = None,
) -> None:
    """Check every child of a record field; nested records recurse. Typed leaves go to `columns`.

    `dicts` holds one dict per row (an empty one where the record itself was missing).
    `limits`: the time window, made absolute (default: the default window, now)."""
    limits = limits or Limits.at()
    get = dict.get
    for child in spec.children:
        values = list(map(get, dicts, repeat(child.name)))
        if child.kind is Kind.RECORD:
            kinds = record_kinds(values)
            if kinds is not None:
                rej.reject(
                    rows[kinds == 2], ReasonCode.WRONG_TYPE, child.path, "expected an object"
                )
                if child.required:
                    rej.reject(
                        rows[kinds == 0],
                        ReasonCode.MISSING_FIELD,
                        child.path,
                        "required field is absent or null",
                    )
                values = [v if type(v) is dict else _EMPTY for v in values]
            check_record(child, values, rows, rej, columns, limits)
        else:
            columns[child.path] = check_field(child, values, rows, rej, limits)


# --------------------------------------------------------------------------- fast path
#
# Arrow converts a list of dicts to a struct array in one C++ pass, touching each dict once,
# which is several times faster than pulling every field out on its own. Its conversion is
# strict for strings, booleans and records but lenient for a few JSON types (it truncates 2.5
# into an int field, takes true as 1.0 and "ab" as a list), so those fields are re-checked
# by Python type; a chunk that does not convert is bisected down to small pieces that go through
# the field-by-field path above, so every reason stays exact; rules then run once per column.
# Decimals are not in the struct at all: a JSON number and a decimal string are both valid, and
# no one Arrow type takes both, so they are read on their own (`_decimal_column`).

_GUARDED = frozenset({Kind.INT, Kind.DOUBLE, Kind.STRING_LIST})
# Rows converted per call: a bad row costs its chunk a bisection, not the batch. Measured on
# the file benchmark's input (all faults on): 1024 rows per call take ~10 % less CPU in
# analysis than 128 (fewer calls), and a bisection of 1024 rows is still a few conversions.
_CHUNK = 1024
_SMALLEST_PIECE = 16


@cache
def _struct_type(spec: FieldSpec) -> pa.StructType:
    fields = []
    for child in spec.children:
        if child.kind is Kind.DECIMAL:
            continue
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
    limits: Limits | None = None,
) -> None:
    """Same contract as `check_record` (same reasons, same typed leaves), faster."""
    limits = limits or Limits.at()
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
        _check_struct(spec, combined, dicts, rows, rej, columns, limits)
        return
    fast_at = _positions(fast)
    slow_at = _positions(slow)
    fast_columns: dict[str, pa.Array] = {}
    slow_columns: dict[str, pa.Array] = {}
    _check_struct(
        spec, combined, [dicts[i] for i in fast_at], rows[fast_at], rej, fast_columns, limits
    )
    check_record(spec, [dicts[i] for i in slow_at], rows[slow_at], rej, slow_columns, limits)
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
    limits: Limits,
) -> None:
    get = dict.get
    # flatten(), not field(): it applies the struct's own nulls (a missing nested record)
    typed = dict(zip(converted.type.names, converted.flatten(), strict=True))
    for child in spec.children:
        if child.kind is Kind.DECIMAL:
            values = list(map(get, dicts, repeat(child.name)))
            arr, bad = _convert(child, values, rows, rej)
            columns[child.path] = check_rules(child, arr, bad, rows, rej, limits)
            continue
        arr = typed[child.name]
        if child.kind is Kind.RECORD:
            if child.required:
                rej.reject(
                    rows[arr.is_null().to_numpy(zero_copy_only=False)],
                    ReasonCode.MISSING_FIELD,
                    child.path,
                    "required field is absent or null",
                )
            nested = [v if v is not None else _EMPTY for v in map(get, dicts, repeat(child.name))]
            _check_struct(child, arr, nested, rows, rej, columns, limits)
            continue
        bad = np.zeros(len(arr), dtype=bool)
        if child.kind in _GUARDED:
            values = list(map(get, dicts, repeat(child.name)))
            present = set(map(type, values))
            present.discard(type(None))
            if not present <= _JSON_TYPES[child.kind]:
                arr, bad = _convert(child, values, rows, rej)
        elif child.kind in _PARSED_FROM_TEXT:
            codes = np.full(len(arr), None, dtype=object)
            arr = parse_text(child.kind, arr, codes)
            bad = _reject_codes(child, codes, rows, rej)
        columns[child.path] = check_rules(child, arr, bad, rows, rej, limits)


@dataclass
class Validated:
    """A validated batch: per-row verdicts, typed envelope columns and the rows per contract."""

    rejects: Rejects
    envelope: dict[str, pa.Array]
    docs: list[dict[str, Any]]
    groups: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    columns: dict[tuple[str, int], dict[str, pa.Array]] = field(default_factory=dict)


def validate(
    docs: list[Any],
    registry: ContractRegistry,
    window: TimeWindow | None = None,
    now: datetime | None = None,
) -> Validated:
    """Envelope first, then each event type's payload against its contract version.

    `window`: the plausible span of timestamps (default `TimeWindow()`), relative to `now`,
    the batch's analysis time (default: the current time)."""
    limits = Limits.at(window, now)
    n = len(docs)
    rej = Rejects(n)
    kinds = record_kinds(docs)
    if kinds is not None:
        for i in np.flatnonzero(kinds == 2):
            if isinstance(docs[i], Undecodable):
                rej.reject(np.array([i]), docs[i].code, docs[i].field, docs[i].detail)
        rej.reject(kinds != 1, ReasonCode.NOT_AN_OBJECT, None, "an event must be a JSON object")
        docs = [d if type(d) is dict else _EMPTY for d in docs]

    envelope: dict[str, pa.Array] = {}
    check_record_fast(_envelope_spec(registry.envelope), docs, np.arange(n), rej, envelope, limits)
    payloads = list(map(dict.get, docs, repeat("payload")))
    pkinds = record_kinds(payloads)
    if pkinds is not None:
        rej.reject(
            pkinds == 0, ReasonCode.MISSING_FIELD, "payload", "required field is absent or null"
        )
        rej.reject(pkinds == 2, ReasonCode.WRONG_TYPE, "payload", "expected an object")
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
            rej.reject(
                rows, ReasonCode.UNKNOWN_EVENT_TYPE, "event_type", "no contract for this event type"
            )
            continue
        for version in np.unique(versions[rows]).tolist():
            vrows = rows[versions[rows] == version]
            contract = registry.get(event_type, int(version))
            if contract is None:
                rej.reject(
                    vrows,
                    ReasonCode.UNKNOWN_VERSION,
                    "event_version",
                    f"known versions: {registry.versions(event_type)}",
                )
                continue
            columns: dict[str, pa.Array] = {}
            check_record_fast(
                contract.payload, [payloads[i] for i in vrows], vrows, rej, columns, limits
            )
            result.groups[(event_type, int(version))] = vrows
            result.columns[(event_type, int(version))] = columns
    return result


@cache
def _envelope_spec(fields: tuple[FieldSpec, ...]) -> FieldSpec:
    return FieldSpec(name="", path="", kind=Kind.RECORD, required=True, children=fields)
