"""The logistics, recall and feedback routes over real HTTP (TestClient on the real app, real
keys in the served data dir's security store): answers equal the query layer's, every
401/403/404/422 path, pages that concatenate without repeats, and no PHI in any body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pharmaflow.serve.api.app import create_app
from pharmaflow.serve.query import feedback, logistics, recall
from pharmaflow.serve.query.base import Filters, QueryContext
from pharmaflow.serve.security.store import open_security
from tests.serve_data import assert_no_phi, raw_phi

ROLES = ("viewer", "analyst", "qa", "privacy_officer", "collector")


@pytest.fixture(scope="module")
def keys(served) -> dict[str, str]:
    store, audit = open_security(served.settings)
    try:
        return {
            role: store.create(f"logistics-routes-{role}", role, actor="test", reason="test")[1]
            for role in ROLES
        }
    finally:
        store.close()
        audit.close()


@pytest.fixture(scope="module")
def client(served) -> Iterator[TestClient]:
    with TestClient(create_app(served.settings)) as c:
        yield c


@pytest.fixture(scope="module")
def ctx(client) -> QueryContext:
    """The app's own query layer (a second one in this process would open the snapshot
    again), for the expected answers."""
    return client.app.state.services.queries


@pytest.fixture(scope="module")
def ids(ctx) -> dict[str, str]:
    """Real ids of the served data: a cold-chain shipment, a lot with a batch, its batch."""
    with ctx.reading() as q:
        shipment = q.one(
            "test.shipment",
            "select shipment_id from gold.fact_shipment where excursion_minutes > 0 "
            "order by shipment_id limit 1",
        )
        lot = q.one(
            "test.lot",
            "select lot_number, batch_id from gold.dim_lot where batch_id is not null "
            "order by shipments + orders desc, lot_number limit 1",
        )
    assert shipment and lot
    return {"shipment": shipment["shipment_id"], "lot": lot["lot_number"], "batch": lot["batch_id"]}


def get(client: TestClient, url: str, key: str | None, **query: Any) -> Any:
    headers = {} if key is None else {"X-API-Key": key}
    return client.get(url, params=query, headers=headers)


def paths(ids: dict[str, str]) -> dict[str, str]:
    return {
        "timeline": f"/v1/shipments/{ids['shipment']}/timeline",
        "excursions": "/v1/shipments/excursions",
        "performance": "/v1/analytics/delivery-performance",
        "lot": f"/v1/lots/{ids['lot']}/trace",
        "batch": f"/v1/batches/{ids['batch']}/trace",
        "feedback": "/v1/analytics/feedback",
        "comments": "/v1/feedback/comments",
    }


# Who may call what: rows routes analyst / privacy officer, traces also qa, aggregates all
# reading roles (not the survey collector).
ALLOWED = {
    "timeline": {"analyst", "privacy_officer"},
    "excursions": {"analyst", "privacy_officer"},
    "comments": {"analyst", "privacy_officer"},
    "lot": {"analyst", "qa", "privacy_officer"},
    "batch": {"analyst", "qa", "privacy_officer"},
    "performance": {"viewer", "analyst", "qa", "privacy_officer"},
    "feedback": {"viewer", "analyst", "qa", "privacy_officer"},
}


def test_each_role_gets_200_or_403(client, keys, ids):
    for name, url in paths(ids).items():
        for role in ROLES:
            response = get(client, url, keys[role])
            if role in ALLOWED[name]:
                assert response.status_code == 200, (name, role, response.text)
            else:
                assert response.status_code == 403, (name, role)
                detail = response.json()["detail"]
                assert f"the {role} role may not" in detail and keys[role] not in detail


def test_trace_403_names_every_role_that_may(client, keys, ids):
    detail = get(client, paths(ids)["lot"], keys["viewer"]).json()["detail"]
    assert detail.endswith("roles that may: analyst, qa, privacy_officer")


def test_missing_or_wrong_key_is_401(client, keys, ids):
    for url in paths(ids).values():
        missing = get(client, url, None)
        assert missing.status_code == 401 and "missing API key" in missing.json()["detail"]
        wrong = get(client, url, keys["analyst"][:-2] + "xx")
        assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid or revoked API key"}
    bearer = client.get(paths(ids)["lot"], headers={"Authorization": f"Bearer {keys['qa']}"})
    assert bearer.status_code == 200


def test_unknown_ids_are_404(client, keys):
    for url, what in (
        ("/v1/shipments/SHP-000000-000000/timeline", "no shipment SHP-000000-000000"),
        ("/v1/lots/L000000-0-00/trace", "no lot L000000-0-00"),
        ("/v1/batches/BT-NONE/trace", "no batch BT-NONE"),
    ):
        response = get(client, url, keys["privacy_officer"])
        assert response.status_code == 404 and response.json()["detail"].startswith(what)


@pytest.mark.parametrize(
    ("url", "query", "field"),
    [
        ("/v1/analytics/delivery-performance", {"period": "year"}, "period"),
        ("/v1/analytics/delivery-performance", {"group_by": "pharmacy"}, "group_by"),
        ("/v1/analytics/delivery-performance", {"date_from": "2026-13-01"}, "date_from"),
        ("/v1/analytics/delivery-performance", {"carrier_id": "x" * 65}, "carrier_id"),
        (
            "/v1/analytics/delivery-performance",
            {"date_from": "2026-11-05", "date_to": "2026-11-01"},
            "date_to",
        ),
        ("/v1/shipments/excursions", {"limit": 0}, "limit"),
        ("/v1/shipments/excursions", {"limit": 501}, "limit"),
        ("/v1/shipments/excursions", {"cursor": "not-a-cursor"}, "cursor"),
        ("/v1/feedback/comments", {"category": "HAPPY"}, "category"),
        ("/v1/analytics/feedback", {"period": "hour"}, "period"),
        ("/v1/lots/" + "L" * 65 + "/trace", {}, "lot"),
        ("/v1/batches/bad%20id/trace", {}, "batch_id"),
        ("/v1/shipments/%3Bdrop/timeline", {}, "shipment_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, keys, url, query, field):
    response = get(client, url, keys["privacy_officer"], **query)
    assert response.status_code == 422, response.text
    assert field in [e["loc"][-1] for e in response.json()["detail"]]


def test_timeline_body_is_the_query_layers(client, keys, ids, ctx):
    body = get(client, paths(ids)["timeline"], keys["analyst"]).json()
    expected = logistics.shipment_timeline(ctx, ids["shipment"])
    assert body["shipment"]["excursion_minutes"] == expected["shipment"]["excursion_minutes"] > 0
    assert [s["event_id"] for s in body["scans"]] == [s["event_id"] for s in expected["scans"]]
    assert len(body["temperatures"]["points"]) == len(expected["temperatures"]["points"])
    assert body["live"]["minutes_out_of_range"] == expected["live"]["minutes_out_of_range"]


def test_delivery_performance_body(client, keys, ctx):
    body = get(
        client,
        "/v1/analytics/delivery-performance",
        keys["viewer"],
        group_by="carrier",
        period="day",
        carrier_id="CR-UPS",
    ).json()
    expected = logistics.delivery_performance(
        ctx, Filters(carrier_id="CR-UPS"), ("carrier",), "day"
    )
    assert body["group_by"] == ["carrier"] and body["period"] == "day"
    assert [(r["period"], r["shipments"], r["on_time_pct"]) for r in body["items"]] == [
        (r["period"].isoformat(), r["shipments"], r["on_time_pct"]) for r in expected["items"]
    ]
    total = get(client, "/v1/analytics/delivery-performance", keys["viewer"], group_by="none")
    assert sum(r["shipments"] for r in total.json()["items"]) == sum(
        r["shipments"] for r in logistics.delivery_performance(ctx, Filters(), ())["items"]
    )


def _all_pages(client: TestClient, url: str, key: str, limit: int, **query: Any) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": limit, **query} | ({"cursor": cursor} if cursor else {})
        body = get(client, url, key, **params).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_excursion_pages_concatenate_without_repeats(client, keys, ctx):
    items = _all_pages(client, "/v1/shipments/excursions", keys["analyst"], 3)
    ids = [e["shipment_id"] for e in items]
    with ctx.reading() as q:
        count = q.one(
            "test.excursions",
            "select count(*) as n from gold.fact_shipment where excursion_minutes > 0",
        )
    assert len(ids) == len(set(ids)) == count["n"] > 3


def test_comment_pages_concatenate_without_repeats(client, keys, ctx):
    items = _all_pages(client, "/v1/feedback/comments", keys["analyst"], 25)
    ids = [c["survey_id"] for c in items]
    with ctx.reading() as q:
        count = q.one(
            "test.comments",
            "select count(*) as n from gold.fact_survey where trim(comment) <> ''",
        )
    assert len(ids) == len(set(ids)) == count["n"] > 25
    detractors = _all_pages(
        client, "/v1/feedback/comments", keys["analyst"], 500, category="DETRACTOR"
    )
    assert detractors and {c["nps_category"] for c in detractors} == {"DETRACTOR"}


def test_trace_bodies_are_the_query_layers(client, keys, ids, ctx):
    lot = get(client, paths(ids)["lot"], keys["qa"]).json()
    expected = recall.lot_trace(ctx, ids["lot"])
    assert lot["counts"] == expected["counts"]
    assert lot["patient_keys"] == expected["patient_keys"]
    assert all(k.startswith("pk_") for k in lot["patient_keys"])
    assert len(lot["graph"]["edges"]) == len(expected["graph"]["edges"])
    batch = get(client, paths(ids)["batch"], keys["analyst"]).json()
    assert batch["query"] == "batch" and batch["lots"] == [ids["lot"]]
    assert batch["counts"] == lot["counts"]


def test_feedback_body(client, keys, ctx):
    body = get(client, "/v1/analytics/feedback", keys["viewer"], period="day").json()
    expected = feedback.nps_trend(ctx, Filters(), "day")
    assert body["overall"]["nps"] == expected["overall"]["nps"]
    assert [p["nps"] for p in body["trend"]] == [p["nps"] for p in expected["items"]]
    assert [r["surveys"] for r in body["ratings"]] == [
        r["surveys"] for r in feedback.rating_distribution(ctx, Filters())
    ]


def test_no_raw_patient_identifier_in_any_body(client, keys, ids, served):
    bodies = [get(client, url, keys["privacy_officer"]).text for url in paths(ids).values()]
    bodies += [
        get(client, "/v1/feedback/comments", keys["analyst"], limit=500).text,
        get(client, "/v1/shipments/excursions", keys["analyst"], limit=500).text,
    ]
    assert_no_phi(bodies, raw_phi(served.events))


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/shipments/{shipment_id}/timeline",
        "/v1/shipments/excursions",
        "/v1/analytics/delivery-performance",
        "/v1/lots/{lot}/trace",
        "/v1/batches/{batch_id}/trace",
        "/v1/analytics/feedback",
        "/v1/feedback/comments",
    ):
        operation = spec["paths"][path]["get"]
        assert {"200", "401", "403"} <= set(operation["responses"]), path
    schema = spec["components"]["schemas"]["RecallTrace"]["properties"]
    assert "Distinct pseudonymous patients" in schema["patient_keys"]["description"]
