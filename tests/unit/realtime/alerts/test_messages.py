"""Message formats and retry timing without a network: Slack's `text` + `blocks` (escaped,
within Slack's limits) and the notifier's capped, jittered exponential backoff."""

from __future__ import annotations

import random

from pharmaflow.realtime.alerts.notifier import Notifier
from pharmaflow.realtime.alerts.routes import slack_message, webhook_body
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database


def notification(**over) -> dict:
    base = {
        "version": 1,
        "source": "pharmaflow",
        "notification_id": "n1",
        "event": "fired",
        "incident_id": 7,
        "rule": "order_stuck",
        "kind": "order_stuck",
        "severity": "warning",
        "key": "order_stuck:ORD-1",
        "summary": "Order ORD-1 (pharmacy PH-001) stuck in placed for 3.0 h (threshold 2 h)",
        "details": {"order_id": "ORD-1", "waiting_hours": 3.0, "insurance_status": None},
        "labels": {"team": "pharmacy-ops"},
        "fired_at": "2026-03-02T12:00:00Z",
        "resolved_at": None,
        "at": "2026-03-02T12:00:00Z",
        "sequence": 1,
    }
    return {**base, **over}


def test_slack_message_has_a_fallback_text_and_three_blocks():
    message = slack_message(notification())
    assert message["text"] == (
        "[WARNING] Order ORD-1 (pharmacy PH-001) stuck in placed for 3.0 h (threshold 2 h)"
    )
    head, fields, context = message["blocks"]
    assert head["text"]["text"].startswith(":large_orange_circle: *WARNING* · `order_stuck`\n")
    assert [f["text"] for f in fields["fields"]] == [
        "*order_id*\nORD-1",
        "*waiting_hours*\n3",
    ]  # null details are left out
    assert context["elements"][0]["text"] == (
        "incident 7 · key `order_stuck:ORD-1` · fired 2026-03-02T12:00:00Z · team=pharmacy-ops"
    )
    repeat = slack_message(notification(event="repeat"))
    assert repeat["text"].startswith("[WARNING (still firing)] ")
    resolved = slack_message(
        notification(event="resolved", resolved_at="2026-03-02T13:00:00Z", resolution="cleared")
    )
    assert resolved["text"].startswith("[RESOLVED] ")
    assert resolved["blocks"][0]["text"]["text"].startswith(":white_check_mark: *RESOLVED*")
    assert "resolved 2026-03-02T13:00:00Z · cleared" in resolved["blocks"][2]["elements"][0]["text"]


def test_slack_text_is_escaped_and_within_slack_limits():
    hostile = "ORD-<!channel>&<https://evil.example|click>"
    details = {f"f{i}": hostile for i in range(15)}
    message = slack_message(notification(summary=hostile * 200, details=details, key=hostile))
    blob = str(message["blocks"])
    assert "<!channel>" not in blob and "<https://" not in blob
    assert "ORD-&lt;!channel&gt;&amp;&lt;https://evil.example|click&gt;" in blob
    assert len(message["blocks"][1]["fields"]) == 10
    assert all(len(b["text"]["text"]) <= 3000 for b in message["blocks"] if "text" in b)
    assert len(message["text"]) <= 3000


def test_the_webhook_body_is_the_notification_itself():
    n = notification()
    assert webhook_body(n) == n


def test_backoff_doubles_with_jitter_and_is_capped(tmp_path):
    rules = AlertRules.parse("delivery: {backoff_initial: 2s, backoff_max: 1m}\n")
    notifier = Notifier(Database(tmp_path / "state.db"), rules, rng=random.Random(3))
    for attempt, full in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (30, 60), (10_000, 60)]:
        for _ in range(20):
            delay = notifier.backoff(attempt)
            assert full / 2 <= delay < full, (attempt, delay)
    assert notifier.backoff(1, retry_after=45) == 45  # the receiver's Retry-After wins
    assert notifier.backoff(1, retry_after=3600) == 60  # ...up to the cap
