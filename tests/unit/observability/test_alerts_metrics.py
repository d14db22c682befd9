"""Alert delivery as the speed-layer worker exports it: the notifier's per-route counts of
sent, failed and given-up notifications, firing incidents and transitions — from a real
Alerting and Notifier over a SQLite store, the receivers answered by an in-process transport."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from prometheus_client import generate_latest

from pharmaflow.realtime.alerts import Alerting, Notifier
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.metrics import RealtimeMetrics
from pharmaflow.realtime.snapshot import ShipmentState, Snapshot

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ANSWERS = {"/ok": 200, "/flaky": 503, "/gone": 404}  # 404: permanent, given up at once

RULES = """
routes:
  - {name: ok, type: webhook, url: 'http://receiver.test/ok'}
  - {name: flaky, type: webhook, url: 'http://receiver.test/flaky'}
  - {name: gone, type: webhook, url: 'http://receiver.test/gone'}
  - {name: quiet, type: webhook, url: 'http://receiver.test/quiet'}
defaults: {routes: [ok, flaky, gone], repeat_interval: 4h}
delivery: {backoff_initial: 10s, backoff_max: 1m, timeout: 2s}
rules:
  - {id: coldchain_excursion, kind: coldchain_excursion, severity: critical}
"""


def excursion(shipment: str) -> Snapshot:
    state = ShipmentState(shipment, "CAR-7", True, 45.0, True, 9.5, 2.0, 8.0, T0)
    return Snapshot(clock=T0, taken_at=T0, shipments=[state])


def test_notifications_are_exported_per_route_and_outcome(tmp_path):
    db = Database(tmp_path / "state.db")
    try:
        rules = AlertRules.parse(RULES, origin="test")
        alerting = Alerting(db, rules)
        transport = httpx.MockTransport(lambda r: httpx.Response(ANSWERS[r.url.path]))
        notifier = Notifier(db, rules, transport=transport)
        metrics = RealtimeMetrics()
        metrics.watch_alerts(alerting, notifier.stats)
        sample = metrics.registry.get_sample_value

        # before anything happened: every configured route at 0, every rule's transitions too
        for route in ("ok", "flaky", "gone", "quiet"):
            for outcome in ("sent", "failed", "given_up"):
                labels = {"route": route, "outcome": outcome}
                assert sample("pharmaflow_alerts_notifications_total", labels) == 0
        fired = {"rule": "coldchain_excursion", "severity": "critical", "transition": "fired"}
        assert sample("pharmaflow_alerts_transitions_total", fired) == 0

        for t in alerting.evaluate(excursion("SHP-1"), T0):  # as LiveAlerts does
            metrics.alerts.labels(t.rule_id, t.severity, t.kind).inc()
        assert notifier.drain_once(T0) == 1
        notifications = {
            (route, outcome): sample(
                "pharmaflow_alerts_notifications_total", {"route": route, "outcome": outcome}
            )
            for route in ("ok", "flaky", "gone")
            for outcome in ("sent", "failed", "given_up")
        }
        assert notifications == {
            ("ok", "sent"): 1, ("ok", "failed"): 0, ("ok", "given_up"): 0,
            ("flaky", "sent"): 0, ("flaky", "failed"): 1, ("flaky", "given_up"): 0,
            ("gone", "sent"): 0, ("gone", "failed"): 1, ("gone", "given_up"): 1,
        }  # fmt: skip
        assert sample("pharmaflow_alerts_firing") == 1
        assert sample("pharmaflow_alerts_transitions_total", fired) == 1
        assert sample("pharmaflow_alerts_notifier_errors_total") == 0
        assert notifier.stats.failed_by_route == {"flaky": 1, "gone": 1}
        assert notifier.stats.given_up_by_route == {"gone": 1}
        generate_latest(metrics.registry)
    finally:
        db.close()


def test_a_worker_that_evaluates_no_alerts_exports_the_names_without_samples():
    text = generate_latest(RealtimeMetrics().registry).decode()
    for name in (
        "pharmaflow_alerts_notifications_total",
        "pharmaflow_alerts_firing",
        "pharmaflow_alerts_notifier_errors_total",
    ):
        assert f"# TYPE {name} " in text
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in samples if line.startswith("pharmaflow_alerts_")]
