"""The notifier: a background thread that drains the outbox to the routes.

Why a thread and an outbox rather than posting from the evaluator: a webhook that hangs or is
down must never slow or crash the stream. The evaluator only writes outbox rows (in the same
transaction as the incident's transition); this thread sends them, retries failures with
exponential backoff and jitter, and records every attempt in the incident's history.

Guarantees:
* at least once: a row is marked sent only after the receiver answered 2xx; rows a crashed
  process left pending are sent by the next notifier on the same store (nothing to do at
  start: pending rows are simply due). A crash between the POST and the mark resends that
  one notification (webhook receivers dedupe on `notification_id`);
* per route, in order: a route sends its rows oldest first and stops at the first failure,
  so a RESOLVED never overtakes its FIRED;
* bounded: after `delivery.give_up_after` (since queued) or `delivery.max_attempts`, or at
  once on a permanent error (4xx other than 408/425/429), a row is GIVEN UP: recorded and
  listed by `pharmaflow alerts list`, never retried;
* two notifiers on one store (an operator starting a second engine) do not double-send: a
  row is claimed with a lease before its POST.

The network is touched only outside database transactions, and the write lock is taken only
when a row is due, so an idle notifier costs one indexed read per poll.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from pharmaflow.realtime.alerts.incidents import create_alert_schema, epoch
from pharmaflow.realtime.alerts.routes import SendResult, send
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

_BATCH = 500  # pending rows read per drain
_PER_ROUTE = 50  # rows one route sends per drain
_LEASE_SLACK_S = 5.0


@dataclass
class NotifierStats:
    """Counters since start, for metrics (`pharmaflow_alerts_notifications_total{route,
    outcome}`, realtime/metrics.py)."""

    sent: int = 0
    failed: int = 0  # failed attempts (each is retried or given up)
    given_up: int = 0
    errors: int = 0  # drains that failed (the store unreachable, say)
    by_route: dict[str, int] = field(default_factory=dict)  # sent per route
    failed_by_route: dict[str, int] = field(default_factory=dict)
    given_up_by_route: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Row:
    id: int
    alert_id: int
    route: str
    event: str
    payload: str
    attempts: int
    created_at: float
    next_attempt_at: float
    lease_until: float | None


def _now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """Drains `rt_outbox`. `start()`/`stop(timeout)` run it in a daemon thread;
    `drain_once(now)` does one pass in the caller's thread (tests, or an engine that prefers
    to drive it). `clock`/`sleep`/`rng` are injectable; the default `sleep` wakes early on
    `stop()` and `wake()`."""

    def __init__(
        self,
        db: Database,
        rules: AlertRules,
        *,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], Any] | None = None,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.db = db
        self.rules = rules
        self.delivery = rules.delivery
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.sleep = sleep or self._wait
        self.rng = rng or random.Random()
        self.stats = NotifierStats()
        self._transport = transport
        self._client: httpx.Client | None = None
        self._thread: threading.Thread | None = None
        create_alert_schema(db)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="pharmaflow-alert-notifier", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread (a POST in flight finishes or times out first). Returns whether
        it stopped within `timeout`; unsent rows stay pending for the next start."""
        self._stop.set()
        self._wake.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(timeout)
            stopped = not self._thread.is_alive()
        if stopped and self._client is not None:
            self._client.close()
            self._client = None
        return stopped

    def wake(self) -> None:
        """Drain now rather than at the next poll (the engine calls it after a transition)."""
        self._wake.set()

    def _stopping(self) -> bool:
        """The thread was asked to stop (a `drain_once` call from elsewhere always runs)."""
        return self._stop.is_set() and threading.current_thread() is self._thread

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        failures = 0
        poll = self.delivery.poll_interval.total_seconds()
        while not self._stop.is_set():
            try:
                self.drain_once(self.clock())
                failures = 0
            except Exception as exc:  # the notifier must outlive any failure
                failures += 1
                self.stats.errors += 1
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                log.warning("alert notifier: drain failed: %s %s", type(exc).__name__, first)
            if self._stop.is_set():
                break
            self.sleep(min(poll * 2 ** min(failures, 6), 60.0))

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                timeout=self.delivery.timeout.total_seconds(),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    # ---- one pass -----------------------------------------------------------------------

    def drain_once(self, now: datetime) -> int:
        """Send every due notification (per route, oldest first); returns how many were
        sent. Never raises for a failing route (failures are recorded and retried)."""
        at = epoch(now)
        with self.db.reading() as tx:
            rows = [
                _Row(*r)
                for r in tx.query(
                    "SELECT id, alert_id, route, event, payload, attempts, created_at, "
                    "next_attempt_at, lease_until FROM rt_outbox WHERE state = 'pending' "
                    "ORDER BY id LIMIT ?",
                    (_BATCH,),
                )
            ]
        if not rows:
            return 0
        heads: dict[str, list[_Row]] = {}
        blocked: set[str] = set()
        orphans: list[tuple[_Row, str]] = []
        for row in rows:
            if row.route in blocked:
                continue
            target = self.rules.routes.get(row.route)
            give_up_at = row.created_at + self.delivery.give_up_after.total_seconds()
            if target is None or target.disabled is not None:
                why = "no longer defined" if target is None else f"disabled ({target.disabled})"
                if target is None or at >= give_up_at:
                    orphans.append((row, f"route {row.route} {why}"))
                    continue
                blocked.add(row.route)  # disabled: left pending until enabled or too old
                continue
            due = row.next_attempt_at <= at and (row.lease_until is None or row.lease_until <= at)
            queue = heads.setdefault(row.route, [])
            if not due or len(queue) >= _PER_ROUTE:
                blocked.add(row.route)  # per-route order: nothing overtakes this row
                continue
            queue.append(row)
        if orphans:
            self._give_up_orphans(orphans, at)
        sent = 0
        for route, queue in heads.items():
            if queue:
                sent += self._send_route(route, self._claim(queue, at), at)
        return sent

    def _claim(self, queue: list[_Row], at: float) -> list[_Row]:
        """Lease the rows (the k-th for k+1 timeouts): another notifier skips them; a crash
        mid-send makes them due again once the lease ends."""
        timeout = self.delivery.timeout.total_seconds()
        claimed: set[int] = set()
        with self.db.transaction() as tx:
            for k, row in enumerate(queue):
                got = tx.query(
                    "UPDATE rt_outbox SET lease_until = ? WHERE id = ? AND state = 'pending' "
                    "AND (lease_until IS NULL OR lease_until <= ?) RETURNING id",
                    (at + (k + 1) * timeout + _LEASE_SLACK_S, row.id, at),
                )
                if not got:
                    break  # another notifier has it: keep the order, leave the rest
                claimed.add(row.id)
        return [r for r in queue if r.id in claimed]

    def _send_route(self, route: str, queue: list[_Row], at: float) -> int:
        target = self.rules.routes[route]
        sent = 0
        for index, row in enumerate(queue):
            if self._stopping():  # at most the POST in flight is finished
                self._release([r.id for r in queue[index:]])
                break
            result = send(self.client, target, orjson.loads(row.payload))
            if result.ok:
                self._mark_sent(row, at)
                sent += 1
                self.stats.sent += 1
                self.stats.by_route[route] = self.stats.by_route.get(route, 0) + 1
                continue
            self._mark_failed(row, result, at)
            rest = [r.id for r in queue[index + 1 :]]
            if rest:
                self._release(rest)
            break
        return sent

    def _mark_sent(self, row: _Row, at: float) -> None:
        attempt = row.attempts + 1
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE rt_outbox SET state = 'sent', sent_at = ?, attempts = ?, "
                "lease_until = NULL, last_error = NULL WHERE id = ?",
                (at, attempt, row.id),
            )
            _event(tx, row.alert_id, at, "notified", row.route, attempt, row.event)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before attempt `attempt + 1`: initial * 2^(attempt-1), capped, times a
        jitter in [0.5, 1) (so a fleet of failures does not retry in lockstep); at least
        what a 429's Retry-After asked for (capped too)."""
        initial = self.delivery.backoff_initial.total_seconds()
        cap = self.delivery.backoff_max.total_seconds()
        delay = min(cap, initial * 2 ** min(attempt - 1, 40)) * (0.5 + self.rng.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, cap))
        return delay

    def _mark_failed(self, row: _Row, result: SendResult, at: float) -> None:
        attempt = row.attempts + 1
        error = result.error or "failed"
        too_old = at >= row.created_at + self.delivery.give_up_after.total_seconds()
        give_up = result.permanent or too_old or attempt >= self.delivery.max_attempts
        self.stats.failed += 1
        _bump(self.stats.failed_by_route, row.route)
        with self.db.transaction() as tx:
            _event(tx, row.alert_id, at, "notify_failed", row.route, attempt, error)
            if give_up:
                why = (
                    "permanent error"
                    if result.permanent
                    else f"still failing after {attempt} attempts"
                )
                tx.execute(
                    "UPDATE rt_outbox SET state = 'given_up', attempts = ?, lease_until = NULL, "
                    "last_error = ? WHERE id = ?",
                    (attempt, error, row.id),
                )
                _event(tx, row.alert_id, at, "given_up", row.route, attempt, f"{why}: {error}")
            else:
                tx.execute(
                    "UPDATE rt_outbox SET attempts = ?, next_attempt_at = ?, lease_until = NULL, "
                    "last_error = ? WHERE id = ?",
                    (attempt, at + self.backoff(attempt, result.retry_after), error, row.id),
                )
        if give_up:
            self.stats.given_up += 1
            _bump(self.stats.given_up_by_route, row.route)
            log.warning(
                "alert notification %s for incident %s on route %s given up: %s",
                row.event,
                row.alert_id,
                row.route,
                error,
            )
        else:
            log.info(
                "alert notification %s for incident %s on route %s failed (attempt %s): %s",
                row.event,
                row.alert_id,
                row.route,
                attempt,
                error,
            )

    def _release(self, ids: list[int]) -> None:
        with self.db.transaction() as tx:
            tx.executemany(
                "UPDATE rt_outbox SET lease_until = NULL WHERE id = ?", [(i,) for i in ids]
            )

    def _give_up_orphans(self, orphans: list[tuple[_Row, str]], at: float) -> None:
        with self.db.transaction() as tx:
            for row, why in orphans:
                tx.execute(
                    "UPDATE rt_outbox SET state = 'given_up', last_error = ? "
                    "WHERE id = ? AND state = 'pending'",
                    (why, row.id),
                )
                _event(tx, row.alert_id, at, "given_up", row.route, row.attempts, why)
                self.stats.given_up += 1
                _bump(self.stats.given_up_by_route, row.route)

    def pending(self) -> int:
        with self.db.reading() as tx:
            return int(tx.query("SELECT count(*) FROM rt_outbox WHERE state = 'pending'")[0][0])


def _bump(counts: dict[str, int], route: str) -> None:
    counts[route] = counts.get(route, 0) + 1


def _event(
    tx: Any, alert_id: int, at: float, event: str, route: str, attempt: int, detail: str
) -> None:
    tx.execute(
        "INSERT INTO rt_alert_event (alert_id, at, event, route, attempt, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (alert_id, at, event, route, attempt, detail),
    )
