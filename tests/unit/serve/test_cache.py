"""The short-lived answer cache: reuse within the TTL, recompute after, bounded size."""

from __future__ import annotations

import time

from pharmaflow.serve.cache import TTLCache


def test_reuses_within_ttl_and_recomputes_after() -> None:
    cache = TTLCache(ttl=0.2)
    calls = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_compute("k", compute) == 1
    assert cache.get_or_compute("k", compute) == 1
    time.sleep(0.25)
    assert cache.get_or_compute("k", compute) == 2
    assert (cache.hits, cache.misses) == (1, 2)


def test_zero_ttl_never_caches_and_size_is_bounded() -> None:
    off = TTLCache(ttl=0)
    assert [off.get_or_compute("k", lambda n=n: n) for n in range(3)] == [0, 1, 2]
    small = TTLCache(ttl=60, max_entries=3)
    for n in range(10):
        small.get_or_compute(n, lambda n=n: n)
    assert len(small._entries) == 3
    assert small.get_or_compute(9, lambda: -1) == 9  # the newest kept
    assert small.get_or_compute(0, lambda: -1) == -1  # the oldest evicted
