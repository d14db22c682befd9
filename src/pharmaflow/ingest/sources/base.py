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
    batch_id: str
    records: list[bytes]
    offsets: np.ndarray
    source: str
    source_uri: str
    partitions: np.ndarray | None = None
    format: str = "json"  # how records decode: "json" (one event each) or "csv" (with columns)
    columns: tuple[str, ...] = ()  # CSV header

    @property
    def raw_is_json(self) -> bool:
        """Records are JSON events, which bronze may store as they arrived."""
        return self.format == "json"

    def __len__(self) -> int:
        return len(self.records)


class Source(Protocol):
    """A stream of raw batches. Implementations: `JsonlFileSource`, `CsvFileSource`."""

    description: str
    blank_records: int

    def batches(self, batch_size: int) -> Iterator[RawBatch]: ...

    def ack(self, batch: RawBatch) -> None: ...
