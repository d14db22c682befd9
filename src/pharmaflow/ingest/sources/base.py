"""What every source hands the engine: batches of raw records with their provenance.

A source only reads bytes and says where they came from; decoding, validation and landing are
the engine's. That keeps file, Kafka, Pub/Sub and HTTP sources small and identical downstream.
`ack` is called once a batch is durably committed — a Kafka source commits offsets there.
Stream sources also get a `SourceContext` (through `attach`) to reach the committed bookmarks
(the lake's for ingest, the state store's for the speed layer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pharmaflow.ingest.reasons import ReasonCode

if TYPE_CHECKING:
    from pharmaflow.ingest.sinks.base import Sink


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
    decode_errors: dict[int, tuple[ReasonCode, str]] = field(default_factory=dict)  # (code, detail)
    offset_ranges: list[list[Any]] = field(default_factory=list)
    # When the batch's first record was produced (epoch seconds, the broker's timestamp):
    # where known, the speed layer's event-to-commit latency is measured from it.
    produced_at: float | None = None

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

    `refresh(partitions)` takes in what other writers committed (offsets, event ids, state),
    for a source that was just handed these (topic, partition)s, which another worker may have
    owned; `landed_offsets` then gives the highest committed offset per (topic, topic id,
    partition); `drain` lands and commits every batch handed over so far, for a source about
    to lose partitions (a rebalance) or to stop; `release(partitions)` says they are gone (the
    speed layer drops their state from memory); `idle()`, called while the source waits for
    records, lets the engine finish batches whose analysis is done (latency).
    """

    writer: str
    refresh: Callable[[list[tuple[str, int]]], None]
    landed_offsets: Callable[[], dict[tuple[str, str, int], int]]
    drain: Callable[[], None]
    release: Callable[[list[tuple[str, int]]], None] = lambda _partitions: None
    idle: Callable[[], None] = lambda: None


class Source:
    """A stream of raw batches. Implementations: `JsonlFileSource`, `CsvFileSource`,
    `PostgresSource`, `KafkaSource`, `PubSubSource`.

    Every source has the same four hooks, so the run loop calls them without probing: `attach`
    (a stream source gets the engine's `SourceContext` before the first batch), `batches`,
    `ack` (the batch is committed: move the bookmark), `dead_letter_sink` (where the source's
    rejected records go back to, if anywhere: a Kafka source's `<topic>.dlq`), `close`."""

    description: str = ""
    # a stream source that never reached its server by `--idle-exit` says why here: the worker
    # then exits non-zero (`run_stream_worker`) instead of reporting "nothing to do"
    unreachable: str | None = None

    def attach(self, ctx: SourceContext) -> None:
        """Before the first batch: what the engine lends a stream source (default: nothing)."""

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        raise NotImplementedError

    def ack(self, batch: RawBatch) -> None:
        """`batch` is durably committed (default: nothing to move)."""

    def dead_letter_sink(self) -> Sink | None:
        """The sink for this source's rejected records (default: none, quarantine only)."""
        return None

    def close(self) -> None:
        """After the last batch, also after a failure (default: nothing to release)."""
