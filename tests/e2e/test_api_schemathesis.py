"""Schemathesis against the API's own OpenAPI document: no 5xx, every answer as documented.

The app runs in-process (ASGI) over the shared `served` data dir, with a security store of its
own (keys per role; re-identifications append to that store's audit trail, not the served
one) and the survey route writing into a scratch schema of the real PostgreSQL `test`
database, dropped afterwards. Every operation of the document is generated for (examples,
coverage and fuzzing phases, valid and invalid inputs), with a privacy officer's key (every
read scope); the two writing routes get fewer examples. Checks: no server error, responses
valid against their schema, and status codes the operation documents.

Separately: without a valid key every /v1 operation of the document answers 401; real
identifiers answer 200 as documented; dates at the ends of the calendar are no server error;
and the deployed server (uvicorn, `app_from_env`, real HTTP) answers 50 concurrent requests
exactly as the app answers them one at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from pharmaflow.config import Settings
from pharmaflow.serve.api.app import build_services, create_app
from pharmaflow.serve.api.auth import INVALID_KEY, MISSING_KEY
from pharmaflow.serve.surveys.store import SurveyStore
from tests.conftest import TEST_KEYS
from tests.e2e.serve_servers import (
    Server,
    api_server,  # noqa: F401 - a fixture
    create_keys,
)
from tests.pg import PG_DSN, scratch_schema

pytestmark = pytest.mark.slow

READ_EXAMPLES = 10
WRITE_EXAMPLES = 10
SURVEYS = "/v1/surveys"
REIDENTIFY = "/v1/patients/{patient_key}/reidentify"
WRITES = f"^({re.escape(SURVEYS)}|{re.escape(REIDENTIFY)})$"


class Unattached:
    """The app's services until the `api` fixture attaches the real ones: the schema is
    loaded when the module is collected (schemathesis parametrizes from it), but the served
    data dir exists only once the session fixture built it."""

    def close(self) -> None:
        pass


# The app whose OpenAPI document drives the tests (its routes, models and responses are
# those of any app; only `app.state.services` differs, set by the `api` fixture).
APP = create_app(Settings(data_dir=Path("unattached")), services=Unattached())  # type: ignore[arg-type]
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@dataclass(frozen=True)
class ApiUnderTest:
    app: FastAPI
    keys: dict[str, str]  # role -> raw API key
    survey_schema: str


def served_app_settings(root: Path, security_store: str) -> Settings:
    """The served data dir's settings (tests/serve_data.py), with this module's own store."""
    return Settings(
        data_dir=root,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        api_cache_seconds=0.0,
        security_store=security_store,
        survey_dsn=PG_DSN,
    )


@pytest.fixture(scope="module")
def api(served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiUnderTest]:
    store = str(tmp_path_factory.mktemp("schemathesis") / "security.db")
    keys = create_keys(store, served.settings.root)
    app_settings = served_app_settings(served.settings.root, store)
    with scratch_schema() as survey_schema:
        services = build_services(app_settings)
        services._surveys = SurveyStore(PG_DSN, survey_schema)
        APP.state.services = services
        try:
            yield ApiUnderTest(APP, keys, survey_schema)
        finally:
            APP.state.services = Unattached()
            services.close()  # before the scratch schema is dropped


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
]
FAST = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture]


def call_with_a_key(case: Any, api: ApiUnderTest) -> None:
    """A privacy officer may read everything; surveys are submitted by a collector (the one
    scope a privacy officer lacks)."""
    role = "collector" if case.operation.path == SURVEYS else "privacy_officer"
    case.call_and_validate(headers={"X-API-Key": api.keys[role]}, checks=CHECKS)


@settings(max_examples=READ_EXAMPLES, deadline=None, suppress_health_check=FAST)
@schema.exclude(path_regex=WRITES).parametrize()
def test_read_routes_conform_to_their_schema(case: Any, api: ApiUnderTest) -> None:
    call_with_a_key(case, api)


@settings(max_examples=WRITE_EXAMPLES, deadline=None, suppress_health_check=FAST)
@schema.include(path_regex=WRITES).parametrize()
def test_writing_routes_conform_to_their_schema(case: Any, api: ApiUnderTest) -> None:
    call_with_a_key(case, api)


def real_identifiers(events: Path) -> dict[str, list[str]]:
    """Path parameter name -> identifiers the served warehouse holds, from the raw events:
    an order that was shipped and its shipment, the first batch and its lot, a pharmacy and
    a plant (each kind of facility answers with its own metrics)."""
    found: dict[str, list[str]] = {}
    wanted = {"pharmacy.order.shipped", "manufacturing.batch.status", "pharmacy.order.placed"}
    with open(events, "rb") as fh:
        for line in fh:
            try:
                event = orjson.loads(line)
                kind, payload = event["event_type"], event["payload"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if kind not in wanted:
                continue
            wanted.discard(kind)
            if kind == "pharmacy.order.shipped":
                found["order_id"] = [payload["order_id"]]
                found["shipment_id"] = [payload["shipment_id"]]
            elif kind == "manufacturing.batch.status":
                found["batch_id"] = [payload["batch_id"]]
                found["lot"] = [payload["lot_number"]]
                found.setdefault("facility_id", []).append(payload["site_id"])
            else:
                found.setdefault("facility_id", []).append(payload["pharmacy_id"])
            if not wanted:
                break
    return found


def test_real_identifiers_answer_200_as_documented(served, api: ApiUnderTest) -> None:
    """Generated ids miss the data (404s); here every GET with path parameters is called with
    ids the warehouse holds, so each 200 body is checked against its schema too. A route
    with a parameter this test has no identifier for fails: add one to real_identifiers."""
    ids = real_identifiers(served.events)
    headers = {"X-API-Key": api.keys["privacy_officer"]}
    called = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET" or "{" not in operation.path:
            continue
        names = re.findall(r"{(\w+)}", operation.path)
        missing = [n for n in names if n not in ids]
        assert not missing, f"{operation.label}: no real identifier for {missing}"
        for i in range(max(len(ids[n]) for n in names)):
            values = {n: ids[n][min(i, len(ids[n]) - 1)] for n in names}
            case = operation.Case(path_parameters=values)
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            assert response.status_code == 200, (operation.label, values, response.text[:300])
            called.append(operation.label)
    assert called, "no GET operation with path parameters"


def test_a_privacy_officer_reidentifies_a_real_patient_key(served, api: ApiUnderTest) -> None:
    """The one response with identifiers, for a patient key the API itself handed out."""
    ids = real_identifiers(served.events)
    client = TestClient(api.app)
    order = client.get(
        f"/v1/orders/{ids['order_id'][0]}/timeline",
        headers={"X-API-Key": api.keys["analyst"]},
    ).json()["order"]
    key = order["patient_key"]
    operation = schema[REIDENTIFY]["POST"]
    case = operation.Case(
        path_parameters={"patient_key": key},
        body={"reason": "e2e test: schema of a real re-identification"},
    )
    response = case.call_and_validate(
        headers={"X-API-Key": api.keys["privacy_officer"]}, checks=CHECKS
    )
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert body["patient_key"] == key and body["identifiers"] and body["audit_seq"] >= 1


def example_path(path: str, parameters: list[dict[str, Any]]) -> str:
    """The path with each path parameter filled by a value its pattern accepts."""
    values = {"patient_key": "pk_" + "0" * 32}
    for p in parameters:
        if p.get("in") == "path":
            path = path.replace("{" + p["name"] + "}", values.get(p["name"], "X-1"))
    return path


def operations(app: FastAPI, prefix: str = "/") -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of every operation in the app's OpenAPI document."""
    return [
        (method.upper(), path, op)
        for path, ops in app.openapi()["paths"].items()
        if path.startswith(prefix)
        for method, op in ops.items()
    ]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [({}, MISSING_KEY), ({"X-API-Key": "pf_000000000000_" + "A" * 43}, INVALID_KEY)],
    ids=["no key", "unknown key"],
)
def test_every_v1_operation_answers_401_without_a_valid_key(
    api: ApiUnderTest, headers: dict[str, str], detail: str
) -> None:
    v1 = operations(api.app, "/v1/")
    assert len(v1) >= 10, sorted(p for _, p, _ in v1)
    client = TestClient(api.app)  # no `with`: the module's lifespan is schemathesis's
    answers = {}
    for method, path, op in v1:
        url = example_path(path, op.get("parameters", []))
        body = {} if "requestBody" in op else None
        response = client.request(method, url, json=body, headers=headers)
        answers[f"{method} {path}"] = (
            response.status_code,
            response.json(),
            response.headers.get("www-authenticate"),
        )
    wrong = {k: v for k, v in answers.items() if v != (401, {"detail": detail}, "ApiKey")}
    assert not wrong, wrong


