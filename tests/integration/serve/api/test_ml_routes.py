"""The ML routes over real HTTP (TestClient on the real app, real keys in the data dir's
security store), on the 9-week data dir that `pharmaflow train` and `pharmaflow score` ran on
(`ml_scored`): answers equal the query layer's and the gold score tables', each row carries
the version that scored it, every 401/403/422 path, pages that concatenate without repeats, no
PHI in any body; and on a data dir never scored (`served`), empty lists rather than errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pharmaflow.serve.api.app import create_app
from pharmaflow.serve.api.routes.ml import Elasticities, Forecast, Models, ShipmentRiskPage
from pharmaflow.serve.query import ml
from pharmaflow.serve.query.base import Filters, Page, QueryContext
from pharmaflow.simulate.people import patient_pool
from tests.phi_scan import phi_values
from tests.serve_data import api_keys, assert_no_phi

pytestmark = pytest.mark.slow  # `ml_scored` trains and scores every model

ROLES = ("viewer", "analyst", "qa", "privacy_officer", "collector")
URLS = {
    "delay": "/v1/ml/delay-risk",
    "forecast": "/v1/ml/demand-forecast",
    "elasticity": "/v1/ml/price-elasticity",
    "models": "/v1/ml/models",
}
# Delay risk lists shipments (rows: analyst, privacy officer); the rest are aggregates (every
# reading role, not the survey collector).
AGGREGATE_ROLES = {"viewer", "analyst", "qa", "privacy_officer"}
ALLOWED = {
    "delay": {"analyst", "privacy_officer"},
    "forecast": AGGREGATE_ROLES,
    "elasticity": AGGREGATE_ROLES,
    "models": AGGREGATE_ROLES,
}
# Every scored shipment, delivered or not, at any risk.
EVERY_SHIPMENT = {"min_probability": 0, "open_only": "false"}


@pytest.fixture(scope="module")
def keys(ml_scored) -> dict[str, str]:
    return api_keys(ml_scored.settings, "ml-routes")


@pytest.fixture(scope="module")
def client(ml_scored) -> Iterator[TestClient]:
    with TestClient(create_app(ml_scored.settings)) as c:
        yield c


@pytest.fixture(scope="module")
def ctx(client) -> QueryContext:
    """The app's own query layer (a second one in this process would open the snapshot
    again), for the expected answers."""
    return client.app.state.services.queries


@pytest.fixture(scope="module")
def versions(ml_scored) -> dict[str, str]:
    """The version `pharmaflow score` wrote, per task."""
    return {s["task"]: s["version"] for s in ml_scored.scored}


@pytest.fixture(scope="module")
def picks(ctx) -> dict[str, Any]:
    """Real values of the scored data to filter by: the busiest carrier of the scored
    shipments and the last week they were created in; the product and the pharmacy with the
    most forecast units, and the first forecast day."""
    with ctx.reading() as q:
        carrier = q.one(
            "test.carrier",
            "select carrier_id, cast(max(created_at) as date) as last_day "
            "from gold.ml_shipment_delay_scores group by carrier_id "
            "order by count(*) desc, carrier_id limit 1",
        )
        ndc = q.one(
            "test.ndc",
            "select ndc from gold.ml_demand_forecast group by ndc "
            "order by sum(forecast_units) desc, ndc limit 1",
        )
        pharmacy = q.one(
            "test.pharmacy",
            "select pharmacy_id from gold.ml_demand_forecast group by pharmacy_id "
            "order by sum(forecast_units) desc, pharmacy_id limit 1",
        )
        first = q.one("test.first", "select min(target_date) as day from gold.ml_demand_forecast")
    assert carrier and ndc and pharmacy and first
    last_day: date = carrier["last_day"]
    return {
        "carrier_id": carrier["carrier_id"],
        "week": (last_day - timedelta(days=6), last_day),
        "ndc": ndc["ndc"],
        "pharmacy_id": pharmacy["pharmacy_id"],
        "target_date": first["day"],
    }


def get(client: TestClient, url: str, key: str | None, **query: Any) -> Any:
    headers = {} if key is None else {"X-API-Key": key}
    return client.get(url, params=query, headers=headers)


def _all_pages(client: TestClient, key: str, limit: int, **query: Any) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": limit, **query} | ({"cursor": cursor} if cursor else {})
        response = get(client, URLS["delay"], key, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def _riskiest_first(items: list[dict]) -> bool:
    """Shown probabilities never rise down the list (ties in the shown 4-decimal value are in
    the order of the unrounded score, then shipment id: not checked here)."""
    risks = [i["delay_probability"] for i in items]
    return risks == sorted(risks, reverse=True)


def _query_pages(ctx: QueryContext, filters: Filters, min_probability: float, open_only: bool):
    """Every page of the query layer's delay risk, as the route serialises them."""
    items: list[dict] = []
    page = Page(limit=500)
    while True:
        found = ml.delay_risk(ctx, filters, page, min_probability, open_only)
        items += ShipmentRiskPage.model_validate(found).model_dump(mode="json")["items"]
        if found["next_cursor"] is None:
            return items
        page = Page(found["next_cursor"], 500)


