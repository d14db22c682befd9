"""Notifications over real HTTP: a local server (http.server in a thread) stands in for
Slack and for a webhook receiver. An alert fires once and resolves once across many
evaluations; a receiver that is down at first (503, or refusing connections) gets the
notification once it is back; a notification left pending by a crashed process is delivered
after the restart, exactly once; a slow or broken receiver never blocks the evaluator."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pharmaflow.realtime.alerts import Alerting, Notifier, list_incidents
from pharmaflow.realtime.alerts.incidents import create_alert_schema
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.snapshot import ShipmentState, Snapshot
from tests import pg

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SLACK_PATH = "/services/T0PHARMA/B0FLOW/s3cr3tT0ken"


class Hook:
    """A receiver on 127.0.0.1: records every POST (path, headers, JSON body) and answers
    with the queued `responses` first ((status, headers, body)), then `status`."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[tuple[str, dict[str, str], dict]] = []
        self.responses: list[tuple[int, dict[str, str], str]] = []
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(hook.delay)
                with hook.lock:
                    hook.requests.append((self.path, dict(self.headers), json.loads(body)))
                    status, headers, text = (
                        hook.responses.pop(0) if hook.responses else (hook.status, {}, "ok")
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(text.encode())))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [b for p, _, b in self.requests if path is None or p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


_OPENED: list[Database] = []


def open_db(url: str | Path) -> Database:
    """A store connection the test closes afterwards (before its schema is dropped)."""
    db = Database(url)
    _OPENED.append(db)
    return db


def close_databases() -> None:
    while _OPENED:
        _OPENED.pop().close()


@pytest.fixture(autouse=True)
def _closed() -> Iterator[None]:
    yield
    close_databases()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path: Path) -> Iterator[str]:
    """A store URL: a SQLite file, or a throwaway schema on the local PostgreSQL."""
    if request.param == "sqlite":
        yield str(tmp_path / "state.db")
        return
    schema = f"alerts_t_{uuid.uuid4().hex[:12]}"
    with pg.scratch_schema():
        pg.execute(f'create schema "{schema}"')
        sep = "&" if "?" in pg.PG_DSN else "?"
        try:
            yield f"{pg.PG_DSN}{sep}options=-csearch_path%3D{schema}"
        finally:
            close_databases()
            pg.execute(f'drop schema if exists "{schema}" cascade')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_rules(routes: dict[str, tuple[str, str]], **delivery: str) -> AlertRules:
    lines = ["routes:"]
    lines += [f"  - {{name: {n}, type: {t}, url: '{u}'}}" for n, (t, u) in routes.items()]
    lines.append(f"defaults: {{routes: [{', '.join(routes)}], repeat_interval: 4h}}")
    settings = {"backoff_initial": "10s", "backoff_max": "1m", "timeout": "2s", **delivery}
    lines.append("delivery: {" + ", ".join(f"{k}: {v}" for k, v in settings.items()) + "}")
    lines.append("rules:\n  - {id: coldchain_excursion, kind: coldchain_excursion, "
                 "severity: critical, labels: {team: logistics}}")  # fmt: skip
    return AlertRules.parse("\n".join(lines) + "\n", origin="test")


def excursion(*shipments: str) -> Snapshot:
    return Snapshot(
        clock=T0,
        taken_at=T0,
        shipments=[
            ShipmentState(s, "CAR-7", True, 45.0, True, 9.5, 2.0, 8.0, T0) for s in shipments
        ],
    )


def events(db: Database) -> list[tuple]:
    with db.reading() as tx:
        return tx.query("SELECT event, route, attempt, detail FROM rt_alert_event ORDER BY id")


