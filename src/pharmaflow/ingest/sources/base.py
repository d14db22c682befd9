"""What every source hands the engine: batches of raw records with their provenance.

A source only reads bytes and says where they came from; decoding, validation and landing are
the engine's. That keeps file, Kafka, Pub/Sub and HTTP sources small and identical downstream.
`ack` is called once a batch is durably committed — a Kafka source commits offsets there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

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

    @property
    def raw_is_json(self) -> bool:
        """Records are JSON events, which bronze may store as they arrived."""
        return self.format == "json"

    @property
    def payload(self) -> bytes | list[bytes]:
        return self.blob if self.blob is not None else (self.records or [])

    def kept_offsets(self, keep: np.ndarray | None) -> np.ndarray:
        """Offsets of the records analysis kept (blank lines dropped)."""
        if self.offsets is not None:
            return self.offsets if keep is None else self.offsets[keep]
        lines = np.arange(self.first_offset, self.first_offset + len(keep), dtype=np.int64)
        return lines[keep]


class Source(Protocol):
    """A stream of raw batches. Implementations: `JsonlFileSource`, `CsvFileSource`."""

    description: str

    def batches(self, batch_size: int) -> Iterator[RawBatch]: ...

    def ack(self, batch: RawBatch) -> None: ...