EXTREME_DATES = [
    {"date_from": "0001-01-01"},
    {"date_to": "9999-12-31"},
    {"date_from": "9999-12-31", "date_to": "9999-12-31"},
]


def test_dates_at_the_ends_of_the_calendar_are_no_server_error(api: ApiUnderTest) -> None:
    """Every operation filtering by dates, with the first and last days `date` holds: an
    answer or a 4xx, never a 5xx (a day's end past 9999-12-31 overflows datetime)."""
    client = TestClient(api.app, raise_server_exceptions=False)
    headers = {"X-API-Key": api.keys["privacy_officer"]}
    failures = {}
    tried = 0
    for method, path, op in operations(api.app):
        names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        if method != "GET" or not {"date_from", "date_to"} <= names:
            continue
        url = example_path(path, op.get("parameters", []))
        for params in EXTREME_DATES:
            tried += 1
            response = client.get(url, params=params, headers=headers)
            if response.status_code >= 500:
                query = "&".join(f"{k}={v}" for k, v in params.items())
                failures[f"GET {url}?{query}"] = f"{response.status_code} {response.text[:200]}"
    assert tried, "no operation filters by date"
    assert not failures, "\n".join(f"{k}: {v}" for k, v in sorted(failures.items()))


# --------------------------------------------------------------------------- the deployed server