def outbox(db: Database) -> list[tuple]:
    with db.reading() as tx:
        return tx.query("SELECT route, event, state, attempts FROM rt_outbox ORDER BY id")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_slack_gets_one_message_when_it_fires_and_one_when_it_resolves(store, hook):
    db = open_db(store)
    rules = make_rules(
        {"slack": ("slack", hook.url(SLACK_PATH)), "hook": ("webhook", hook.url("/in"))},
        poll_interval="20ms",
    )
    alerting = Alerting(db, rules)
    notifier = Notifier(db, rules)
    notifier.start()
    start = datetime.now(UTC) - timedelta(minutes=2)  # the notifier runs on the real clock
    try:
        for k in range(120):  # two minutes of evaluations, one a second
            snapshot = excursion("SHP-123") if k < 60 else excursion()
            if alerting.evaluate(snapshot, start + timedelta(seconds=k)):
                notifier.wake()
        wait_for(lambda: len(hook.requests) >= 4)
        time.sleep(0.2)  # several more polls: nothing else is sent
    finally:
        assert notifier.stop(timeout=5)
    assert Notifier(db, rules).drain_once(datetime.now(UTC) + timedelta(days=1)) == 0
    slack, webhook = hook.bodies(SLACK_PATH), hook.bodies("/in")
    assert len(hook.requests) == 4 and len(slack) == 2 and len(webhook) == 2

    fired, resolved = slack
    assert set(fired) == {"text", "blocks"}
    assert fired["text"] == (
        "[CRITICAL] Cold-chain excursion on shipment SHP-123 (carrier CAR-7): 45 min out of "
        "range, last reading 9.5 °C outside 2.0 to 8.0 °C"
    )
    assert [b["type"] for b in fired["blocks"]] == ["section", "section", "context"]
    assert fired["blocks"][0]["text"]["type"] == "mrkdwn"
    assert ":red_circle: *CRITICAL* · `coldchain_excursion`" in fired["blocks"][0]["text"]["text"]
    fields = {
        f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in fired["blocks"][1]["fields"]
    }
    assert fields["*shipment_id*"] == "SHP-123" and fields["*in_excursion*"] == "yes"
    assert len(fields) <= 10
    context = fired["blocks"][2]["elements"][0]["text"]
    assert "key `coldchain_excursion:SHP-123`" in context and "team=logistics" in context
    assert resolved["text"].startswith("[RESOLVED] Cold-chain excursion on shipment SHP-123")
    assert "resolved 20" in resolved["blocks"][-1]["elements"][0]["text"]

    assert [b["event"] for b in webhook] == ["fired", "resolved"]
    assert webhook[0]["key"] == "coldchain_excursion:SHP-123"
    assert webhook[0]["details"]["shipment_id"] == "SHP-123"
    headers = [h for p, h, _ in hook.requests if p == "/in"]
    assert [h["X-Pharmaflow-Notification-Id"] for h in headers] == [
        b["notification_id"] for b in webhook
    ]
    assert all(h["Content-Type"] == "application/json" for _, h, _ in hook.requests)

    [incident] = list_incidents(db)
    assert incident["state"] == "resolved"
    assert incident["delivery"] == {"sent": 4, "pending": 0, "given_up": 0, "failed_attempts": 0}
    notified = [(e[1], e[3]) for e in events(db) if e[0] == "notified"]
    assert sorted(notified) == [
        ("hook", "fired"), ("hook", "resolved"), ("slack", "fired"), ("slack", "resolved")
    ]  # fmt: skip
    assert notifier.stats.sent == 4 and notifier.stats.by_route == {"slack": 2, "hook": 2}


def test_a_webhook_answering_503_is_retried_with_backoff_until_it_arrives(store, hook):
    db = open_db(store)
    rules = make_rules({"hook": ("webhook", hook.url(SLACK_PATH))})
    echo = f"upstream {SLACK_PATH} unavailable"  # a proxy that echoes the (secret) path
    hook.responses = [(503, {}, echo), (503, {}, echo)]
    Alerting(db, rules).evaluate(excursion("SHP-1"), T0)
    notifier = Notifier(db, rules, rng=random.Random(7))

    assert notifier.drain_once(T0) == 0
    with db.reading() as tx:
        [(attempts, due)] = tx.query("SELECT attempts, next_attempt_at FROM rt_outbox")
    assert attempts == 1 and 5 <= due - T0.timestamp() < 10  # 10s with jitter in [0.5, 1)
    assert notifier.drain_once(T0 + timedelta(seconds=4)) == 0  # not due: no request
    assert len(hook.requests) == 1
    assert notifier.drain_once(T0 + timedelta(seconds=10)) == 0  # second 503
    with db.reading() as tx:
        [(attempts, due)] = tx.query("SELECT attempts, next_attempt_at FROM rt_outbox")
    assert attempts == 2 and 10 <= due - (T0.timestamp() + 10) < 20  # doubled
    assert notifier.drain_once(T0 + timedelta(seconds=40)) == 1
    assert len(hook.requests) == 3 and hook.bodies()[-1]["event"] == "fired"
    assert outbox(db) == [("hook", "fired", "sent", 3)]
    failed = [e for e in events(db) if e[0] == "notify_failed"]
    assert [(e[1], e[2]) for e in failed] == [("hook", 1), ("hook", 2)]
    assert failed[0][3] == "HTTP 503: upstream *** unavailable"  # the token is masked
    assert [e[:3] for e in events(db) if e[0] == "notified"] == [("notified", "hook", 3)]
    assert notifier.stats.failed == 2 and notifier.stats.sent == 1


