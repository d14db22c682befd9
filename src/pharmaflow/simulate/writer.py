"""Envelopes, event ids, timestamps and the atomic JSONL write.

Per-event Python work is kept small: ids and timestamps are rendered for whole columns as
numpy byte matrices, dict payloads are serialised a block per `orjson` call, readings (three
quarters of a default run) are filled into a template serialised once per block, and the
file is written in large chunks to a temporary name and then renamed, so a reader never
sees a half-written file. `LineRenderer` renders any subset of the events on demand, so a
file is written chunk by chunk in arrival order without ever holding every rendered line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pharmaflow.simulate.config import DAY_MS, MINUTE_MS
from pharmaflow.simulate.events import Block, EventTable, Series

EVENT_VERSION = 1
CHUNK_LINES = 50_000
SPACE, NEWLINE = ord(" "), ord("\n")
STAMP_WIDTH = len("2026-11-01T05:00:00.000-05:00")
# In a compact JSON array of envelopes whose first key is always "event_id", this byte
# sequence occurs exactly at the boundaries between envelopes: inside a JSON string every
# quote is escaped, and no payload holds a list of objects with an "event_id" key.
_BOUNDARY = b'},{"event_id":"'
_NEWLINE_BOUNDARY = b'}\n{"event_id":"'
# Zero-padded decimal renderings of 0..99 and 0..999, as byte rows to gather from.
_TWO_DIGITS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), np.uint8)
_TWO_DIGITS = _TWO_DIGITS.reshape(100, 2)
_THREE_DIGITS = np.frombuffer("".join(f"{i:03d}" for i in range(1000)).encode(), np.uint8)
_THREE_DIGITS = _THREE_DIGITS.reshape(1000, 3)


def text_rows(chars: np.ndarray) -> list[str]:
    """One string per row of a (n, width) ASCII matrix, without its space padding.

    Joining the rows with newlines and splitting once is far faster than slicing per row."""
    n, width = chars.shape
    lines = np.empty((n, width + 1), np.uint8)
    lines[:, :width] = chars
    lines[:, width] = NEWLINE
    rows = lines.tobytes().replace(b" ", b"").decode("ascii").split("\n")
    rows.pop()
    return rows


def uuid4_chars(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` RFC 4122 version-4 UUIDs from the generator's bits, as a (n, 36) ASCII matrix."""
    raw = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.frombuffer(raw.tobytes().hex().encode(), np.uint8).reshape(n, 32)
    chars = np.full((n, 36), ord("-"), np.uint8)
    for dst, src, width in ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12)):
        chars[:, dst : dst + width] = digits[:, src : src + width]
    return chars


