"""Trace ids: W3C-form generation, `traceparent` parsing, and refusing any unsafe header."""

from __future__ import annotations

import re

import pytest

from pharmaflow import tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_new_trace_id_is_32_lowercase_hex_and_unique():
    ids = {tracing.new_trace_id() for _ in range(2000)}
    assert len(ids) == 2000
    for trace_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert tracing.is_trace_id(trace_id)
        assert tracing.parse_traceparent(f"00-{trace_id}-{PARENT}-01") == trace_id


@pytest.mark.parametrize(
    "header",
    [f"00-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-00", f"01-{TRACE}-{PARENT}-01-future-field"],
)
def test_a_valid_traceparent_gives_its_trace_id(header):
    assert tracing.parse_traceparent(header) == TRACE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        TRACE,
        f"00-{TRACE.upper()}-{PARENT}-01",  # the spec: lowercase only
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"01-{TRACE}-{PARENT}-01extra",  # a later version's extra fields follow a dash
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE}-{PARENT}-01\r\nX-Evil: 1",
        f" 00-{TRACE}-{PARENT}-01",
        f"01-{TRACE}-{PARENT}-01-" + "x" * 10_000,  # 10 kB
    ],
)
def test_an_invalid_traceparent_gives_nothing(header):
    assert tracing.parse_traceparent(header) is None


@pytest.mark.parametrize("token", ["abc", "order-42", "a.b:c_d-e", "A" * 128, TRACE, "0"])
def test_a_safe_x_trace_id_is_kept(token):
    assert tracing.safe_trace_token(token) == token


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "A" * 129,
        "x" * 10_000,  # 10 kB
        "abc\r\nX-Evil: 1",  # header / log line injection
        "abc\n",  # `$` would match before a trailing newline: fullmatch does not
        "abc\u2028def",
        "two words",
        "Zuleika Okonkwo",
        "José",
        "a/b",
        "<script>",
        '{"forged":1}',
        "abc\x00",
    ],
)
def test_an_unsafe_x_trace_id_is_refused(token):
    assert tracing.safe_trace_token(token) is None


def test_inbound_trace_prefers_traceparent_then_x_trace_id():
    assert tracing.inbound_trace(f"00-{TRACE}-{PARENT}-01", "mine") == (TRACE, "traceparent")
    assert tracing.inbound_trace(None, "mine") == ("mine", "x-trace-id")
    assert tracing.inbound_trace("garbage", "mine") == ("mine", "x-trace-id")


@pytest.mark.parametrize(
    ("traceparent", "x_trace_id", "origin"),
    [
        (None, None, "generated"),
        ("garbage", None, "replaced"),
        (None, "abc\r\nX-Evil: 1", "replaced"),
        (None, "x" * 10_000, "replaced"),
        ("00-zz", "two words", "replaced"),
    ],
)
def test_a_missing_or_refused_header_gets_a_fresh_id(traceparent, x_trace_id, origin):
    trace_id, got = tracing.inbound_trace(traceparent, x_trace_id)
    assert got == origin
    assert tracing.is_trace_id(trace_id)
    assert trace_id not in (traceparent, x_trace_id)


def test_is_trace_id_is_strict():
    assert tracing.is_trace_id(TRACE)
    assert not tracing.is_trace_id("0" * 32)
    assert not tracing.is_trace_id(TRACE.upper())
    assert not tracing.is_trace_id(TRACE + "\n")
    assert not tracing.is_trace_id(None)
