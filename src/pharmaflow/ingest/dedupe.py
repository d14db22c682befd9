"""Deduplicate by `event_id`, within a batch and against everything already landed.

Producers retry and brokers redeliver, so the same event arriving twice is normal. The first
arrival lands; later ones are counted as duplicates. Seen ids are kept as Arrow string chunks
and matched with Arrow's hash kernel, so a batch is checked in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class DedupeIndex:
    """The set of event ids already landed (loaded from the lake at start, grown per batch)."""

    def __init__(self, seen: Iterable[pa.Array] = ()) -> None:
        chunks = [c.cast(pa.string()) for c in seen if len(c)]
        self._seen = pa.chunked_array(chunks, type=pa.string())
        self._combined: pa.Array | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def _value_set(self) -> pa.Array:
        if self._combined is None:
            self._combined = self._seen.combine_chunks()
        return self._combined

    def first_arrivals(self, ids: pa.Array) -> np.ndarray:
        """True for each id that is neither already seen nor an earlier id in this batch."""
        if len(ids) == 0:
            return np.zeros(0, dtype=bool)
        encoded = ids.dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        first = np.zeros(len(ids), dtype=bool)
        first[np.unique(codes, return_index=True)[1]] = True
        if len(self._seen):
            known = pc.is_in(encoded.dictionary, value_set=self._value_set())
            first &= ~known.to_numpy(zero_copy_only=False)[codes]
        return first

    def add(self, ids: pa.Array) -> None:
        """Remember ids that have now landed (call only after the batch is committed)."""
        if len(ids):
            self._seen = pa.chunked_array([*self._seen.chunks, ids.cast(pa.string())])
            self._combined = None
