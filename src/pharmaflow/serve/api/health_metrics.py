"""Build and health metrics of the platform, exported by the API process at scrape time.

Why the API: builds and `pharmaflow check` are short-lived commands (nothing would be there to
scrape between them), while the API runs all the time over the same data dir. So its /metrics
reads what those commands leave behind:

* the build log (`warehouse/build_log.py`, `<warehouse dir>/builds.jsonl`):
  `pharmaflow_build_runs_total{outcome}` (counted over the log, which keeps the newest
  records: a trim looks like a counter reset, which `rate`/`increase` handle),
  `pharmaflow_build_duration_seconds` and `pharmaflow_build_tests_failed` of the newest build,
  `pharmaflow_build_last_timestamp_seconds` and `pharmaflow_build_last_success_timestamp_seconds`;
* the health checks (`orchestrate/check.py`, `run_checks(settings)`):
  `pharmaflow_check_value{check,subject}`, `pharmaflow_check_threshold{check,subject}`,
  `pharmaflow_check_breached{check,subject}` (0/1), with `pharmaflow_check_run_errors_total`
  and `pharmaflow_check_last_run_timestamp_seconds` saying whether the checks themselves ran.

Both are computed when Prometheus scrapes, never in a request path. The build log is re-read
only when the file changed. The checks can be slow (they read the lake, the warehouse and the
broker) and can fail: they run in a thread of their own at most every `check_ttl` seconds and
a scrape exports the latest result while a refresh runs — only until the first result does a
scrape wait for one, `check_wait` seconds at most — so a slow broker never makes a scrape time
out; an exception is logged and counted, the last good result stays, /metrics always answers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pharmaflow.warehouse import build_log

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.orchestrate.check import CheckReport

log = logging.getLogger(__name__)

BUILD_OUTCOMES = ("success", "tests_failed", "error")
CHECK_TTL_S = 30.0
CHECK_WAIT_S = 5.0

RunChecks = Callable[["Settings"], "CheckReport"]


def _run_checks(settings: Settings) -> CheckReport:
    from pharmaflow.orchestrate.check import run_checks  # imported late: the API starts fast

    return run_checks(settings)


@dataclass(frozen=True)
class _BuildFigures:
    runs: Counter[str]
    last_seconds: float | None
    last_tests_failed: int | None
    last_finished: float | None
    last_success: float | None


def _figures(records: list[build_log.BuildRecord]) -> _BuildFigures:
    runs: Counter[str] = Counter(r.outcome for r in records)
    newest = records[-1] if records else None
    success = next((r for r in reversed(records) if r.success), None)
    return _BuildFigures(
        runs=runs,
        last_seconds=newest.seconds if newest else None,
        last_tests_failed=newest.tests_failed if newest else None,
        last_finished=newest.finished_at.timestamp() if newest else None,
        last_success=success.finished_at.timestamp() if success else None,
    )


class _BuildLog:
    """The build log's figures, re-read only when the file changed (size or mtime)."""

    def __init__(self, warehouse_dir: Path) -> None:
        self.warehouse_dir = warehouse_dir
        self._stamp: tuple[int, int] | None = None
        self._figures = _figures([])
        self._lock = threading.Lock()

    def figures(self) -> _BuildFigures:
        try:
            st = build_log.path(self.warehouse_dir).stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None  # no build yet (or the log is unreadable: no figures either way)
        with self._lock:
            if stamp != self._stamp:
                records = build_log.read(self.warehouse_dir) if stamp is not None else []
                self._figures, self._stamp = _figures(records), stamp
            return self._figures


class _Checks:
    """`run_checks` at most every `ttl` seconds, in a background thread, last result kept
    (a scrape waits up to `wait` seconds only while there is none yet)."""

    def __init__(self, settings: Settings, run: RunChecks, ttl: float, wait: float) -> None:
        self.settings = settings
        self.run = run
        self.ttl = ttl
        self.wait = wait
        self.report: CheckReport | None = None
        self.last_ok: float | None = None  # wall clock of the last run that returned
        self.errors = 0
        self._started_at: float | None = None  # monotonic, of the newest run started
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def current(self) -> CheckReport | None:
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            due = self._started_at is None or time.monotonic() - self._started_at >= self.ttl
            if due and not running:
                self._started_at = time.monotonic()
                self._thread = threading.Thread(
                    target=self._refresh, name="pharmaflow-check-metrics", daemon=True
                )
                self._thread.start()
            thread = self._thread
        if thread is not None and self.report is None:
            thread.join(self.wait)  # nothing to show yet: worth a short wait
        return self.report

    def _refresh(self) -> None:
        try:
            report = self.run(self.settings)
        except Exception as exc:  # a failing check must never break /metrics
            self.errors += 1
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            log.warning("health metrics: pharmaflow check failed: %s %s", type(exc).__name__, first)
            return
        self.report, self.last_ok = report, time.time()


