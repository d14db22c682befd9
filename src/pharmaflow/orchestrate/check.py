"""`pharmaflow check`: the platform's SLA and health rules, in one place any scheduler can run.

`run_checks(settings, now=None) -> CheckReport` judges every rule (docs/checks.md) and returns
one `CheckResult` per rule and subject. The same function serves cron, Kubernetes CronJobs and
Airflow (through the CLI or `orchestrate.tasks.check_slas`) and the API's /metrics, so it only
reads, and reads cheaply: lake manifests rather than Parquet, the published warehouse snapshot
rather than the warehouse file (a build holding the write lock never blocks it, and it never
blocks a build), offsets from the broker with a short timeout.

A rule that cannot judge (no lake yet, no Kafka configured, the warehouse unreachable) says
`unknown` with the reason; unknown is not a breach. A rule that fails unexpectedly is logged
with its traceback and reported unknown too, so one broken source never hides the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.orchestrate.checks import RULES

Status = Literal["ok", "breach", "unknown"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """One rule on one subject: `check` is the rule (freshness_source, freshness_gold,
    consumer_lag, dead_letter_rate, delivery_sla, build_age, failed_tests), `subject` what it
    judged (an event type, a gold table, a consumer group, the warehouse)."""

    check: str
    subject: str
    status: Status
    value: float | None
    threshold: float | None
    unit: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
            "detail": self.detail,
        }


@dataclass
class CheckReport:
    checked_at: datetime
    results: list[CheckResult] = field(default_factory=list)

    @property
    def breached(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "breach"]

    @property
    def ok(self) -> bool:
        return not self.breached

    def to_dict(self) -> dict[str, Any]:
        """What `pharmaflow check --json` prints: one object a script can test."""
        return {
            "checked_at": self.checked_at.isoformat(),
            "ok": self.ok,
            "breached": len(self.breached),
            "results": [r.to_dict() for r in self.results],
        }


class UnknownRule(PharmaflowError):
    """`only` named a rule that does not exist."""


Rule = Callable[[Settings, datetime], list[CheckResult]]


def _rules() -> dict[str, Rule]:
    """Rule name -> its function. Imported here, not at the top: each rule module imports
    CheckResult from this one, and the CLI must load none of them for `--help`."""
    from pharmaflow.orchestrate.checks import builds, gold, kafka, lake

    return {
        "freshness_source": lake.freshness_source,
        "freshness_gold": gold.freshness_gold,
        "consumer_lag": kafka.consumer_lag,
        "dead_letter_rate": lake.dead_letter_rate,
        "delivery_sla": gold.delivery_sla,
        "build_age": builds.build_age,
        "failed_tests": builds.failed_tests,
    }


def run_checks(
    settings: Settings, now: datetime | None = None, only: Collection[str] | None = None
) -> CheckReport:
    """Judge every rule (or those in `only`) as of `now` (default: the wall clock, UTC; a
    naive `now` is taken as UTC). Results come in `RULES` order, subjects sorted within."""
    from pharmaflow.orchestrate.checks.judge import unknown, utc

    checked_at = utc(now) if now is not None else datetime.now(UTC)
    wanted = list(RULES) if only is None else [r for r in RULES if r in set(only)]
    strangers = sorted(set(only or ()) - set(RULES))
    if strangers:
        raise UnknownRule(f"unknown check {strangers[0]!r}: pick from {', '.join(RULES)}")
    rules = _rules()
    report = CheckReport(checked_at)
    for name in wanted:
        try:
            results = rules[name](settings, checked_at)
        except Exception as exc:  # one broken source must not hide the other rules
            log.exception("check %s could not run", name)
            reason = str(exc).splitlines()[0] if str(exc) else ""
            results = [unknown(name, "all", f"could not run: {type(exc).__name__}: {reason}")]
        report.results.extend(sorted(results, key=lambda r: r.subject))
    return report
