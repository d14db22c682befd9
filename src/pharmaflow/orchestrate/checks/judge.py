"""What every rule shares: value against threshold, ages, and details safe to print.

Kept free of I/O so the threshold logic is tested on its own (tests/unit/orchestrate). One
convention for every rule: a value strictly above its threshold is a breach, a value that could
not be measured (None) is unknown — never a breach, so a missing lake or an unconfigured
broker does not page anyone, but is visible.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pharmaflow.orchestrate.check import CheckResult, Status

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
DETAIL_LIMIT = 300


def status_of(value: float | None, threshold: float | None) -> Status:
    """breach when `value` > `threshold`, ok when not, unknown without a value."""
    if value is None:
        return "unknown"
    if threshold is None:
        return "ok"
    return "breach" if value > threshold else "ok"


def judged(
    check: str,
    subject: str,
    value: float | None,
    threshold: float | None,
    unit: str,
    detail: str = "",
) -> CheckResult:
    """One result, its status decided by `status_of`."""
    return CheckResult(
        check=check,
        subject=subject,
        status=status_of(value, threshold),
        value=None if value is None else round(float(value), 4),
        threshold=threshold,
        unit=unit,
        detail=one_line(detail),
    )


def unknown(
    check: str, subject: str, detail: str, threshold: float | None = None, unit: str = ""
) -> CheckResult:
    """A rule that could not judge its subject, and why."""
    return CheckResult(check, subject, "unknown", None, threshold, unit, one_line(detail))


def utc(moment: datetime) -> datetime:
    """Aware UTC: the lake, DuckDB and the build log write naive UTC timestamps."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def age(now: datetime, then: datetime, unit_seconds: float) -> float:
    """How long before `now` `then` was, in units of `unit_seconds`; 0 for a moment after
    `now` (a clock ahead of ours is not staleness)."""
    seconds = (utc(now) - utc(then)).total_seconds()
    return max(0.0, seconds) / unit_seconds


def when(moment: datetime) -> str:
    """A moment as people read it in a detail: minutes, UTC."""
    return f"{utc(moment):%Y-%m-%d %H:%M} UTC"


def one_line(text: object, limit: int = DETAIL_LIMIT) -> str:
    """`text` on one line (control characters and line breaks become spaces) of at most
    `limit` characters: details come from files anyone could have written (the build log, an
    error message) and go to terminals, JSON and Prometheus labels."""
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", str(text))).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def count_list(items: dict[str, int], limit: int = 5) -> str:
    """`a 3, b 2, …` for the largest counts first (ties by name), at most `limit` shown."""
    ranked = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{name} {n:,}" for name, n in ranked[:limit])
    more = len(ranked) - limit
    return shown + (f" and {more} more" if more > 0 else "")
