"""build_age and failed_tests: judged from the build log (warehouse/build_log.py).

Every `pharmaflow build` appends one record, successful or not, to `<warehouse
dir>/builds.jsonl`, so the log — not the snapshot, which only good builds publish — tells how
old the last success is and what the newest build's tests said. The log is a file anyone with
access to the data dir can write: a record's fields are checked here before they are trusted
(a count that is no count, names that are no list, a time without a zone), and whatever is
shown goes through `one_line`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pharmaflow.config import Settings
from pharmaflow.orchestrate.check import CheckResult
from pharmaflow.orchestrate.checks.judge import age, judged, one_line, unknown, when
from pharmaflow.warehouse import build_log

SUBJECT = "warehouse"
NAMES_SHOWN = 5
NAME_LIMIT = 120


def build_age(settings: Settings, now: datetime) -> list[CheckResult]:
    """Hours since the newest successful build finished."""
    rule, unit = "build_age", "hours"
    limit = settings.check_build_max_age_hours
    records = build_log.read(settings.warehouse_dir)
    if not records:
        return [unknown(rule, SUBJECT, "no build logged yet: run `pharmaflow build`", limit, unit)]
    newest = records[-1]
    success = next((r for r in reversed(records) if r.success), None)
    if success is None:
        return [
            CheckResult(
                rule, SUBJECT, "breach", None, limit, unit,
                one_line(
                    f"no successful build among the {len(records):,} logged; the newest "
                    f"({newest.outcome}) finished {when(newest.finished_at)}"
                ),
            )
        ]  # fmt: skip
    detail = f"last successful build finished {when(success.finished_at)}"
    if newest is not success:
        detail += f"; the newest build since ended {newest.outcome!s}"
    return [judged(rule, SUBJECT, age(now, success.finished_at, 3600.0), limit, unit, detail)]


def failed_tests(settings: Settings, now: datetime) -> list[CheckResult]:
    """The dbt tests that failed in the newest build (whatever its outcome)."""
    rule, unit = "failed_tests", "tests"
    limit = float(settings.check_failed_tests_max)
    newest = build_log.last(settings.warehouse_dir)
    if newest is None:
        return [unknown(rule, SUBJECT, "no build logged yet: run `pharmaflow build`", limit, unit)]
    names = _names(newest.failed_tests)
    failed = _count(newest.tests_failed)
    if failed is None:
        failed = len(names) if names else None
    when_built = f"the newest build finished {when(newest.finished_at)}"
    if newest.outcome == "error" and not failed:
        reason = one_line(newest.error or "no error recorded", 160)
        return [
            unknown(
                rule, SUBJECT, f"{when_built} in error, before its tests: {reason}", limit, unit
            )
        ]
    if failed is None:
        return [
            unknown(
                rule, SUBJECT, f"{when_built}; its failed-test count is unreadable", limit, unit
            )
        ]
    failed = max(failed, len(names))
    detail = f"{when_built}: {failed:,} test(s) failed"
    if names:
        shown = ", ".join(names[:NAMES_SHOWN])
        more = len(names) - NAMES_SHOWN
        detail += f": {shown}" + (f" and {more} more" if more > 0 else "")
    passed = _count(newest.tests_passed)
    if passed is not None:
        detail += f"; {passed:,} passed"
    return [judged(rule, SUBJECT, failed, limit, unit, detail)]


def _count(value: Any) -> int | None:
    """A count from the log, or None for anything that is not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _names(value: Any) -> list[str]:
    """The failed tests' names, each on one short line; nothing for a value that is no list."""
    if not isinstance(value, list):
        return []
    return sorted({one_line(v, NAME_LIMIT) for v in value if isinstance(v, str) and v.strip()})
