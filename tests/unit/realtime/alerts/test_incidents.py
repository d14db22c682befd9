"""The alert life in the store, on SQLite and on the local PostgreSQL: fired once, repeated
only after the repeat interval, resolved once, each transition with its events and outbox
rows written in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pharmaflow.realtime.alerts import Alerting
from pharmaflow.realtime.alerts.evaluate import Incident
from pharmaflow.realtime.alerts.incidents import IncidentStore, list_incidents
from pharmaflow.realtime.alerts.routes import slack_message
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.snapshot import ShipmentState, Snapshot
from tests import pg
from tests.factories import PATIENT
from tests.phi_scan import leaks, record_phi_values

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

RULES = """
routes:
  - {name: slack, type: slack, url: "https://hooks.example.com/services/T/B/x"}
  - {name: hook, type: webhook, url: "https://ops.example.com/in"}
  - {name: muted, type: webhook, url: "${PHARMAFLOW_TEST_UNSET_URL}"}
defaults: {routes: [slack, hook], repeat_interval: 1h}
rules:
  - {id: cold, kind: coldchain_excursion, severity: critical, labels: {team: logistics}}
  - {id: quiet, kind: lab_failure, severity: info, routes: [muted]}
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(tmp_path / "state.db")
        yield database
        database.close()
        return
    schema = f"alerts_t_{uuid.uuid4().hex[:12]}"
    with pg.scratch_schema() as _:
        pg.execute(f'create schema "{schema}"')
        sep = "&" if "?" in pg.PG_DSN else "?"
        database = Database(f"{pg.PG_DSN}{sep}options=-csearch_path%3D{schema}")
        try:
            yield database
        finally:
            database.close()
            pg.execute(f'drop schema if exists "{schema}" cascade')


@pytest.fixture
def rules(monkeypatch) -> AlertRules:
    monkeypatch.delenv("PHARMAFLOW_TEST_UNSET_URL", raising=False)
    return AlertRules.parse(RULES, origin="test")


def excursion(*shipments: str) -> Snapshot:
    return Snapshot(
        clock=T0,
        taken_at=T0,
        shipments=[
            ShipmentState(s, "CAR-7", True, 45.0, True, 9.5, 2.0, 8.0, T0) for s in shipments
        ],
    )


def rows(db: Database, sql: str) -> list[tuple]:
    with db.reading() as tx:
        return tx.query(sql)


def events(db: Database) -> list[tuple]:
    return rows(
        db,
        "SELECT a.incident_key, e.event, e.route FROM rt_alert_event e "
        "JOIN rt_alert a ON a.id = e.alert_id ORDER BY e.id",
    )


def outbox(db: Database) -> list[tuple]:
    return rows(db, "SELECT alert_id, route, event, state FROM rt_outbox ORDER BY id")


def test_an_incident_fires_once_repeats_after_the_interval_and_resolves_once(db, rules):
    alerting = Alerting(db, rules)
    fired = alerting.evaluate(excursion("SHP-1"), T0)
    assert [(t.kind, t.key, t.rule_id, t.severity, t.routes) for t in fired] == [
        ("fired", "cold:SHP-1", "cold", "critical", ("slack", "hook"))
    ]
    incident_id = fired[0].incident_id
    for k in range(1, 60):  # a minute of evaluations every second: nothing new
        assert alerting.evaluate(excursion("SHP-1"), T0 + timedelta(seconds=k)) == []
    repeat = alerting.evaluate(excursion("SHP-1"), T0 + timedelta(hours=1))
    assert [(t.kind, t.incident_id) for t in repeat] == [("repeat", incident_id)]
    assert alerting.evaluate(excursion("SHP-1"), T0 + timedelta(hours=1, minutes=59)) == []
    resolved = alerting.evaluate(excursion(), T0 + timedelta(hours=2))
    assert [(t.kind, t.incident_id) for t in resolved] == [("resolved", incident_id)]
    for k in range(1, 30):
        assert alerting.evaluate(excursion(), T0 + timedelta(hours=2, seconds=k)) == []

    assert rows(
        db, "SELECT id, state, notifications, first_fired_at, resolved_at FROM rt_alert"
    ) == [(incident_id, "resolved", 3, T0.timestamp(), (T0 + timedelta(hours=2)).timestamp())]
    assert [e[1] for e in events(db)] == ["fired", "repeat", "resolved"]
    assert outbox(db) == [
        (incident_id, "slack", "fired", "pending"),
        (incident_id, "hook", "fired", "pending"),
        (incident_id, "slack", "repeat", "pending"),
        (incident_id, "hook", "repeat", "pending"),
        (incident_id, "slack", "resolved", "pending"),
        (incident_id, "hook", "resolved", "pending"),
    ]
    assert alerting.transitions == {
        ("cold", "critical", "fired"): 1,
        ("cold", "critical", "repeat"): 1,
        ("cold", "critical", "resolved"): 1,
    }


