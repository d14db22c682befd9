"""Clear-text identifiers next to sealed records: kept only when they look like identifiers.

A quarantined event's `event_id` and `event_type`, and a dead letter's Kafka key, are stored in
the clear so people can find and count rejects. But a rejected event is exactly the one whose
fields cannot be trusted: someone may have put a patient's name in `event_id`. Such a value is
kept only when it matches its identifier pattern (the envelope field's `pharmaflow.pattern`, or
`FALLBACK_PATTERN`); otherwise it is null, and the sealed original still holds it.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

# Conservative: starts alphanumeric, no spaces, at most 128 characters of id punctuation.
FALLBACK_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$"
_FALLBACK = re.compile(FALLBACK_PATTERN)


def identifiers_only(values: pa.Array, pattern: str | None) -> pa.Array:
    """The values that match `pattern` (or the fallback), null elsewhere."""
    values = values.cast(pa.string())
    ok = pc.fill_null(pc.match_substring_regex(values, pattern or FALLBACK_PATTERN), False)
    if pattern:  # a contract pattern may be loose (unanchored): the fallback must hold too
        ok = pc.and_(ok, pc.fill_null(pc.match_substring_regex(values, FALLBACK_PATTERN), False))
    return pc.if_else(ok, values, pa.nulls(len(values), pa.string()))


def identifier_bytes(value: bytes | None) -> bytes | None:
    """A Kafka key kept only when it is a plain identifier (see `FALLBACK_PATTERN`)."""
    if value is None:
        return None
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    return value if _FALLBACK.match(text) else None