def _forecast_totals(ctx: QueryContext, where: str = "", params: list[Any] | None = None):
    """Units and series per target day, summed straight from gold.ml_demand_forecast."""
    with ctx.reading() as q:
        rows = q.rows(
            f"test.forecast:{where}",
            "select target_date, sum(forecast_units) as units, count(*) as series "
            f"from gold.ml_demand_forecast where true{where} group by target_date",
            params or [],
        )
    return {r["target_date"].isoformat(): (r["units"], r["series"]) for r in rows}


def _by_day(items: list[dict]) -> dict[str, tuple[float, int]]:
    days: dict[str, tuple[float, int]] = {}
    for item in items:
        units, series = days.get(item["target_date"], (0.0, 0))
        days[item["target_date"]] = (units + item["forecast_units"], series + item["series"])
    return days


@pytest.fixture(scope="module")
def unscored_keys(served) -> dict[str, str]:
    return api_keys(served.settings, "ml-routes-unscored")


@pytest.fixture(scope="module")
def unscored(served) -> Iterator[TestClient]:
    """The served data dir: built (dbt creates the score tables empty), never scored."""
    with TestClient(create_app(served.settings)) as c:
        yield c


@pytest.mark.parametrize("name", list(URLS))
def test_before_any_scoring_each_route_answers_an_empty_list(unscored, unscored_keys, name):
    query = EVERY_SHIPMENT if name == "delay" else {}
    response = get(unscored, URLS[name], unscored_keys["privacy_officer"], **query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["items"] == [] and body["as_of"]
    if name == "delay":
        assert body["next_cursor"] is None


def test_each_role_gets_200_or_403(client, keys):
    for name, url in URLS.items():
        for role in ROLES:
            response = get(client, url, keys[role])
            if role in ALLOWED[name]:
                assert response.status_code == 200, (name, role, response.text)
            else:
                assert response.status_code == 403, (name, role)
                detail = response.json()["detail"]
                assert f"the {role} role may not" in detail and keys[role] not in detail
    detail = get(client, URLS["delay"], keys["viewer"]).json()["detail"]
    assert detail.endswith("roles that may: analyst, privacy_officer")


def test_missing_or_wrong_key_is_401(client, keys):
    for url in URLS.values():
        missing = get(client, url, None)
        assert missing.status_code == 401 and "missing API key" in missing.json()["detail"]
        wrong = get(client, url, keys["analyst"][:-2] + "xx")
        assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid or revoked API key"}


@pytest.mark.parametrize(
    ("name", "query", "field", "message"),
    [
        ("delay", {"min_probability": 2}, "min_probability", "less than or equal to 1"),
        ("delay", {"min_probability": -0.1}, "min_probability", "greater than or equal to 0"),
        ("delay", {"min_probability": "high"}, "min_probability", "valid number"),
        ("delay", {"open_only": "perhaps"}, "open_only", "valid boolean"),
        ("delay", {"date_from": "2026/11/01"}, "date_from", "should match pattern"),
        ("delay", {"date_to": "2026-02-30"}, "date_to", "date_to must be a day YYYY-MM-DD"),
        (
            "delay",
            {"date_from": "2026-11-05", "date_to": "2026-11-01"},
            "date_to",
            "date_to is before date_from",
        ),
        ("delay", {"carrier_id": "CR;drop"}, "carrier_id", "should match pattern"),
        ("delay", {"limit": 0}, "limit", "greater than or equal to 1"),
        ("delay", {"limit": 501}, "limit", "less than or equal to 500"),
        ("delay", {"cursor": "not-a-cursor"}, "cursor", "not a cursor this API returned"),
        ("forecast", {"date_from": "01-11-2026"}, "date_from", "should match pattern"),
        ("forecast", {"ndc": "0" * 21}, "ndc", "at most 20 characters"),
        ("forecast", {"pharmacy_id": "PH 004"}, "pharmacy_id", "should match pattern"),
    ],
)
def test_bad_input_is_422_with_a_clear_message(client, keys, name, query, field, message):
    response = get(client, URLS[name], keys["privacy_officer"], **query)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    errors = {e["loc"][-1]: e["msg"] for e in detail}
    assert field in errors and message in errors[field], errors
    assert all(set(e) == {"loc", "msg", "type"} for e in detail)  # the input is not echoed


@pytest.mark.parametrize(
    ("min_probability", "open_only"), [(0.1, True), (0.15, True), (0.0, False), (0.3, False)]
)
def test_delay_risk_is_the_query_layers_riskiest_first(
    client, keys, ctx, versions, min_probability, open_only
):
    body = get(
        client,
        URLS["delay"],
        keys["analyst"],
        min_probability=min_probability,
        open_only=str(open_only).lower(),
        limit=200,
    ).json()
    expected = ml.delay_risk(ctx, Filters(), Page(limit=200), min_probability, open_only)
    assert body == ShipmentRiskPage.model_validate(expected).model_dump(mode="json")
    items = body["items"]
    assert items, "no scored shipment at this risk: the check would be empty"
    assert all(i["delay_probability"] >= min_probability for i in items)
    assert _riskiest_first(items)
    assert {i["model_version"] for i in items} == {versions["shipment_delay"]}
    if open_only:
        assert all(i["delivered_at"] is None for i in items)
    else:
        assert any(i["delivered_at"] is not None for i in items)


def test_delay_risk_filters_narrow_the_answer(client, keys, ctx, picks):
    first, last = picks["week"]
    query = {
        **EVERY_SHIPMENT,
        "carrier_id": picks["carrier_id"],
        "date_from": first.isoformat(),
        "date_to": last.isoformat(),
    }
    items = _all_pages(client, keys["privacy_officer"], 500, **query)
    filters = Filters(date_from=first, date_to=last, carrier_id=picks["carrier_id"])
    assert items == _query_pages(ctx, filters, 0.0, False)
    assert items and {i["carrier_id"] for i in items} == {picks["carrier_id"]}
    assert all(first.isoformat() <= i["created_at"][:10] <= last.isoformat() for i in items)
    with ctx.reading() as q:
        counted = q.one(
            "test.carrier_week",
            "select count(*) as n from gold.ml_shipment_delay_scores where carrier_id = ? "
            "and cast(created_at as date) between ? and ?",
            [picks["carrier_id"], first, last],
        )
        total = q.one("test.scored", "select count(*) as n from gold.ml_shipment_delay_scores")
    assert counted and total and len(items) == counted["n"] < total["n"]


def test_delay_risk_pages_concatenate_without_repeats(client, keys, ml_scored):
    items = _all_pages(client, keys["analyst"], 500, **EVERY_SHIPMENT)
    ids = [i["shipment_id"] for i in items]
    scored = next(s for s in ml_scored.scored if s["task"] == "shipment_delay")
    assert len(ids) == len(set(ids)) == scored["rows"] > 500
    assert _riskiest_first(items)


def test_delay_risk_thresholds_compare_the_probability_shown(client, keys, ctx):
    """A shipment is kept exactly when the probability it is shown with (4 places) is at or
    above the threshold: one shown at the threshold is there, none reads below it, and a
    hair above the threshold leaves it out."""
    with ctx.reading() as q:
        row = q.one(
            "test.rounding",
            "select shipment_id, round(cast(delay_probability as double), 4) as shown "
            "from gold.ml_shipment_delay_scores "
            "where round(cast(delay_probability as double), 4) <> delay_probability "
            "order by delay_probability desc, shipment_id limit 1 offset 20",
        )
    assert row is not None
    items = _all_pages(
        client, keys["analyst"], 500, min_probability=row["shown"], open_only="false"
    )
    assert row["shipment_id"] in {i["shipment_id"] for i in items}
    assert all(i["delay_probability"] >= row["shown"] for i in items), row
    hair = row["shown"] + 5e-5
    above = _all_pages(client, keys["analyst"], 500, min_probability=hair, open_only="false")
    assert row["shipment_id"] not in {i["shipment_id"] for i in above}


def test_delay_risk_by_default_lists_the_open_shipments_the_model_predicts_late(client, keys, ctx):
    items = _all_pages(client, keys["analyst"], 500)
    with ctx.reading() as q:
        counted = q.one(
            "test.predicted_late",
            "select count(*) as n from gold.ml_shipment_delay_scores as s "
            "left join gold.fact_shipment as f on f.shipment_id = s.shipment_id "
            "where s.predicted_late and f.delivered_at is null",
        )
    assert counted and len(items) == counted["n"] > 0
    assert all(i["predicted_late"] and i["delivered_at"] is None for i in items)
    assert _riskiest_first(items)


def test_demand_forecast_totals_equal_the_gold_sums(client, keys, ctx, versions):
    body = get(client, URLS["forecast"], keys["viewer"]).json()
    assert body == Forecast.model_validate(ml.demand_forecast(ctx, Filters())).model_dump(
        mode="json"
    )
    items = body["items"]
    expected = _forecast_totals(ctx)
    assert items and set(_by_day(items)) == set(expected)
    for day, (units, series) in _by_day(items).items():
        assert units == pytest.approx(expected[day][0], abs=0.01), day
        assert series == expected[day][1]
    assert [i["target_date"] for i in items] == sorted(i["target_date"] for i in items)
    for item in items:
        horizon = date.fromisoformat(item["target_date"]) - date.fromisoformat(item["origin_date"])
        assert item["horizon_days"] == horizon.days > 0
        assert item["model_version"] == versions["demand_forecast"]


@pytest.mark.parametrize("narrow_by", ["ndc", "pharmacy_id", "ndc+pharmacy_id", "target_date"])
def test_demand_forecast_filters_narrow_the_answer(client, keys, ctx, picks, narrow_by):
    query: dict[str, Any] = {}
    where, params = "", []
    for name in ("ndc", "pharmacy_id"):
        if name in narrow_by.split("+"):
            query[name] = picks[name]
            where += f" and {name} = ?"
            params.append(picks[name])
    filters = Filters(pharmacy_id=query.get("pharmacy_id"))
    if narrow_by == "target_date":
        day = picks["target_date"]
        query |= {"date_from": day.isoformat(), "date_to": day.isoformat()}
        where, params = " and target_date = ?", [day]
        filters = Filters(date_from=day, date_to=day)
    body = get(client, URLS["forecast"], keys["qa"], **query).json()
    expected = ml.demand_forecast(ctx, filters, query.get("ndc"))
    assert body == Forecast.model_validate(expected).model_dump(mode="json")
    narrowed, everything = _by_day(body["items"]), _forecast_totals(ctx)
    totals = _forecast_totals(ctx, where, params)
    assert narrowed and set(narrowed) == set(totals)
    for day, (units, series) in narrowed.items():
        assert units == pytest.approx(totals[day][0], abs=0.01), day
        assert series == totals[day][1]
        if narrow_by == "target_date":
            assert units == pytest.approx(everything[day][0], abs=0.01)
            assert series == everything[day][1]
        else:
            assert units < everything[day][0] and series < everything[day][1]
    if narrow_by == "target_date":
        assert len(narrowed) == 1 < len(everything)
    unknown = get(client, URLS["forecast"], keys["qa"], ndc="00000-0000-00")
    assert unknown.status_code == 200 and unknown.json()["items"] == []


def test_price_elasticity_is_one_negative_estimate_per_product(client, keys, ctx, ml_scored):
    body = get(client, URLS["elasticity"], keys["viewer"]).json()
    assert body == Elasticities.model_validate(ml.elasticities(ctx)).model_dump(mode="json")
    items = body["items"]
    ndcs = [i["ndc"] for i in items]
    with ctx.reading() as q:
        products = q.rows(
            "test.elasticity_products",
            "select distinct ndc from gold.ml_price_elasticity order by ndc",
        )
    scored = next(s for s in ml_scored.scored if s["task"] == "price_elasticity")
    assert ndcs == sorted(set(ndcs)) == [p["ndc"] for p in products]
    assert len(items) == scored["rows"] > 1
    for item in items:
        assert item["ci_low"] <= item["elasticity"] <= item["ci_high"], item
        assert item["elasticity"] < 0, item
        assert item["product_name"] and item["method"]
        assert item["model_version"] == scored["version"]


def test_models_lists_every_scored_version(client, keys, ml_scored):
    body = get(client, URLS["models"], keys["qa"]).json()
    listed = {(m["model_name"], m["model_version"]): m for m in body["items"]}
    assert len(listed) == len(body["items"])
    assert set(listed) == {(s["model_name"], s["version"]) for s in ml_scored.scored}
    for scored in ml_scored.scored:
        model = listed[(scored["model_name"], scored["version"])]
        assert model["rows"] == scored["rows"] > 0, scored["task"]
        assert f"gold.{model['scores_table']}" == scored["table"]
        assert model["scored_at"] <= body["as_of"]  # scored, then published
    tables = [m["scores_table"] for m in body["items"]]
    assert tables == sorted(tables)
    assert Models.model_validate(body).model_dump(mode="json") == body


def test_no_raw_patient_identifier_in_any_body(client, keys, ml_warehouse):
    """The PHI of the ML data dir's own simulated patients (not the served one's pool)."""
    phi = phi_values(patient_pool(ml_warehouse.config))
    assert phi[0] and phi[1]
    bodies = [get(client, url, keys["privacy_officer"]).text for url in URLS.values()]
    bodies += [
        get(client, URLS["delay"], keys["analyst"], limit=500, **EVERY_SHIPMENT).text,
        get(client, URLS["delay"], keys["analyst"], limit=500, min_probability=0.1).text,
    ]
    assert_no_phi(bodies, phi)


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    for url in URLS.values():
        operation = spec["paths"][url]["get"]
        assert {"200", "401", "403"} <= set(operation["responses"]), url
    names = [p["name"] for p in spec["paths"][URLS["delay"]]["get"]["parameters"]]
    assert {"min_probability", "open_only", "carrier_id", "cursor", "limit"} <= set(names)
    schema = spec["components"]["schemas"]["ShipmentRisk"]["properties"]
    assert "chance of a late delivery" in schema["delay_probability"]["description"]