def test_the_queued_payload_is_the_documented_notification(db, rules):
    alerting = Alerting(db, rules)
    alerting.evaluate(excursion("SHP-1"), T0)
    alerting.evaluate(excursion(), T0 + timedelta(minutes=10))
    payloads = [orjson.loads(p) for (p,) in rows(db, "SELECT payload FROM rt_outbox ORDER BY id")]
    fired, _, resolved, _ = payloads
    assert set(fired) == {
        "version", "source", "notification_id", "event", "incident_id", "rule", "kind",
        "severity", "key", "summary", "details", "labels", "fired_at", "resolved_at", "at",
        "sequence",
    }  # fmt: skip
    assert fired["event"] == "fired" and fired["kind"] == "coldchain_excursion"
    assert fired["key"] == "cold:SHP-1" and fired["labels"] == {"team": "logistics"}
    assert fired["fired_at"] == "2026-03-02T12:00:00Z" and fired["resolved_at"] is None
    assert fired["details"]["shipment_id"] == "SHP-1" and fired["sequence"] == 1
    assert payloads[0]["notification_id"] == payloads[1]["notification_id"]  # one per event
    assert resolved["event"] == "resolved" and resolved["resolution"] == "condition cleared"
    assert resolved["resolved_at"] == "2026-03-02T12:10:00Z" and resolved["sequence"] == 2
    assert resolved["notification_id"] != fired["notification_id"]


def test_a_key_that_fires_again_after_resolving_is_a_new_incident(db, rules):
    alerting = Alerting(db, rules)
    first = alerting.evaluate(excursion("SHP-1"), T0)[0].incident_id
    alerting.evaluate(excursion(), T0 + timedelta(minutes=1))
    again = alerting.evaluate(excursion("SHP-1", "SHP-2"), T0 + timedelta(minutes=2))
    assert sorted((t.kind, t.key) for t in again) == [
        ("fired", "cold:SHP-1"),
        ("fired", "cold:SHP-2"),
    ]
    assert first not in {t.incident_id for t in again}
    listed = list_incidents(db)
    assert [(i["key"], i["state"]) for i in listed][-1] == ("cold:SHP-1", "resolved")
    assert sorted(i["key"] for i in list_incidents(db, "firing")) == ["cold:SHP-1", "cold:SHP-2"]
    assert [i["key"] for i in list_incidents(db, "resolved")] == ["cold:SHP-1"]
    assert len(list_incidents(db, "all", limit=2)) == 2


def test_transitions_and_outbox_rows_are_one_transaction(db, rules, monkeypatch):
    store = IncidentStore(db, rules)
    real = IncidentStore._enqueue
    calls = []

    def enqueue_then_fail(tx, *args):
        calls.append(1)
        real(tx, *args)
        if len(calls) == 2:
            raise RuntimeError("crash between two incidents")

    monkeypatch.setattr(IncidentStore, "_enqueue", staticmethod(enqueue_then_fail))
    active = {
        f"cold:SHP-{n}": Incident("cold", f"cold:SHP-{n}", "critical", f"SHP-{n}", {})
        for n in (1, 2)
    }
    with pytest.raises(RuntimeError):
        store.record(active, T0)
    assert rows(db, "SELECT count(*) FROM rt_alert") == [(0,)]
    assert rows(db, "SELECT count(*) FROM rt_alert_event") == [(0,)]
    assert rows(db, "SELECT count(*) FROM rt_outbox") == [(0,)]
    monkeypatch.setattr(IncidentStore, "_enqueue", staticmethod(real))
    assert len(store.record(active, T0)) == 2  # the next evaluation fires them, once
    assert rows(db, "SELECT count(*) FROM rt_outbox") == [(4,)]


