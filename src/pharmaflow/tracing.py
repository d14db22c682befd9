"""Trace ids: the one correlation id that follows an event or a request through the platform.

Not the recall trace (`pharmaflow trace lot|batch`, warehouse/trace.py): this is the
observability kind, the `trace_id` of the event envelope and of the log lines (logs.py).

- `new_trace_id()` makes one: 32 lowercase hex digits, the W3C trace-context `trace-id`
  form, so the id can be handed to (or come from) an OpenTelemetry-instrumented system as is.
- `parse_traceparent(value)` takes the trace id out of a W3C `traceparent` header
  (`00-<32 hex>-<16 hex>-<2 hex>`), or None when the header is not one.
- `safe_trace_token(value)` accepts a plain `X-Trace-Id` only when it is a short, boring
  token (`[A-Za-z0-9._:-]{1,128}`).
- `inbound_trace(traceparent, x_trace_id)` picks the id a request is logged under, and says
  where it came from.

Why so strict: a header is whatever a client sent. Everything accepted here ends up in log
lines, response headers and support tickets, so anything that is not plainly an id (CRLF, a
10 kB blob, a patient's name) is replaced by a fresh id rather than cleaned up: there is no
safe way to half-trust it.
"""

from __future__ import annotations

import re
import secrets
from typing import Literal

TRACE_HEADER = "X-Trace-Id"
TRACEPARENT_HEADER = "traceparent"

# Longest accepted header: a version-00 traceparent is 55 characters; later versions may
# append fields, but nothing legitimate is anywhere near this.
MAX_HEADER_CHARS = 512

_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16

TraceOrigin = Literal["traceparent", "x-trace-id", "generated", "replaced"]


def new_trace_id() -> str:
    """A fresh trace id: 128 random bits as 32 lowercase hex digits (never all zeros, which
    W3C trace-context reserves for "no trace")."""
    while True:
        trace_id = secrets.token_hex(16)
        if trace_id != _ZERO_TRACE:
            return trace_id


def is_trace_id(value: object) -> bool:
    """True for a W3C-form trace id (32 lowercase hex, not all zeros)."""
    return (
        isinstance(value, str) and _TRACE_ID.fullmatch(value) is not None and value != _ZERO_TRACE
    )


def parse_traceparent(value: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header, or None when `value` is not a valid one.

    Version `00` must be exactly `00-<trace-id>-<parent-id>-<flags>`; a later version may
    carry more fields after a `-` (the spec's forward compatibility), `ff` is invalid, and
    all-zero trace or parent ids are invalid."""
    if not value or len(value) > MAX_HEADER_CHARS:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    rest = value[match.end() :]
    if version == "ff" or (version == "00" and rest) or (rest and not rest.startswith("-")):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return trace_id


def safe_trace_token(value: str | None) -> str | None:
    """`value` when it is a safe plain trace id (`[A-Za-z0-9._:-]{1,128}`, nothing else: no
    spaces, no line breaks), else None."""
    if not value or len(value) > 128:
        return None
    return value if _TOKEN.fullmatch(value) else None


def inbound_trace(traceparent: str | None, x_trace_id: str | None) -> tuple[str, TraceOrigin]:
    """The trace id to serve a request under, and where it came from: a valid `traceparent`
    wins (the W3C standard), then a safe `X-Trace-Id`; otherwise a fresh id — `generated`
    when neither header was sent, `replaced` when one was sent but refused."""
    from_parent = parse_traceparent(traceparent)
    if from_parent is not None:
        return from_parent, "traceparent"
    token = safe_trace_token(x_trace_id)
    if token is not None:
        return token, "x-trace-id"
    sent = traceparent is not None or x_trace_id is not None
    return new_trace_id(), "replaced" if sent else "generated"
