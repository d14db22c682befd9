"""`require(scope)` over real HTTP (TestClient) and a real key store: 401 without a key, 401
with one message for a malformed, unknown, wrong or revoked key, 403 for the wrong role,
200 for the right one; no response repeats key material."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from pharmaflow.serve.api.auth import INVALID_KEY, MISSING_KEY, require
from pharmaflow.serve.security.keys import Principal
from pharmaflow.serve.security.roles import Role, Scope


@pytest.fixture
def client(store):
    app = FastAPI()

    @app.get("/aggregates")
    def aggregates(principal: Principal = Depends(require(Scope.aggregates))) -> dict:
        return {"key_id": principal.key_id, "role": principal.role}

    @app.get("/rows")
    def rows(principal: Principal = Depends(require(Scope.rows))) -> dict:
        return {"key_id": principal.key_id, "role": principal.role}

    app.state.services = SimpleNamespace(keys=store.keys)  # auth reads only `.keys`
    with TestClient(app) as c:
        yield c


def key(store, role: Role) -> tuple[str, str]:
    info, raw = store.keys.create(f"{role} client", role, actor="test")
    return info.key_id, raw


def test_no_key_is_401_saying_where_to_send_it(client):
    response = client.get("/aggregates")
    assert response.status_code == 401
    assert response.json() == {"detail": MISSING_KEY}
    assert response.headers["www-authenticate"] == "ApiKey"
    assert client.get("/aggregates", headers={"X-API-Key": "  "}).json() == {"detail": MISSING_KEY}


def test_malformed_unknown_wrong_and_revoked_keys_get_the_same_401(client, store):
    key_id, raw = key(store, Role.analyst)
    secret = raw.split("_", 2)[2]
    bad = [
        "hello",
        f"pf_{key_id}_" + "A" * 43,  # a real id, a wrong secret
        "pf_0123456789ab_" + secret,  # an unknown id
    ]
    for candidate in bad:
        response = client.get("/aggregates", headers={"X-API-Key": candidate})
        assert (response.status_code, response.json()) == (401, {"detail": INVALID_KEY})
        assert response.headers["www-authenticate"] == "ApiKey"
        assert secret not in response.text and candidate not in response.text
    assert client.get("/aggregates", headers={"X-API-Key": raw}).status_code == 200
    store.keys.revoke(key_id, actor="test", reason="compromised in a log")
    response = client.get("/aggregates", headers={"X-API-Key": raw})
    assert (response.status_code, response.json()) == (401, {"detail": INVALID_KEY})


def test_the_wrong_role_is_403_naming_the_role_and_the_roles_that_may(client, store):
    _, raw = key(store, Role.viewer)
    response = client.get("/rows", headers={"X-API-Key": raw})
    assert response.status_code == 403
    assert response.json() == {
        "detail": "the viewer role may not read row-level data (orders, shipments, stuck "
        "orders, alerts, lot traces); roles that may: analyst, privacy_officer"
    }
    assert raw.split("_", 2)[2] not in response.text


def test_the_right_role_passes_with_either_header(client, store):
    key_id, raw = key(store, Role.analyst)
    for headers in ({"X-API-Key": raw}, {"Authorization": f"Bearer {raw}"}):
        response = client.get("/rows", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"key_id": key_id, "role": "analyst"}
    viewer = key(store, Role.viewer)[1]
    assert (
        client.get("/aggregates", headers={"Authorization": f"Bearer {viewer}"}).json()["role"]
        == "viewer"
    )


def test_openapi_declares_the_key_schemes_for_the_authorize_button(client):
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["APIKeyHeader"]["description"],
    }
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert {"APIKeyHeader": []} in spec["paths"]["/rows"]["get"]["security"]


def test_a_route_may_accept_any_of_several_scopes(store):
    app = FastAPI()

    @app.get("/trace")
    def trace(
        principal: Principal = Depends(require(Scope.rows, Scope.quality, what="read lot traces")),
    ) -> dict:
        return {"role": principal.role}

    app.state.services = SimpleNamespace(keys=store.keys)
    with TestClient(app) as c:
        for role in (Role.analyst, Role.qa, Role.privacy_officer):
            assert c.get("/trace", headers={"X-API-Key": key(store, role)[1]}).status_code == 200
        denied = c.get("/trace", headers={"X-API-Key": key(store, Role.viewer)[1]})
        assert denied.json() == {
            "detail": "the viewer role may not read lot traces; roles that may: analyst, qa, "
            "privacy_officer"
        }
