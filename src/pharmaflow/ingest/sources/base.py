"""What every source hands the engine: batches of raw records with their provenance.

A source only reads bytes and says where they came from; decoding, validation and landing are
the engine's. That keeps file, Kafka, Pub/Sub and HTTP sources small and identical downstream.
`ack` is called once a batch is durably committed — a Kafka source commits offsets there.
Stream sources also get a `SourceContext` (through `attach`) to reach the lake's bookmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class RawBatch:
    """Raw records and where they came from, in one of two shapes.

    Line sources hand over `blob`: a contiguous run of lines (newline-separated, blank lines
    included, first one numbered `first_offset`). Splitting and copying happen in the worker
    that analyses the batch, so the landing process never builds one Python object per line.
    Message sources (Kafka, HTTP) hand over `records` with their own `offsets`.
    """

    batch_id: str
    source: str
    source_uri: str
    blob: bytes | None = None
    first_offset: int = 1
    records: list[bytes] | None = None
    offsets: np.ndarray | None = None
    partitions: np.ndarray | None = None
    format: str = "json"  # how records decode: "json" (one event each) or "csv" (with columns)
    columns: tuple[str, ...] = ()  # CSV header
    # Message sources only: each record's topic and key, records the source recognised as
    # landed before (skipped, counted as replayed), records it could not turn into an event
    # (row -> reason code and detail, e.g. an Avro schema id nobody registered), and per
    # topic partition the offsets the batch holds: [topic, topic id, partition, first, last].
    topics: list[str] | None = None
    keys: list[bytes | None] | None = None
    replayed: int = 0
    decode_errors: dict[int, tuple[str, str]] = field(default_factory=dict)  # (code, detail)
    offset_ranges: list[list[Any]] = field(default_factory=list)

    @property
    def raw_is_json(self) -> bool:
        """Records are JSON events, which bronze may store as they arrived."""
        return self.format == "json"

    @property
    def payload(self) -> bytes | list[bytes]:
        return self.blob if self.blob is not None else (self.records or [])

    @property
    def tick(self) -> bool:
        """A stream source's "nothing new for a while": land whatever is still in flight."""
        return self.empty and not self.offset_ranges and not self.replayed

    @property
    def empty(self) -> bool:
        """No records to analyse (a message batch may hold only replayed ones)."""
        return self.blob is None and not self.records

    def kept_offsets(self, keep: np.ndarray | None) -> np.ndarray:
        """Offsets of the records analysis kept (blank lines dropped)."""
        if self.offsets is not None:
            return self.offsets if keep is None else self.offsets[keep]
        lines = np.arange(self.first_offset, self.first_offset + len(keep), dtype=np.int64)
        return lines[keep]


@dataclass
class DeadLetter:
    """An invalid record, to be sent back to the stream it came from with its reason."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason_code: str
    reason_field: str | None
    reason_detail: str


@dataclass
class SourceContext:
    """What the engine lends a stream source.

    `refresh` takes in batches other writers committed (their offsets and event ids), for a
    source that was just handed partitions another worker owned; `landed_offsets` then gives
    the highest landed offset per (topic, topic id, partition); `drain` lands and commits every
    batch handed over so far, for a source about to lose partitions (a rebalance) or to stop.
    """

    writer: str
    refresh: Callable[[], None]
    landed_offsets: Callable[[], dict[tuple[str, str, int], int]]
    drain: Callable[[], None]


class Source(Protocol):
    """A stream of raw batches. Implementations: `JsonlFileSource`, `CsvFileSource`,
    `KafkaSource`. A stream source may also define `attach(SourceContext)`, `close()` and
    `dead_letter(batch, letters)` (called before the batch commits)."""

    description: str

    def batches(self, batch_size: int) -> Iterator[RawBatch]: ...

    def ack(self, batch: RawBatch) -> None: ...
