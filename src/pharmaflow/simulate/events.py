"""Block-wise buffer of the genuine business events, before faults and serialisation.

Domain modules emit events in whatever order their logic runs; nothing is serialised until
the whole window is known, because output order is arrival order (which needs every event's
time) and faults are chosen over the whole stream. Events are kept in blocks of one type
with times in numpy arrays, so the later steps (cut to the window, latency, faults, sort,
timestamp formatting) run vectorised. High-volume readings are stored as a `Series` (one
fixed payload plus the one number that changes), never as one dict per reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Payload = dict[str, Any]


@dataclass(frozen=True)
class Series:
    """Payloads that differ only in one numeric field: `fixed` with `field` set per value
    (values already rounded to the precision they are written with)."""

    fixed: Payload
    field: str
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Block:
    """Events of one type and source. `keys`/`traces` are one value for the whole block or
    one per event; `payloads` is one dict per event or a `Series`."""

    event_type: str
    source: str
    times: np.ndarray  # int64 epoch ms
    keys: str | list[str]
    traces: str | list[str | None] | None
    payloads: list[Payload] | Series
    tz: np.ndarray  # int16 UTC offset (minutes) the producer writes its clock in; 0 = "Z"

    def __len__(self) -> int:
        return len(self.times)

    def take(self, rows: np.ndarray) -> Block:
        """The block restricted to the given row indexes."""
        picked = rows.tolist()

        def pick(column: Any) -> Any:
            return [column[i] for i in picked] if isinstance(column, list) else column

        payloads = self.payloads
        if isinstance(payloads, Series):
            payloads = Series(payloads.fixed, payloads.field, payloads.values[rows])
        else:
            payloads = pick(payloads)
        return Block(
            self.event_type,
            self.source,
            self.times[rows],
            pick(self.keys),
            pick(self.traces),
            payloads,
            self.tz[rows],
        )


@dataclass(frozen=True)
class EventTable:
    """All genuine events of the window: the blocks, and per-event columns over all blocks
    (row i of a column is event i in block order)."""

    blocks: list[Block]
    times: np.ndarray  # int64 epoch ms
    type_codes: np.ndarray  # int16 index into `types`
    types: list[str]
    source_codes: np.ndarray  # int16 index into `sources`
    sources: list[str]
    key_codes: np.ndarray  # int64, equal for equal keys
    tz_minutes: np.ndarray  # int16

    def __len__(self) -> int:
        return len(self.times)


class EventSink:
    """Collects events; `table()` keeps only those inside [start_ms, end_ms)."""

    def __init__(self, start_ms: int, end_ms: int) -> None:
        self._start = start_ms
        self._end = end_ms
        self._blocks: list[Block] = []
        # (time, key, trace, payload, tz) rows of events emitted one at a time, per type
        self._singles: dict[tuple[str, str], list[tuple[int, str, str | None, Payload, int]]] = {}

    def emit(
        self,
        event_type: str,
        source: str,
        time_ms: int,
        key: str,
        payload: Payload,
        trace: str | None = None,
        tz: int = 0,
    ) -> None:
        """One event; for flows whose events are decided one at a time (orders, shipments)."""
        rows = self._singles.get((event_type, source))
        if rows is None:
            rows = self._singles[(event_type, source)] = []
        rows.append((time_ms, key, trace, payload, tz))

    def emit_many(
        self,
        event_type: str,
        source: str,
        times: np.ndarray,
        keys: Sequence[str] | str,
        payloads: list[Payload] | Series,
        trace: Sequence[str | None] | str | None = None,
        tz: np.ndarray | int = 0,
    ) -> None:
        """A block of events of one type (sensor and temperature readings, sales)."""
        n = len(payloads)
        self._blocks.append(
            Block(
                event_type,
                source,
                np.asarray(times, dtype=np.int64),
                keys if isinstance(keys, str) else list(keys),
                trace if trace is None or isinstance(trace, str) else list(trace),
                payloads,
                np.broadcast_to(np.asarray(tz, dtype=np.int16), (n,)),
            )
        )

    def table(self) -> EventTable:
        """Every block cut to the window, with the per-event columns built over them."""
        singles = []
        for (event_type, source), rows in self._singles.items():
            times, keys, traces, payloads, tz = zip(*rows, strict=True)
            singles.append(
                Block(
                    event_type,
                    source,
                    np.array(times, np.int64),
                    list(keys),
                    list(traces),
                    list(payloads),
                    np.array(tz, np.int16),
                )
            )
        blocks: list[Block] = []
        for block in self._blocks + singles:
            inside = (block.times >= self._start) & (block.times < self._end)
            if not inside.all():
                block = block.take(np.flatnonzero(inside))
            if len(block):
                blocks.append(block)
        types: dict[str, int] = {}
        sources: dict[str, int] = {}
        key_index: dict[str, int] = {}
        lengths = [len(b) for b in blocks]
        type_of = [types.setdefault(b.event_type, len(types)) for b in blocks]
        source_of = [sources.setdefault(b.source, len(sources)) for b in blocks]
        key_parts = [
            np.full(n, key_index.setdefault(b.keys, len(key_index)))
            if isinstance(b.keys, str)
            else np.fromiter((key_index.setdefault(k, len(key_index)) for k in b.keys), np.int64, n)
            for b, n in zip(blocks, lengths, strict=True)
        ]

        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        return EventTable(
            blocks=blocks,
            times=cat([b.times for b in blocks], np.int64),
            type_codes=np.repeat(np.array(type_of, np.int16), lengths),
            types=list(types),
            source_codes=np.repeat(np.array(source_of, np.int16), lengths),
            sources=list(sources),
            key_codes=cat(key_parts, np.int64),
            tz_minutes=cat([b.tz for b in blocks], np.int16),
        )
