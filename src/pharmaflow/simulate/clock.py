"""Time helpers on integer epoch milliseconds, the simulator's single time representation.

Integers keep the hot paths in numpy and make ordering exact; local clocks matter only for
business hours (sales, shift patterns) and for the offset some producers write timestamps
in, so a fixed standard-time offset per state is enough.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from pharmaflow.simulate.config import DAY_MS

# Standard-time UTC offsets (minutes) of the states the reference facilities sit in.
STATE_UTC_OFFSET_MIN: dict[str, int] = {
    **dict.fromkeys(("MA", "NY", "PA", "NJ", "CT", "GA", "FL", "NC", "MI", "OH", "IN"), -300),
    **dict.fromkeys(("TN", "IL", "MN", "MO", "TX"), -360),
    **dict.fromkeys(("AZ", "CO", "UT"), -420),
    **dict.fromkeys(("WA", "OR", "CA", "NV"), -480),
}


def utc_offset_minutes(state: str) -> int:
    """Offset of a state's local clock; unknown states count as US Eastern."""
    return STATE_UTC_OFFSET_MIN.get(state, -300)


def day_floor(ms: int) -> int:
    """UTC midnight at or before `ms`."""
    return ms - ms % DAY_MS


def weekday(ms: int) -> int:
    """Monday = 0 ... Sunday = 6 (epoch day 0, 1970-01-01, was a Thursday)."""
    return (ms // DAY_MS + 3) % 7


def yymmdd(ms: int) -> str:
    """Compact UTC date used inside human-readable ids."""
    return _yymmdd_of_day(ms // DAY_MS)


@cache
def _yymmdd_of_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%y%m%d")


@cache
def iso_utc(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, for timestamps inside payloads (few distinct values)."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
