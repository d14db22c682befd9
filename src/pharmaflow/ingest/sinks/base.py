"""The one interface every destination of a protected batch implements.

Why so small: a batch is committed at exactly one point (the lake's manifest), so a sink
only has to write its part of the batch somewhere nobody reads before that point (`write`,
returning the files it made so a crash's debris can be found and removed), make it durable
(`flush`: a producer waits for the broker's acknowledgement), and release what it holds
(`close`). Ordering — all writes, then flushes, then the commit, then the source's ack — is
the run loop's (`ingest/runloop.py`), tested there once for every sink.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pharmaflow.ingest.landing import Landing
    from pharmaflow.ingest.sources.base import RawBatch


class Sink(Protocol):
    name: str

    def write(self, batch: RawBatch, landing: Landing) -> list[Path]:
        """Write this sink's part of the batch; the files made (empty: none, e.g. a topic).
        Called again with a changed landing if the batch must be rewritten before commit."""
        ...

    def flush(self) -> None:
        """Make what `write` wrote durable; raise if it could not be."""
        ...

    def close(self) -> None: ...
