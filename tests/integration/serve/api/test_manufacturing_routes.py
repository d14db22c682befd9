"""The plant routes over real HTTP (TestClient on create_app) with real keys: the right role gets
the query layer's answer, no key is 401, the wrong role 403, an unknown batch 404, bad input
422 naming the parameter; and no body carries a patient identifier."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pharmaflow.serve.api.app import create_app
from pharmaflow.serve.query import compliance, manufacturing
from pharmaflow.serve.query.base import Filters, Page, QueryContext, encode_cursor
from pharmaflow.serve.security.store import open_security
from pharmaflow.simulate.people import patient_pool
from tests.phi_scan import leaks, phi_values, text_strings
from tests.serve_data import SERVED

ROLES = ("viewer", "analyst", "qa", "privacy_officer", "collector")


@pytest.fixture(scope="module")
def api(served, tmp_path_factory: pytest.TempPathFactory):
    """A client, a raw key per role (in a security store of this module's own: the served
    data dir stays as built), the query layer for expected answers, and every body seen."""
    root: Path = tmp_path_factory.mktemp("manufacturing-api")
    settings = served.settings.model_copy(update={"security_store": str(root / "security.db")})
    keys, _audit = open_security(settings)
    raw = {
        role: keys.create(f"{role} test", role, actor="test", reason="test")[1] for role in ROLES
    }
    keys.close()
    bodies: list[str] = []
    with TestClient(create_app(settings)) as client:
        # the app's own query layer (one per process, as in serving) for the expected answers
        ctx: QueryContext = client.app.state.services.queries

        def get(url: str, role: str | None = "qa", **params):
            headers = {} if role is None else {"X-API-Key": raw[role]}
            response = client.get(url, headers=headers, params=params)
            bodies.append(response.text)
            return response

        yield get, ctx, bodies


def batch_with_everything(ctx: QueryContext) -> str:
    with ctx.reading() as q:
        return q.rows(
            "test_batch",
            "select batch_id from gold.fact_batch_production where deviations > 0 "
            "and lab_tests > 0 order by batch_id limit 1",
        )[0]["batch_id"]


def test_a_batch_record_for_qa_and_the_privacy_officer(api):
    get, ctx, _ = api
    batch_id = batch_with_everything(ctx)
    expected = manufacturing.batch_detail(ctx, batch_id)
    for role in ("qa", "privacy_officer"):
        response = get(f"/v1/batches/{batch_id}", role)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["batch_id"] == batch_id and body["in_warehouse"] is True
        assert body["status"]["quality_flag"] == expected["status"]["quality_flag"]
        assert body["status"]["sensor_readings"] == sum(s["readings"] for s in body["sensors"])
        assert [r["test_id"] for r in body["lab_results"]] == [
            r["test_id"] for r in expected["lab_results"]
        ]
        assert [d["deviation_id"] for d in body["deviations"]] == [
            d["deviation_id"] for d in expected["deviations"]
        ]
        assert body["live"]["clock"] is not None


def test_batch_routes_refuse_no_key_and_the_wrong_roles(api):
    get, ctx, _ = api
    batch_id = batch_with_everything(ctx)
    for url in (
        f"/v1/batches/{batch_id}",
        "/v1/batches",
        f"/v1/batches/{batch_id}/sensors",
        "/v1/deviations",
    ):
        assert get(url, None).status_code == 401
        for role in ("viewer", "analyst", "collector"):
            response = get(url, role)
            assert response.status_code == 403, (url, role)
            assert f"the {role} role may not read quality records" in response.json()["detail"]
    for url in ("/v1/analytics/batch-quality", "/v1/analytics/deviations"):
        assert get(url, None).status_code == 401
        assert get(url, "collector").status_code == 403
        for role in ("viewer", "analyst", "qa", "privacy_officer"):
            assert get(url, role).status_code == 200, (url, role)


def test_an_unknown_batch_is_404_saying_so(api):
    get, _, _ = api
    for url in ("/v1/batches/BT-NOPE-01", "/v1/batches/BT-NOPE-01/sensors"):
        response = get(url)
        assert response.status_code == 404
        assert response.json()["detail"].startswith("no batch BT-NOPE-01 in the warehouse (built ")


def test_bad_input_is_422_naming_the_parameter(api):
    get, _, _ = api
    cases = [
        ("/v1/batches", {"date_from": "2026-13-01"}, ["query", "date_from"]),
        ("/v1/batches", {"date_to": "yesterday"}, ["query", "date_to"]),
        ("/v1/batches", {"date_to": "0"}, ["query", "date_to"]),
        ("/v1/analytics/batch-quality", {"date_from": "1762000000"}, ["query", "date_from"]),
        ("/v1/batches", {"date_to": "9999-12-31"}, ["query", "date_to"]),
        ("/v1/analytics/deviations", {"date_from": "9999-12-31"}, ["query", "date_from"]),
        ("/v1/batches", {"date_from": "2026-11-05", "date_to": "2026-11-01"}, ["query", "date_to"]),
        ("/v1/batches", {"limit": 0}, ["query", "limit"]),
        ("/v1/batches", {"limit": 501}, ["query", "limit"]),
        ("/v1/batches", {"site_id": "P" * 65}, ["query", "site_id"]),
        ("/v1/batches", {"site_id": "PL-01; drop table x"}, ["query", "site_id"]),
        ("/v1/batches", {"quality_flag": "GOOD"}, ["query", "quality_flag"]),
        ("/v1/batches", {"cursor": "not-ours"}, ["query", "cursor"]),
        ("/v1/batches", {"cursor": encode_cursor([1])}, ["query", "cursor"]),
        ("/v1/deviations", {"cursor": encode_cursor([{"a": 1}])}, ["query", "cursor"]),
        ("/v1/deviations", {"open_only": "perhaps"}, ["query", "open_only"]),
        ("/v1/analytics/batch-quality", {"date_from": "11/01/2026"}, ["query", "date_from"]),
        ("/v1/analytics/deviations", {"site_id": ""}, ["query", "site_id"]),
        (
            "/v1/batches/BT-PL01-261101-01/sensors",
            {"sensor_type": "SOUND"},
            ["query", "sensor_type"],
        ),
    ]
    for url, params, loc in cases:
        response = get(url, **params)
        assert response.status_code == 422, (url, params, response.text)
        assert loc in [e["loc"] for e in response.json()["detail"]], (url, params)
    assert get("/v1/batches/" + "B" * 65).status_code == 422


def test_batch_pages_concatenate_to_every_batch(api):
    get, ctx, _ = api
    with ctx.reading() as q:
        total = q.one("test_count", "select count(*) as n from gold.fact_batch_production")["n"]
    ids, cursor = [], None
    while True:
        params = {"limit": 10} if cursor is None else {"limit": 10, "cursor": cursor}
        body = get("/v1/batches", **params).json()
        ids += [b["batch_id"] for b in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == total == len(set(ids))
    rejected = get("/v1/batches", quality_flag="REJECTED", limit=500).json()["items"]
    assert rejected and {b["quality_flag"] for b in rejected} == {"REJECTED"}


def test_sensor_trend_route(api):
    get, ctx, _ = api
    batch_id = batch_with_everything(ctx)
    body = get(f"/v1/batches/{batch_id}/sensors", sensor_type="TEMPERATURE").json()
    assert body["batch_id"] == batch_id and body["sensor_type"] == "TEMPERATURE"
    expected = manufacturing.sensor_trend(ctx, batch_id, "TEMPERATURE")
    assert [(p["sensor_id"], p["bucket"], p["readings"], p["value"]) for p in body["points"]] == [
        (p["sensor_id"], p["bucket"], p["readings"], p["value"]) for p in expected
    ]
    assert len(body["points"]) <= body["max_points_per_sensor"]


def test_deviations_route_pages_and_filters(api):
    get, ctx, _ = api
    everything = compliance.deviations(ctx, Filters(), Page(limit=500))["items"]
    body = get("/v1/deviations", limit=500).json()
    assert [d["deviation_id"] for d in body["items"]] == [d["deviation_id"] for d in everything]
    still_open = get("/v1/deviations", open_only="true", limit=500).json()["items"]
    assert {d["deviation_id"] for d in still_open} == {
        d["deviation_id"] for d in everything if d["is_open"]
    }


def test_analytics_routes_match_the_query_layer(api):
    get, ctx, _ = api
    trend = get("/v1/analytics/batch-quality", "viewer").json()["trend"]
    with ctx.reading() as q:
        kpi = q.one("test_kpi", "select * from gold.kpi_quality where scope = 'ALL'")
    assert sum(r["batches_finished"] for r in trend) == kpi["finished_batches"]
    assert sum(r["released"] for r in trend) == kpi["releasable_batches"]
    site = get("/v1/analytics/batch-quality", "viewer", site_id="PL-01").json()["trend"]
    assert site and {r["site_id"] for r in site} == {"PL-01"}
    body = get("/v1/analytics/deviations", "viewer").json()
    assert body["open"]["total"] == kpi["deviations"]
    assert body["open"]["open"] == kpi["open_deviations"]
    overall = body["investigation"]["by_severity"][0]
    assert overall["severity"] == "ALL" and overall["closed"] == kpi["closed_deviations"]
    assert overall["mean_days"] == pytest.approx(float(kpi["avg_investigation_days"]), abs=0.01)


def test_the_routes_are_documented(api):
    get, _, _ = api
    spec = get("/openapi.json", None).json()
    for path in (
        "/v1/batches/{batch_id}",
        "/v1/batches",
        "/v1/batches/{batch_id}/sensors",
        "/v1/deviations",
        "/v1/analytics/batch-quality",
        "/v1/analytics/deviations",
    ):
        operation = spec["paths"][path]["get"]
        assert {"200", "401", "403", "422"} <= set(operation["responses"]), path
        assert "$ref" in str(operation["responses"]["200"]["content"]["application/json"])
    detail = spec["components"]["schemas"]["BatchStatus"]["properties"]
    assert all(field.get("description") for field in detail.values())


def test_no_body_carries_a_patient_identifier(api):
    """Runs last in the module: every body the tests above received is scanned."""
    get, ctx, bodies = api
    for batch_id in manufacturing.batch_ids(ctx, Filters()):
        get(f"/v1/batches/{batch_id}")
    values, names = phi_values(patient_pool(SERVED))
    assert len(bodies) > 60
    assert leaks(text_strings(bodies), values, names) == []
