"""The order, KPI, facility, alert and survey routes on a built, published data dir: real
answers (checked against the snapshot itself), auth paths, validation, pagination."""

from __future__ import annotations

import uuid
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from pharmaflow.serve.api.app import create_app
from pharmaflow.serve.snapshots import reader_config
from pharmaflow.warehouse import publish
from tests.serve_data import ServedData, api_keys, assert_no_phi, raw_phi


@pytest.fixture(scope="module")
def keys(served: ServedData) -> dict[str, str]:
    return api_keys(served.settings)


@pytest.fixture(scope="module")
def client(served: ServedData):
    settings = served.settings.model_copy(update={"survey_dsn": "postgresql://127.0.0.1:5432/test"})
    with TestClient(create_app(settings)) as c:
        yield c


def _as(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"X-API-Key": keys[role]}


def _snapshot_rows(served: ServedData, sql: str, params: list[Any] | None = None) -> list[tuple]:
    snap = publish.current(served.settings.snapshots_dir)
    assert snap is not None
    with duckdb.connect(str(snap.path), read_only=True, config=reader_config(snap.path)) as con:
        return con.execute(sql, params or []).fetchall()


def test_health_ready_metrics_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True
    assert {k for k, v in ready["checks"].items() if v["ok"]} == {
        "warehouse",
        "speed_layer",
        "security",
    }
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/orders/{order_id}/timeline" in spec["paths"]
    client.get("/health")
    metrics = client.get("/metrics").text
    assert 'pharmaflow_api_requests_total{method="GET",route="/health",status="200"}' in metrics


def test_an_order_timeline_lists_every_event_of_the_order(
    client: TestClient, keys: dict[str, str], served: ServedData
) -> None:
    [(order_id, n_events)] = _snapshot_rows(
        served,
        "select order_id, count(*) from (select order_id from silver.pharmacy_order_placed "
        "union all select order_id from silver.pharmacy_order_insurance_validated "
        "union all select order_id from silver.pharmacy_order_filled "
        "union all select order_id from silver.pharmacy_order_shipped "
        "union all select order_id from silver.pharmacy_order_delivered) "
        "group by 1 order by 2 desc, 1 limit 1",
    )
    body = client.get(f"/v1/orders/{order_id}/timeline", headers=_as(keys, "analyst")).json()
    assert body["order"]["order_id"] == order_id
    assert len(body["events"]) == n_events
    times = [e["at"] for e in body["events"]]
    assert times == sorted(times)
    assert body["events"][0]["stage"] == "placed"
    assert body["order"]["patient_key"].startswith("pk_")