class HealthCollector(Collector):
    """`pharmaflow_build_*` and `pharmaflow_check_*` of one data dir (see the module's doc)."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_checks: RunChecks | None = None,
        check_ttl: float = CHECK_TTL_S,
        check_wait: float = CHECK_WAIT_S,
    ) -> None:
        """`run_checks`: `orchestrate.check.run_checks` unless given (tests)."""
        self._builds = _BuildLog(settings.warehouse_dir)
        self._checks = _Checks(settings, run_checks or _run_checks, check_ttl, check_wait)

    def describe(self) -> Iterator[Metric]:
        """The families without samples: registering must not run the checks."""
        yield from self._build_families()
        yield from self._check_families()

    def collect(self) -> Iterator[Metric]:
        yield from self._collect_builds()
        yield from self._collect_checks()

    # ---- builds ---------------------------------------------------------------------------

    @staticmethod
    def _build_families() -> tuple[Metric, ...]:
        return (
            CounterMetricFamily(
                "pharmaflow_build_runs",
                "Warehouse builds in the build log, by outcome (success, tests_failed, error)",
                labels=["outcome"],
            ),
            GaugeMetricFamily(
                "pharmaflow_build_duration_seconds", "How long the newest build took", labels=[]
            ),
            GaugeMetricFamily(
                "pharmaflow_build_tests_failed",
                "dbt tests the newest build failed (0 when it passed or errored before testing)",
                labels=[],
            ),
            GaugeMetricFamily(
                "pharmaflow_build_last_timestamp_seconds",
                "When the newest build finished, whatever its outcome (Unix time)",
                labels=[],
            ),
            GaugeMetricFamily(
                "pharmaflow_build_last_success_timestamp_seconds",
                "When the newest successful build finished (Unix time)",
                labels=[],
            ),
        )

    def _collect_builds(self) -> Iterator[Metric]:
        runs, duration, tests_failed, last, last_success = self._build_families()
        try:
            figures = self._builds.figures()
        except Exception as exc:  # an unreadable log must not break /metrics either
            log.warning("health metrics: build log unreadable: %s", exc)
            figures = _figures([])
        for outcome in sorted({*BUILD_OUTCOMES, *figures.runs}):
            runs.add_metric([outcome], figures.runs.get(outcome, 0))
        for family, value in (
            (duration, figures.last_seconds),
            (tests_failed, figures.last_tests_failed),
            (last, figures.last_finished),
            (last_success, figures.last_success),
        ):
            if value is not None:
                family.add_metric([], value)
        yield from (runs, duration, tests_failed, last, last_success)

    # ---- checks ---------------------------------------------------------------------------

    @staticmethod
    def _check_families() -> tuple[Metric, ...]:
        labels = ["check", "subject"]
        return (
            GaugeMetricFamily(
                "pharmaflow_check_value",
                "What a `pharmaflow check` rule measured (its unit: `pharmaflow check --json`)",
                labels=labels,
            ),
            GaugeMetricFamily(
                "pharmaflow_check_threshold",
                "The threshold a `pharmaflow check` rule compares its value with",
                labels=labels,
            ),
            GaugeMetricFamily(
                "pharmaflow_check_breached",
                "1 when a `pharmaflow check` rule is breached, else 0 (ok or unknown)",
                labels=labels,
            ),
            CounterMetricFamily(
                "pharmaflow_check_run_errors",
                "Runs of `pharmaflow check` by this process that raised (since it started)",
                labels=[],
            ),
            GaugeMetricFamily(
                "pharmaflow_check_last_run_timestamp_seconds",
                "When `pharmaflow check` last ran to the end in this process (Unix time)",
                labels=[],
            ),
        )

    def _collect_checks(self) -> Iterator[Metric]:
        value, threshold, breached, errors, last_run = self._check_families()
        report = self._checks.current()
        if report is not None:
            seen: set[tuple[str, str]] = set()
            for result in report.results:
                key = (result.check, result.subject)
                if key in seen:  # one sample per series (a duplicate would fail the scrape)
                    continue
                seen.add(key)
                for family, number in (
                    (value, _finite(result.value)),
                    (threshold, _finite(result.threshold)),
                ):
                    if number is not None:  # unknown (None, NaN): no sample, not a made-up 0
                        family.add_metric(list(key), number)
                breached.add_metric(list(key), 1.0 if result.status == "breach" else 0.0)
        errors.add_metric([], self._checks.errors)
        if self._checks.last_ok is not None:
            last_run.add_metric([], self._checks.last_ok)
        yield from (value, threshold, breached, errors, last_run)


def _finite(x: object) -> float | None:
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None
