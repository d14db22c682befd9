"""What every source hands the engine: batches of raw records with their provenance.

A source only reads bytes and says where they came from; decoding, validation and landing are
the engine's. That keeps file, Kafka, Pub/Sub and HTTP sources small and identical downstream.
`ack` is called once a batch is durably committed — a Kafka source commits offsets there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pharmaflow.ingest.decode import decode_json


@dataclass
class RawBatch:
    batch_id: str
    records: list[bytes]
    offsets: np.ndarray
    source: str
    source_uri: str
    partitions: np.ndarray | None = None
    decode: Callable[[list[bytes]], list[Any]] = field(default=decode_json)

    def __len__(self) -> int:
        return len(self.records)


class Source(Protocol):
    """A stream of raw batches. Implementations: `JsonlFileSource`, `CsvFileSource`."""

    description: str
    blank_records: int

    def batches(self, batch_size: int) -> Iterator[RawBatch]: ...

    def ack(self, batch: RawBatch) -> None: ...
