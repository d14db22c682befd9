"""Property: the cheap repeated-key check (colon counts over a whole batch) is exact.

Random JSON objects are written adversarially: keys repeated at any depth, keys and strings
with \\u escapes (including \\u003a for a colon), quotes, colons and backslashes inside strings,
whitespace around colons. Whatever the batch, `ambiguous` must flag exactly the records in
which some object repeats a key, as Python's json with an `object_pairs_hook` (which sees every
pair) tells them, whether it is handed the batch as one blob or record by record.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pharmaflow.ingest.decode import _decode_one, ambiguous

keys = st.text(alphabet=st.sampled_from('ab:"\\\u00e9\U0001f48a '), min_size=0, max_size=3)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    keys,
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(keys, inner), max_size=4),  # pairs: may repeat a key
    ),
    max_leaves=12,
)


@st.composite
def written(draw: st.DrawFn, value: Any) -> str:
    """JSON text of `value` (pairs lists are objects), written in some odd way."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        return "{" + ",".join(_pair(draw, k, v) for k, v in value) + "}"
    if isinstance(value, list) and value == []:
        return draw(st.sampled_from(["[]", "{}"]))
    if isinstance(value, list):
        return "[" + ",".join(draw(written(v)) for v in value) + "]"
    if isinstance(value, str):
        return _string(draw, value)
    return json.dumps(value)


def _pair(draw: st.DrawFn, key: str, value: Any) -> str:
    space = draw(st.sampled_from(["", " ", "\t", "\r\n "]))
    return _string(draw, key) + space + ":" + space + draw(written(value))


def _string(draw: st.DrawFn, text: str) -> str:
    """A JSON string, each character plain or \\u-escaped (quotes and backslashes: escaped)."""
    out = []
    for c in text:
        if draw(st.booleans()) or c in '"\\':
            out.append(f"\\u{ord(c):04x}" if draw(st.booleans()) else json.dumps(c)[1:-1])
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _repeats(raw: bytes) -> bool:
    """The truth: does some object in `raw` repeat a key (after decoding escapes)?"""
    found = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            found.append(True)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return bool(found)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(keys, values), min_size=1, max_size=4))
    return draw(written(pairs)).encode()


@settings(max_examples=400, deadline=None, database=None)  # no example files in the tree
@given(batch=st.lists(records(), min_size=1, max_size=8), as_blob=st.booleans())
def test_the_colon_count_check_finds_exactly_the_repeated_keys(batch, as_blob):
    docs = [_decode_one(r) for r in batch]
    assert all(type(d) is dict for d in docs), batch  # the writer writes valid JSON objects
    flagged = ambiguous(batch, docs, b"\n".join(batch) if as_blob else None)
    truth = {i for i, raw in enumerate(batch) if _repeats(raw)}
    assert set(flagged) == truth, [batch[i] for i in set(flagged) ^ truth]
    assert all(flagged[i].code == "duplicate_key" for i in truth)


def test_a_repeat_is_found_even_when_the_batch_totals_happen_to_agree():
    """A repeated key in one record and a \\u003a colon in another: batch-wide, the raw text
    has as many colons as the re-encoding, so only the escape guard sends it record by record."""
    repeated = b'{"a":1,"a":2}'  # raw 2 colons, canonical 1
    escaped = b'{"b":"x\\u003a"}'  # raw 1 colon, canonical 2
    docs = [orjson.loads(repeated), orjson.loads(escaped)]
    flagged = ambiguous([repeated, escaped], docs, repeated + b"\n" + escaped)
    assert set(flagged) == {0}