def test_a_webhook_refusing_connections_at_first_gets_it_once_it_is_up(tmp_path):
    port = free_port()  # nothing listens there yet
    db = open_db(tmp_path / "state.db")
    rules = make_rules(
        {"hook": ("webhook", f"http://127.0.0.1:{port}/in")},
        backoff_initial="20ms",
        backoff_max="100ms",
        poll_interval="10ms",
    )
    Alerting(db, rules).evaluate(excursion("SHP-1"), datetime.now(UTC))
    notifier = Notifier(db, rules)
    notifier.start()
    server = None
    try:
        wait_for(lambda: sum(e[0] == "notify_failed" for e in events(db)) >= 3)
        server = Hook(port)
        wait_for(lambda: len(server.requests) == 1)
        time.sleep(0.2)
    finally:
        assert notifier.stop(timeout=5)
        if server is not None:
            server.close()
    assert len(server.requests) == 1 and server.bodies()[0]["key"] == "coldchain_excursion:SHP-1"
    failed = [e for e in events(db) if e[0] == "notify_failed"]
    assert all(e[3].startswith("ConnectError") for e in failed)
    assert [e[0] for e in events(db)].count("notified") == 1
    assert outbox(db)[0][2] == "sent"


def test_a_notification_pending_at_a_crash_is_delivered_after_restart_exactly_once(
    store: str, hook
):
    path = store
    rules = make_rules({"hook": ("webhook", hook.url())}, poll_interval="20ms")
    first = open_db(path)
    Alerting(first, rules).evaluate(excursion("SHP-1", "SHP-2"), datetime.now(UTC))
    # the process dies before its notifier sent anything (nothing ever started it)
    first.close()
    assert hook.requests == []

    second = open_db(path)
    notifier = Notifier(second, rules)
    notifier.start()
    try:
        wait_for(lambda: len(hook.requests) == 2)
        time.sleep(0.2)
    finally:
        assert notifier.stop(timeout=5)
    assert Notifier(second, rules).drain_once(datetime.now(UTC) + timedelta(hours=1)) == 0
    assert sorted(b["key"] for b in hook.bodies()) == [
        "coldchain_excursion:SHP-1",
        "coldchain_excursion:SHP-2",
    ]
    assert [r[2] for r in outbox(second)] == ["sent", "sent"]
    third = open_db(path)  # and yet another restart sends nothing again
    assert Notifier(third, rules).drain_once(datetime.now(UTC)) == 0
    assert len(hook.requests) == 2


def test_a_row_a_crashed_notifier_had_claimed_is_sent_once_its_lease_ends(store, hook):
    path = store
    rules = make_rules({"hook": ("webhook", hook.url())}, timeout="10s")
    first = open_db(path)
    Alerting(first, rules).evaluate(excursion("SHP-1"), T0)
    with first.transaction() as tx:  # what a notifier killed mid-POST leaves behind
        tx.execute("UPDATE rt_outbox SET lease_until = ?", (T0.timestamp() + 15,))
    first.close()

    notifier = Notifier(open_db(path), rules)
    assert notifier.drain_once(T0 + timedelta(seconds=1)) == 0  # it might still be sending
    assert hook.requests == []
    assert notifier.drain_once(T0 + timedelta(seconds=16)) == 1
    assert notifier.drain_once(T0 + timedelta(seconds=17)) == 0
    assert len(hook.requests) == 1


def test_resolved_never_overtakes_its_fired_on_a_route(store, hook):
    db = open_db(store)
    rules = make_rules({"hook": ("webhook", hook.url())})
    alerting = Alerting(db, rules)
    notifier = Notifier(db, rules, rng=random.Random(1))
    hook.responses = [(503, {}, "busy")]
    alerting.evaluate(excursion("SHP-1"), T0)
    assert notifier.drain_once(T0) == 0  # fired: 503, retried in 5-10 s
    alerting.evaluate(excursion(), T0 + timedelta(seconds=1))  # resolved queued behind it
    assert notifier.drain_once(T0 + timedelta(seconds=2)) == 0
    assert len(hook.requests) == 1
    assert notifier.drain_once(T0 + timedelta(seconds=60)) == 2
    assert [b["event"] for b in hook.bodies()] == ["fired", "fired", "resolved"]


def test_one_route_down_does_not_hold_back_another(tmp_path, hook):
    db = open_db(tmp_path / "state.db")
    rules = make_rules(
        {"slack": ("slack", f"http://127.0.0.1:{free_port()}/x"), "hook": ("webhook", hook.url())}
    )
    Alerting(db, rules).evaluate(excursion("SHP-1", "SHP-2"), T0)
    assert Notifier(db, rules).drain_once(T0) == 2
    assert len(hook.requests) == 2
    assert sorted(r[:3] for r in outbox(db)) == [
        ("hook", "fired", "sent"),
        ("hook", "fired", "sent"),
        ("slack", "fired", "pending"),
        ("slack", "fired", "pending"),
    ]
    assert sum(e[0] == "notify_failed" for e in events(db)) == 1  # the route stops at one