def test_stuck_orders_page_through_every_stuck_order_once(
    client: TestClient, keys: dict[str, str]
) -> None:
    headers = _as(keys, "analyst")
    everything = client.get("/v1/orders/stuck?limit=500", headers=headers).json()["items"]
    assert everything and all(o["stuck"] for o in everything)
    waits = [o["waiting_hours"] for o in everything]
    assert waits == sorted(waits, reverse=True)
    seen, cursor = [], None
    while True:
        url = "/v1/orders/stuck?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=headers).json()
        seen += [o["order_id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [o["order_id"] for o in everything]
    one = everything[0]
    live = client.get(f"/v1/orders/{one['order_id']}/timeline", headers=headers).json()["live"]
    assert live["stage"] == one["stage"] and live["stuck"] is True


def test_daily_kpis_add_up_to_the_events(
    client: TestClient, keys: dict[str, str], served: ServedData
) -> None:
    body = client.get("/v1/kpis/daily", headers=_as(keys, "viewer")).json()
    total = sum(day["orders_placed"] for day in body["days"])
    assert total == served.stats.by_type["pharmacy.order.placed"]  # gold + live, nothing twice
    assert {d["source"] for d in body["days"]} == {"gold", "live"}
    gold_days = [d for d in body["days"] if d["source"] == "gold"]
    [(expected,)] = _snapshot_rows(
        served,
        "select count(*) from silver.pharmacy_order_placed where event_time < ?",
        [body["watermark"].replace("Z", "")],
    )
    assert sum(d["orders_placed"] for d in gold_days) == expected


def test_timeseries_and_realtime(client: TestClient, keys: dict[str, str]) -> None:
    headers = _as(keys, "viewer")
    day = client.get(
        "/v1/kpis/timeseries?metric=shipments_created&interval=day", headers=headers
    ).json()
    hour = client.get(
        "/v1/kpis/timeseries?metric=shipments_created&interval=hour", headers=headers
    ).json()
    assert sum(p["value"] for p in day["points"]) == sum(p["value"] for p in hour["points"])
    live = client.get("/v1/kpis/realtime?width_s=300&last=3", headers=headers).json()
    assert live["running"] is True and live["width_s"] == 300
    assert len({v["start"] for v in live["kpis"]}) <= 3
    bad = client.get("/v1/kpis/realtime?width_s=7", headers=headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "width_s"]


def test_facility_metrics_match_the_warehouse(
    client: TestClient, keys: dict[str, str], served: ServedData
) -> None:
    [(pharmacy, orders)] = _snapshot_rows(
        served,
        "select pharmacy_id, count(*) from gold.fact_order_lifecycle "
        "where pharmacy_id is not null group by 1 order by 2 desc limit 1",
    )
    body = client.get(f"/v1/facilities/{pharmacy}/metrics", headers=_as(keys, "viewer")).json()
    assert body["facility"]["facility_type"] == "PHARMACY"
    assert body["orders"]["orders_placed"] == orders
    assert (
        client.get("/v1/facilities/PH-404/metrics", headers=_as(keys, "viewer")).status_code == 404
    )
    listed = client.get("/v1/facilities?facility_type=PLANT", headers=_as(keys, "viewer")).json()
    assert listed and {f["facility_type"] for f in listed} == {"PLANT"}


def test_alerts_page_through_the_incidents(
    client: TestClient, keys: dict[str, str], served: ServedData
) -> None:
    from pharmaflow.realtime.alerts.incidents import list_incidents
    from pharmaflow.realtime.db import Database

    headers = _as(keys, "analyst")
    db = Database(served.settings.realtime_store_url)
    try:
        everything = list_incidents(db, "all", limit=100_000)
    finally:
        db.close()
    assert len(everything) > 500
    seen, cursor = [], None
    while True:
        url = "/v1/alerts?limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=headers).json()
        seen += [i["id"] for i in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [i["id"] for i in everything]
    firing = client.get("/v1/alerts?state=firing&limit=500", headers=headers).json()["items"]
    assert {i["state"] for i in firing} <= {"firing"}


@pytest.mark.parametrize(
    ("url", "role", "status"),
    [
        ("/v1/kpis/daily", None, 401),
        ("/v1/orders/stuck", "viewer", 403),
        ("/v1/orders/stuck", "qa", 403),
        ("/v1/alerts", "collector", 403),
        ("/v1/kpis/daily", "collector", 403),
        ("/v1/orders/ORD-000/timeline", "analyst", 404),
        ("/v1/kpis/daily?date_from=2026-13-01", "viewer", 422),
        ("/v1/kpis/daily?date_from=2026-11-05&date_to=2026-11-01", "viewer", 422),
        ("/v1/kpis/timeseries?metric=nope", "viewer", 422),
        ("/v1/orders/stuck?limit=0", "analyst", 422),
        ("/v1/orders/stuck?cursor=not-a-cursor", "analyst", 422),
        ("/v1/orders/x%27%20or%201=1/timeline", "analyst", 422),
    ],
)
def test_refusals_say_what_is_wrong(
    client: TestClient, keys: dict[str, str], url: str, role: str | None, status: int
) -> None:
    headers = {} if role is None else _as(keys, role)
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail
    if status == 422:
        assert all(e["loc"] for e in detail)


def test_a_wrong_key_is_401_and_names_nothing(client: TestClient, keys: dict[str, str]) -> None:
    forged = keys["viewer"][:-4] + "AAAA"
    response = client.get("/v1/kpis/daily", headers={"X-API-Key": forged})
    assert response.status_code == 401
    assert forged not in response.text and keys["viewer"] not in response.text


def test_a_survey_is_stored_once(client: TestClient, keys: dict[str, str]) -> None:
    headers = _as(keys, "collector")
    survey = {
        "survey_id": f"SRV-{uuid.uuid4().hex[:12]}",
        "order_id": "ORD-261101-00001",
        "rating": 4,
        "nps": 9,
        "comment": "quick delivery",
        "submitted_at": "2026-11-03T10:00:00Z",
    }
    first = client.post("/v1/surveys", json=survey, headers=headers)
    assert (first.status_code, first.json()["stored"]) == (201, True)
    again = client.post("/v1/surveys", json=survey, headers=headers)
    assert (again.status_code, again.json()["stored"]) == (200, False)
    changed = client.post("/v1/surveys", json={**survey, "rating": 1}, headers=headers)
    assert changed.status_code == 409
    bad = client.post("/v1/surveys", json={**survey, "rating": 11}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "rating"]
    assert client.post("/v1/surveys", json=survey, headers=_as(keys, "viewer")).status_code == 403


def test_no_patient_identifier_in_any_answer_or_log(
    client: TestClient, keys: dict[str, str], served: ServedData
) -> None:
    """Every route of this module, as the role that sees the most rows, and every log the
    served data dir holds: no raw patient identifier (patient keys are pseudonymous)."""
    headers = _as(keys, "privacy_officer")
    stuck = client.get("/v1/orders/stuck?limit=20", headers=headers).json()["items"]
    [(delivered,)] = _snapshot_rows(
        served, "select order_id from gold.fact_order_lifecycle where delivered_at is not null "
        "order by order_id limit 1",
    )  # fmt: skip
    urls = [
        "/v1/kpis/daily",
        "/v1/kpis/timeseries?metric=orders_placed&interval=hour",
        "/v1/kpis/realtime?last=50",
        "/v1/orders/stuck?limit=500",
        "/v1/alerts?limit=500",
        "/v1/facilities",
        "/v1/facilities/PH-001/metrics",
        f"/v1/orders/{delivered}/timeline",
        *(f"/v1/orders/{o['order_id']}/timeline" for o in stuck),
    ]
    bodies = []
    for url in urls:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, url
        bodies.append(response.json())
    logs = [
        p.read_text(errors="replace") for p in served.settings.logs_dir.rglob("*") if p.is_file()
    ]
    assert_no_phi([bodies, logs], raw_phi(served.events))
