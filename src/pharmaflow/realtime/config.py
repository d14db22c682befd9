"""The speed layer's tunables, in one frozen value the store, the reader and the rules share.

Why a dataclass beside `Settings`: the store and its tests need these numbers without an
environment (a test drives a 60-second window and a 1-hour lateness), and worker processes get
them pickled. `RealtimeConfig.from_settings` reads the `realtime_*` settings where they exist
and keeps the defaults otherwise.

Dedupe memory must cover every event that can still change a window: an event older than the
ids kept in memory is never checked for being a duplicate, which is harmless only if it is
late anyway (late events touch no window). So the horizon actually kept is the larger of
`dedupe_ttl_hours` and the allowed lateness plus the widest window (`dedupe_horizon_s`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pharmaflow.errors import PharmaflowError

DEFAULT_WINDOWS_S = (60, 300)
DEFAULT_ALLOWED_LATENESS_S = 86_400
DEFAULT_RETENTION_S = 7 * 86_400
DEFAULT_DEDUPE_TTL_HOURS = 72
# Hours an order may wait in a stage before it counts as stuck. Delivered and cancelled are
# terminal: an order there waits for nothing.
DEFAULT_STUCK_HOURS: dict[str, float] = {
    "placed": 2.0,
    "insurance_validated": 24.0,
    "filled": 24.0,
    "shipped": 72.0,
}
WAITING_STAGES = tuple(DEFAULT_STUCK_HOURS)


@dataclass(frozen=True)
class RealtimeConfig:
    """Window widths (seconds, tumbling, aligned to the epoch), allowed lateness, retention of
    closed windows and untouched keyed state, stuck thresholds per order stage (hours) and the
    dedupe TTL (hours of event time)."""

    windows_s: tuple[int, ...] = DEFAULT_WINDOWS_S
    allowed_lateness_s: int = DEFAULT_ALLOWED_LATENESS_S
    retention_s: int = DEFAULT_RETENTION_S
    stuck_hours: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STUCK_HOURS))
    dedupe_ttl_hours: int = DEFAULT_DEDUPE_TTL_HOURS

    def __post_init__(self) -> None:
        raw = tuple(self.windows_s)
        widths = tuple(sorted({int(w) for w in raw}))
        if not widths or widths[0] <= 0:
            raise PharmaflowError("realtime windows must be positive numbers of seconds")
        if len(widths) != len(raw) or any(int(w) != w for w in raw):
            raise PharmaflowError("realtime windows must be whole seconds, each width once")
        object.__setattr__(self, "windows_s", widths)
        if self.allowed_lateness_s < 0:
            raise PharmaflowError("realtime allowed lateness must be 0 or more seconds")
        if self.retention_s < self.allowed_lateness_s + widths[-1]:
            raise PharmaflowError(
                "realtime retention must be at least the allowed lateness plus the widest "
                "window (a window is dropped only once it is final)"
            )
        if self.dedupe_ttl_hours <= 0:
            raise PharmaflowError("realtime dedupe TTL must be a positive number of hours")
        unknown = sorted(set(self.stuck_hours) - set(WAITING_STAGES))
        if unknown:
            raise PharmaflowError(
                f"unknown order stage in the stuck thresholds: {', '.join(unknown)} "
                f"(stages: {', '.join(WAITING_STAGES)})"
            )
        if any(not (h > 0) for h in self.stuck_hours.values()):
            raise PharmaflowError("stuck thresholds must be positive numbers of hours")

    @property
    def narrowest_s(self) -> int:
        return self.windows_s[0]

    @property
    def lateness_us(self) -> int:
        return int(self.allowed_lateness_s) * 1_000_000

    @property
    def retention_us(self) -> int:
        return int(self.retention_s) * 1_000_000

    @property
    def dedupe_horizon_s(self) -> int:
        """Seconds of event time behind the clock whose ids stay in memory (see module doc)."""
        return max(self.dedupe_ttl_hours * 3600, self.allowed_lateness_s + self.windows_s[-1])

    @property
    def dedupe_horizon_hours(self) -> int:
        return math.ceil(self.dedupe_horizon_s / 3600)

    def stuck_after_s(self, stage: str) -> float | None:
        """Seconds an order may wait in `stage` before it is stuck; None: never (terminal, or
        no threshold configured)."""
        hours = self.stuck_hours.get(stage)
        return None if hours is None else hours * 3600.0

    @classmethod
    def from_settings(cls, settings: Any) -> RealtimeConfig:
        """From `Settings` (`realtime_windows`, `realtime_allowed_lateness_s`,
        `realtime_retention_s`, `realtime_stuck_hours`, `dedupe_ttl_hours`), each optional."""
        stuck = getattr(settings, "realtime_stuck_hours", None)
        return cls(
            windows_s=tuple(getattr(settings, "realtime_windows", None) or DEFAULT_WINDOWS_S),
            allowed_lateness_s=int(
                getattr(settings, "realtime_allowed_lateness_s", DEFAULT_ALLOWED_LATENESS_S)
            ),
            retention_s=int(getattr(settings, "realtime_retention_s", DEFAULT_RETENTION_S)),
            stuck_hours={**DEFAULT_STUCK_HOURS, **(dict(stuck) if stuck else {})},
            dedupe_ttl_hours=int(getattr(settings, "dedupe_ttl_hours", DEFAULT_DEDUPE_TTL_HOURS)),
        )
