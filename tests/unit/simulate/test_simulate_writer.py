"""Vectorised formatting helpers agree with the standard library."""

from __future__ import annotations

import uuid
from datetime import datetime

import numpy as np
import orjson

from pharmaflow.simulate.events import EventSink, Series
from pharmaflow.simulate.writer import render_lines, stamp_chars, text_rows, uuid4_chars


def test_uuids_are_version_4_and_deterministic() -> None:
    ids = text_rows(uuid4_chars(np.random.default_rng(1), 500))
    assert ids == text_rows(uuid4_chars(np.random.default_rng(1), 500))
    assert len(set(ids)) == 500
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4


def test_stamps_match_numpy_and_offsets_name_the_same_instant() -> None:
    rng = np.random.default_rng(2)
    times = rng.integers(0, 4_000_000_000_000, 2000)  # 1970 to 2096, leap years included
    offsets = rng.choice(np.array([0, 0, -300, -480, 60, 330], np.int16), 2000)
    stamps = text_rows(stamp_chars(times, offsets))
    expected = np.datetime_as_string(times.astype("datetime64[ms]"), unit="ms", timezone="UTC")
    for stamp, utc, ms, offset in zip(
        stamps, expected.tolist(), times.tolist(), offsets.tolist(), strict=True
    ):
        parsed = datetime.fromisoformat(stamp)
        assert round(parsed.timestamp() * 1000) == ms
        assert parsed.utcoffset().total_seconds() == offset * 60
        if offset == 0:
            assert stamp == utc
        else:
            assert len(stamp) == 29 and stamp[23] in "+-"


def test_series_lines_are_what_orjson_writes_for_the_same_event() -> None:
    sink = EventSink(0, 10**13)
    values = np.round(np.random.default_rng(3).normal(-3, 20, 300), 3)
    fixed = {"sensor_id": "S-1", "batch_id": "B-1", "value": 0.0, "unit": "C"}
    times = np.arange(300, dtype=np.int64) * 60_000
    sink.emit_many(
        "manufacturing.sensor.reading",
        "sensors",
        times,
        "B-1",
        Series(fixed, "value", values),
        "t1",
    )
    sink.emit(
        "sales.sale.completed", "pos", 5, "S-9", {"sale_id": "S-9", "note": 'a "quoted" word'}
    )
    table = sink.table()
    ids = uuid4_chars(np.random.default_rng(4), len(table))
    lines = render_lines(table, ids, stamp_chars(table.times, table.tz_minutes))
    assert len(lines) == 301
    for line, value in zip(lines, values.tolist(), strict=False):
        event = orjson.loads(line)
        assert orjson.dumps(event) == line
        assert event["payload"] == {**fixed, "value": value}
        assert event["trace_id"] == "t1" and event["key"] == "B-1"
    assert orjson.loads(lines[-1])["payload"]["note"] == 'a "quoted" word'
    assert "trace_id" not in orjson.loads(lines[-1])