def test_a_rule_with_only_disabled_routes_records_but_queues_nothing(db, rules):
    store = IncidentStore(db, rules)
    lab = Incident("quiet", "quiet:B-1", "info", "Lab failure on batch B-1", {"batch_id": "B-1"})
    [fired] = store.record({lab.key: lab}, T0)
    assert fired.routes == ()
    assert outbox(db) == []
    assert events(db) == [("quiet:B-1", "fired", None)]
    assert list_incidents(db)[0]["events"][0]["detail"] == "no enabled route"


def test_incidents_of_a_removed_rule_resolve_without_a_notification(db, rules):
    Alerting(db, rules).evaluate(excursion("SHP-1"), T0)
    other = AlertRules.parse(RULES.replace("  - {id: cold,", "  - {id: cold2,"), origin="test")
    changed = Alerting(db, other).evaluate(excursion("SHP-1"), T0 + timedelta(minutes=1))
    assert sorted((t.kind, t.key, t.routes) for t in changed) == [
        ("fired", "cold2:SHP-1", ("slack", "hook")),
        ("resolved", "cold:SHP-1", ()),
    ]
    assert list_incidents(db, "resolved")[0]["resolution"] == "rule no longer in the rules file"
    firing = list_incidents(db, "firing")
    assert [i["key"] for i in firing] == ["cold2:SHP-1"]  # the renamed rule fires on its own


def test_no_repeats_for_a_rule_that_never_repeats(db):
    rules = AlertRules.parse(
        "rules:\n  - {id: cold, kind: coldchain_excursion, severity: info, "
        "repeat_interval: never}\n"
    )
    alerting = Alerting(db, rules)
    assert len(alerting.evaluate(excursion("SHP-1"), T0)) == 1
    for days in range(1, 8):
        assert alerting.evaluate(excursion("SHP-1"), T0 + timedelta(days=days)) == []


def test_listing_shows_the_life_and_delivery_of_each_incident(db, rules):
    alerting = Alerting(db, rules)
    alerting.evaluate(excursion("SHP-1"), T0)
    alerting.evaluate(excursion(), T0 + timedelta(minutes=5))
    [incident] = list_incidents(db)
    assert incident["key"] == "cold:SHP-1" and incident["severity"] == "critical"
    assert incident["first_fired_at"] == "2026-03-02T12:00:00Z"
    assert incident["resolved_at"] == "2026-03-02T12:05:00Z"
    assert incident["delivery"] == {"sent": 0, "pending": 4, "given_up": 0, "failed_attempts": 0}
    assert [(e["event"], e["detail"]) for e in incident["events"]] == [
        ("fired", "queued for slack, hook"),
        ("resolved", "condition cleared; queued for slack, hook"),
    ]
    assert incident["details"]["shipment_id"] == "SHP-1"


def test_compaction_keeps_firing_incidents_and_pending_notifications(db, rules):
    store = IncidentStore(db, rules)
    alerting = Alerting(db, rules)
    alerting.evaluate(excursion("SHP-1", "SHP-2"), T0)
    alerting.evaluate(excursion("SHP-2"), T0 + timedelta(hours=1))  # SHP-1 resolves
    assert store.compact(T0 + timedelta(days=29)) == 0
    assert store.compact(T0 + timedelta(days=31)) == 1
    assert [i["key"] for i in list_incidents(db)] == ["cold:SHP-2"]
    assert {r[3] for r in outbox(db)} == {"pending"}  # SHP-2's unsent rows are kept
    assert store.open_count() == 1


def test_nothing_a_patient_could_be_identified_by_reaches_the_alert_tables(db, rules):
    alerting = Alerting(db, rules)
    for minute in range(0, 300, 60):
        alerting.evaluate(excursion("SHP-1", f"SHP-{minute}"), T0 + timedelta(minutes=minute))
    texts = [
        str(v)
        for table in ("rt_alert", "rt_alert_event", "rt_outbox")
        for row in rows(db, f"SELECT * FROM {table}")
        for v in row
        if v is not None
    ]
    texts += [
        orjson.dumps(slack_message(orjson.loads(p))).decode()
        for (p,) in rows(db, "SELECT payload FROM rt_outbox")
    ]
    assert len(texts) > 50
    values, names = record_phi_values([PATIENT])
    assert leaks(texts, values, names) == []