def test_the_deployed_server_answers_50_concurrent_requests_like_the_app_serially(
    served,
    api: ApiUnderTest,
    api_server: Server,  # noqa: F811 - the fixture
) -> None:
    """uvicorn running `app_from_env` (as `pharmaflow serve` deploys it) over real HTTP, 50
    requests in flight at once, gives byte for byte what the in-process app answers one at a
    time: the KPI routes and every route with a path parameter, on real identifiers."""
    ids = real_identifiers(served.events)
    paths = ["/v1/kpis/daily", "/v1/kpis/realtime", "/v1/kpis/timeseries?interval=day"]
    for method, path, _op in operations(api.app, "/v1/"):
        names = re.findall(r"{(\w+)}", path)
        if method == "GET" and names and all(n in ids for n in names):
            paths.append(re.sub(r"{(\w+)}", lambda m: ids[m[1]][0], path))
    client = TestClient(api.app)
    serial = {}
    for path in paths:
        response = client.get(path, headers={"X-API-Key": api.keys["privacy_officer"]})
        assert response.status_code == 200, (path, response.text[:300])
        serial[path] = response.content
    wanted = [paths[i % len(paths)] for i in range(max(50, 2 * len(paths)))]
    headers = {"X-API-Key": api_server.keys["privacy_officer"]}
    with (
        httpx.Client(base_url=api_server.url, headers=headers, timeout=60.0) as http,
        ThreadPoolExecutor(max_workers=50) as pool,
    ):
        answers = list(pool.map(lambda p: (p, http.get(p)), wanted))
    wrong = [p for p, r in answers if r.status_code != 200 or r.content != serial[p]]
    assert not wrong, f"{len(wrong)} of {len(answers)} differ from the serial answers: {wrong[:5]}"
