"""Event time: tumbling windows, the per-partition clock, finality and lateness.

Windows are tumbling, aligned to the epoch (a 60 s window starts on a whole minute UTC), and
hold events by EVENT time: a sensor reading taken at 10:00:30 counts in the 10:00 minute
however late it arrives, as long as that window is still open.

The clock. Each partition (topic, partition) has its own clock, because partitions are read
at their own pace (two workers, a lagging consumer). The watermark is the latest event time
the partition has delivered; the clock is the watermark carried forward by wall-clock time
while the partition is quiet: `clock = last clock + (now - wall time it was last read)`. Two
choices beyond the design's formula, both so that a window once final stays final:

- The clock never moves back. A watermark advance sets `clock = max(carried clock, watermark)`;
  the literal `watermark + (now - time of the advance)` would drop back when events resume
  slower than wall time, reopening windows readers were told were final.
- A restart does not count its downtime as quiet time. After `load` the wall reference is
  unset, and the first `apply`/`tick` takes its `now` as the reference: an outage longer than
  the allowed lateness would otherwise make the whole backlog late, to be left to the batch
  layer, although nothing in it was late when it was produced. Windows close and stuck orders
  are flagged later by the length of the outage instead.

Finality. A window of partition p is final once `clock(p) >= window end + allowed lateness`.
An event is LATE when the window of the NARROWEST width holding it is final when it arrives:
it is then added to no window of any width (so five 1-minute windows always sum to their
5-minute window) and is counted per event type with how late it was (`clock - event time`).
The clock an event is judged by is the clock before it: the partition's clock at the start of
the batch and the latest event time of the same partition earlier in the batch (a running
maximum in offset order). So how a stream is cut into batches never changes which events are
late, which is what makes a restart continue exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

US = 1_000_000
HOUR_US = 3_600 * US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> datetime:
    """A timezone-aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(us))


def window_starts(times_us: np.ndarray, width_s: int) -> np.ndarray:
    """Start (epoch seconds) of the window of width `width_s` holding each time."""
    width_us = int(width_s) * US
    return (np.floor_divide(times_us, width_us) * int(width_s)).astype(np.int64)


def window_start(time_us: int, width_s: int) -> int:
    return (int(time_us) // (int(width_s) * US)) * int(width_s)


def final_after_us(start_s: int, width_s: int, lateness_us: int) -> int:
    """The clock at and after which the window is final."""
    return (int(start_s) + int(width_s)) * US + int(lateness_us)


def is_final(start_s: int, width_s: int, clock_us: int | None, lateness_us: int) -> bool:
    return clock_us is not None and clock_us >= final_after_us(start_s, width_s, lateness_us)


@dataclass(frozen=True)
class PartitionClock:
    """One partition's sense of time. `wall_us`: the wall time `clock_us` was read at, None
    when not since this process loaded the partition (a restart's downtime is not counted)."""

    watermark_us: int | None = None
    clock_us: int | None = None
    wall_us: int | None = None

    def at(self, now_us: int) -> int | None:
        """The clock at wall time `now_us` (carried forward, never back)."""
        if self.clock_us is None:
            return None
        if self.wall_us is None:
            return self.clock_us
        return self.clock_us + max(0, now_us - self.wall_us)

    def advance(self, now_us: int, latest_event_us: int | None = None) -> PartitionClock:
        """The clock after a batch whose latest event time is `latest_event_us` (None: no
        events, only wall time passed), read at `now_us`."""
        carried = self.at(now_us)
        clock = carried
        watermark = self.watermark_us
        if latest_event_us is not None:
            clock = latest_event_us if carried is None else max(carried, latest_event_us)
            watermark = latest_event_us if watermark is None else max(watermark, latest_event_us)
        wall = now_us if self.wall_us is None else max(self.wall_us, now_us)
        return replace(self, watermark_us=watermark, clock_us=clock, wall_us=wall)


@dataclass(frozen=True)
class Lateness:
    """Per event (in the order given): late or not, how late (µs, 0 when on time); and the
    clock after all of them."""

    late: np.ndarray
    late_by_us: np.ndarray
    clock_us: int | None


def classify(
    times_us: np.ndarray, start_clock_us: int | None, narrowest_s: int, lateness_us: int
) -> Lateness:
    """Which of one partition's events (in offset order) are late, judged by the clock before
    each: `start_clock_us` (the partition's clock when the batch began) and the running
    maximum of the event times before it."""
    times_us = np.asarray(times_us, dtype=np.int64)
    n = len(times_us)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Lateness(empty.astype(bool), empty, start_clock_us)
    before = np.empty(n, dtype=np.int64)
    before[0] = np.iinfo(np.int64).min if start_clock_us is None else start_clock_us
    if n > 1:
        np.maximum.accumulate(times_us[:-1], out=before[1:])
        if start_clock_us is not None:
            np.maximum(before[1:], start_clock_us, out=before[1:])
    final_at = (window_starts(times_us, narrowest_s) + narrowest_s) * US + int(lateness_us)
    late = before >= final_at  # a partition's very first event: before = min, never late
    late_by = np.where(late, before - times_us, 0).astype(np.int64)
    latest = int(times_us.max())
    clock = latest if start_clock_us is None else max(start_clock_us, latest)
    return Lateness(late, late_by, clock)


class OpenWindows:
    """The (width, start) slots of one partition that hold event-time values and are not final
    yet. At most lateness / width + 1 slots per width, so counting them as they close gives the
    "windows closed" figure without reading the database, in bounded memory."""

    def __init__(self) -> None:
        self._slots: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._slots.values())

    def add(self, width_s: int, starts: Iterable[int]) -> None:
        self._slots.setdefault(int(width_s), set()).update(int(s) for s in starts)

    def close(self, clock_us: int | None, lateness_us: int) -> int:
        """Forget the slots final at `clock_us`; how many there were."""
        if clock_us is None:
            return 0
        closed = 0
        for width, starts in self._slots.items():
            # final when (start + width) * US + lateness <= clock
            last_final = (clock_us - lateness_us) // US - width
            done = [s for s in starts if s <= last_final]
            closed += len(done)
            starts.difference_update(done)
        return closed