def test_a_permanent_error_is_given_up_at_once_and_listed(tmp_path, hook):
    db = open_db(tmp_path / "state.db")
    rules = make_rules({"slack": ("slack", hook.url(SLACK_PATH))})
    hook.responses = [(404, {}, "no_service")]
    Alerting(db, rules).evaluate(excursion("SHP-1"), T0)
    notifier = Notifier(db, rules)
    assert notifier.drain_once(T0) == 0
    assert notifier.drain_once(T0 + timedelta(hours=1)) == 0
    assert len(hook.requests) == 1
    assert outbox(db) == [("slack", "fired", "given_up", 1)]
    [incident] = list_incidents(db)
    assert incident["delivery"] == {"sent": 0, "pending": 0, "given_up": 1, "failed_attempts": 1}
    assert incident["events"][-1]["detail"] == "permanent error: HTTP 404: no_service"
    assert notifier.stats.given_up == 1


def test_a_route_failing_for_longer_than_the_cap_is_given_up(tmp_path, hook):
    db = open_db(tmp_path / "state.db")
    rules = make_rules({"hook": ("webhook", hook.url())}, give_up_after="1m")
    hook.status = 500
    Alerting(db, rules).evaluate(excursion("SHP-1"), T0)
    notifier = Notifier(db, rules)
    for seconds in (0, 30, 61):
        notifier.drain_once(T0 + timedelta(seconds=seconds))
    assert outbox(db) == [("hook", "fired", "given_up", 3)]
    assert events(db)[-1][0] == "given_up"
    assert events(db)[-1][3] == "still failing after 3 attempts: HTTP 500: ok"
    assert notifier.drain_once(T0 + timedelta(hours=1)) == 0 and len(hook.requests) == 3


def test_429_retry_after_is_honoured(tmp_path, hook):
    db = open_db(tmp_path / "state.db")
    rules = make_rules({"slack": ("slack", hook.url())}, backoff_initial="1s", backoff_max="5m")
    hook.responses = [(429, {"Retry-After": "120"}, "rate_limited")]
    Alerting(db, rules).evaluate(excursion("SHP-1"), T0)
    notifier = Notifier(db, rules)
    notifier.drain_once(T0)
    assert notifier.drain_once(T0 + timedelta(seconds=119)) == 0
    assert notifier.drain_once(T0 + timedelta(seconds=120)) == 1


def test_a_slow_receiver_never_blocks_the_evaluator(tmp_path, hook):
    db = open_db(tmp_path / "state.db")
    rules = make_rules({"hook": ("webhook", hook.url())}, poll_interval="10ms", timeout="5s")
    hook.delay = 0.3
    alerting = Alerting(db, rules)
    notifier = Notifier(db, rules)
    notifier.start()
    slowest = 0.0
    try:
        for k in range(20):  # a new incident every evaluation, each owing a notification
            started = time.perf_counter()
            now = datetime.now(UTC)
            assert alerting.evaluate(excursion(*(f"SHP-{i}" for i in range(k + 1))), now)
            notifier.wake()
            slowest = max(slowest, time.perf_counter() - started)
        wait_for(lambda: len(hook.requests) >= 2)
    finally:
        stopped = notifier.stop(timeout=5)
    assert stopped
    assert slowest < 0.25  # every evaluation returns while POSTs take 0.3 s each
    with db.reading() as tx:
        [(pending,)] = tx.query("SELECT count(*) FROM rt_outbox WHERE state = 'pending'")
    assert pending == 20 - len(hook.requests)  # what was not sent yet is still queued


def test_the_notifier_outlives_a_broken_store_and_resumes(tmp_path, hook):
    db = open_db(tmp_path / "state.db")
    rules = make_rules({"hook": ("webhook", hook.url())}, poll_interval="10ms")
    notifier = Notifier(db, rules)
    with db.transaction() as tx:
        tx.execute("DROP TABLE rt_outbox")
    notifier.start()
    try:
        wait_for(lambda: notifier.stats.errors >= 2)
        create_alert_schema(db)
        Alerting(db, rules).evaluate(excursion("SHP-1"), datetime.now(UTC))
        notifier.wake()
        wait_for(lambda: len(hook.requests) == 1, timeout=15)
    finally:
        assert notifier.stop(timeout=5)
    assert hook.bodies()[0]["event"] == "fired"