def _iso_chars(ms: np.ndarray, width: int) -> np.ndarray:
    """`YYYY-MM-DDTHH:MM:SS.mmm` of epoch milliseconds in the first 23 of `width` columns.

    Dates come from the few distinct days (formatted once each); the time of day is
    gathered from digit tables."""
    days, in_day = np.divmod(ms, DAY_MS)
    unique_days, day_index = np.unique(days, return_inverse=True)
    dates = "".join(f"{datetime.fromtimestamp(int(d) * 86_400, UTC):%Y-%m-%d}" for d in unique_days)
    date_rows = np.frombuffer(dates.encode(), np.uint8).reshape(len(unique_days), 10)
    in_day = in_day.astype(np.int32)
    chars = np.full((len(ms), width), SPACE, np.uint8)
    chars[:, 0:10] = date_rows[day_index]
    chars[:, 10] = ord("T")
    chars[:, 11:13] = _TWO_DIGITS[in_day // 3_600_000]
    chars[:, 13] = ord(":")
    chars[:, 14:16] = _TWO_DIGITS[in_day // 60_000 % 60]
    chars[:, 16] = ord(":")
    chars[:, 17:19] = _TWO_DIGITS[in_day // 1000 % 60]
    chars[:, 19] = ord(".")
    chars[:, 20:23] = _THREE_DIGITS[in_day % 1000]
    return chars


def stamp_chars(times_ms: np.ndarray, tz_minutes: np.ndarray) -> np.ndarray:
    """ISO-8601 event times as a space-padded (n, STAMP_WIDTH) matrix: `...00.000Z` in UTC,
    else local time with the producer's offset, `...00.000-05:00`."""
    times_ms = times_ms.astype(np.int64)
    chars = _iso_chars(times_ms, STAMP_WIDTH)
    chars[:, 23] = ord("Z")
    shifted = np.flatnonzero(tz_minutes)
    if shifted.size:
        offsets = tz_minutes[shifted].astype(np.int64)
        local = _iso_chars(times_ms[shifted] + offsets * MINUTE_MS, STAMP_WIDTH)
        local[:, 23] = np.where(offsets > 0, ord("+"), ord("-"))
        local[:, 24:26] = _TWO_DIGITS[np.abs(offsets) // 60]
        local[:, 26] = ord(":")
        local[:, 27:29] = _TWO_DIGITS[np.abs(offsets) % 60]
        chars[shifted] = local
    return chars


def render_lines(table: EventTable, ids: np.ndarray, stamps: np.ndarray) -> list[bytes]:
    """Every genuine event as its JSONL line (no newline), in table order, given the id and
    stamp matrices of all events."""
    id_texts, stamp_texts = text_rows(ids), text_rows(stamps)
    value_texts = _number_texts(table)
    lines: list[bytes] = []
    start = values_start = 0
    for block in table.blocks:
        end = start + len(block)
        if isinstance(block.payloads, Series):
            values_end = values_start + len(block)
            texts = value_texts[values_start:values_end]
            lines.extend(_render_series(block, id_texts[start:end], stamp_texts[start:end], texts))
            values_start = values_end
        else:
            lines.extend(_render_dicts(block, id_texts[start:end], stamp_texts[start:end]))
        start = end
    return lines


class LineRenderer:
    """Renders the lines of any genuine events (table rows) on demand, byte-identical to
    `render_lines`: the writer asks for one arrival-ordered chunk at a time, so only the
    chunk's lines exist at once, not the whole window's (half of a run's peak memory)."""

    def __init__(self, table: EventTable, ids: np.ndarray, stamps: np.ndarray) -> None:
        self._table = table
        self._ids = ids
        self._stamps = stamps
        self._starts = np.cumsum([0] + [len(b) for b in table.blocks], dtype=np.int64)

    def render(self, rows: np.ndarray) -> list[bytes]:
        """The lines of the given table rows, in the given order (repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return []
        unique, inverse = np.unique(rows, return_inverse=True)
        block_of = np.searchsorted(self._starts, unique, side="right") - 1
        bounds = np.flatnonzero(np.diff(block_of)) + 1
        rendered: list[bytes] = []
        for picked in np.split(unique, bounds):
            index = int(block_of[np.searchsorted(unique, picked[0])])
            block = self._table.blocks[index]
            local = picked - self._starts[index]
            if len(local) != len(block):
                block = block.take(local)
            ids, stamps = text_rows(self._ids[picked]), text_rows(self._stamps[picked])
            if isinstance(block.payloads, Series):
                values = _value_texts(block.payloads.values)
                rendered.extend(_render_series(block, ids, stamps, values))
            else:
                rendered.extend(_render_dicts(block, ids, stamps))
        return list(map(rendered.__getitem__, inverse.tolist()))


def _value_texts(values: np.ndarray) -> list[str]:
    """`_number_texts` for one series: each distinct value formatted once."""
    distinct, index = np.unique(values, return_inverse=True)
    return np.array([repr(v) for v in distinct.tolist()], dtype=object)[index].tolist()


def _number_texts(table: EventTable) -> list[str]:
    """The JSON text of every reading value of every series, in order. Rounded readings
    repeat a lot, so each distinct value is formatted once (`repr`, the shortest
    round-trip form, as orjson writes it; pre-rounded values never take exponent form)."""
    series = [b.payloads.values for b in table.blocks if isinstance(b.payloads, Series)]
    if not series:
        return []
    distinct, index = np.unique(np.concatenate(series), return_inverse=True)
    return np.array([repr(v) for v in distinct.tolist()], dtype=object)[index].tolist()


def _envelope(
    event_id: str, block: Block, stamp: str, trace: str | None, key: str, payload: Any
) -> dict[str, Any]:
    """The wire form of one event; `event_id` first, always (see `_BOUNDARY`)."""
    env: dict[str, Any] = {
        "event_id": event_id,
        "event_type": block.event_type,
        "event_version": EVENT_VERSION,
        "event_time": stamp,
        "source_system": block.source,
    }
    if trace is not None:
        env["trace_id"] = trace
    env["key"] = key
    env["payload"] = payload
    return env


def _render_dicts(block: Block, ids: list[str], stamps: list[str]) -> list[bytes]:
    """One orjson call for the whole block, cut into lines: several times faster than one
    call per event, and byte-identical to it."""
    assert isinstance(block.payloads, list)
    keys = repeat(block.keys) if isinstance(block.keys, str) else block.keys
    traces = block.traces if isinstance(block.traces, list) else repeat(block.traces)
    envelopes = [
        _envelope(event_id, block, stamp, trace, key, payload)
        for event_id, stamp, trace, key, payload in zip(
            ids, stamps, traces, keys, block.payloads, strict=False
        )
    ]
    return orjson.dumps(envelopes)[1:-1].replace(_BOUNDARY, _NEWLINE_BOUNDARY).split(b"\n")


def _render_series(
    block: Block, ids: list[str], stamps: list[str], values: list[str]
) -> list[bytes]:
    """Readings differ only in id, time and one number: serialise the envelope once with
    placeholders and fill them in per event."""
    series = block.payloads
    assert isinstance(series, Series) and isinstance(block.keys, str)
    assert block.traces is None or isinstance(block.traces, str)
    payload = {**series.fixed, series.field: "@VALUE@"}
    template = orjson.dumps(_envelope("@ID@", block, "@TIME@", block.traces, block.keys, payload))
    head, rest = template.decode().split("@ID@")
    middle, rest = rest.split("@TIME@")
    before, after = rest.split('"@VALUE@"')
    text = "\n".join(
        [
            f"{head}{event_id}{middle}{stamp}{before}{value}{after}"
            for event_id, stamp, value in zip(ids, stamps, values, strict=True)
        ]
    )
    return text.encode().split(b"\n")


def write_lines(
    out: Path,
    rows: np.ndarray,
    lines: list[bytes],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write `lines[r]` for each r of `rows`, in order, one per line."""
    chunks = (
        list(map(lines.__getitem__, rows[begin : begin + CHUNK_LINES].tolist()))
        for begin in range(0, len(rows), CHUNK_LINES)
    )
    write_chunks(out, chunks, len(rows), progress)


def write_chunks(
    out: Path,
    chunks: Iterable[list[bytes]],
    total: int,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write each chunk's lines as it comes, to a temporary name renamed over `out` once
    complete (a reader never sees half a file; a failed run leaves no temporary behind)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    done = 0
    try:
        with tmp.open("wb") as fh:
            for chunk in chunks:
                if not chunk:
                    continue
                fh.write(b"\n".join(chunk))
                fh.write(b"\n")
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
