"""A short-lived answer cache shared by the threads of one serving process.

Keys name the data an answer came from: the warehouse snapshot id (immutable, so an answer
on it stays true; the TTL only bounds memory and lets a pruned snapshot's answers go) or the
speed layer (changing every second, so its answers live `ttl` seconds at most). A dashboard
refreshing every few seconds and fifty API clients asking the same KPI then cost one query.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class TTLCache:
    """Least-recently-used, at most `max_entries`, each entry valid `ttl` seconds (0: off)."""

    def __init__(self, ttl: float, max_entries: int = 2048) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value of `key`, or `compute()` stored under it. Two threads missing the
        same key at once may both compute (answers are equal: no lock held while querying)."""
        if self.ttl <= 0:
            return compute()
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            self.misses += 1
        value = compute()
        with self._lock:
            self._entries[key] = (now + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
