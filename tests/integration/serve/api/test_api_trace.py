"""Trace ids through the API: `X-Trace-Id` / `traceparent` round trip, a fresh id when none
or a bad one is sent, and one JSON access line per request without keys, queries or ids."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pharmaflow import logs, tracing
from pharmaflow.serve.api.access import TraceAccessMiddleware
from pharmaflow.serve.api.app import create_app
from tests.serve_data import ServedData, api_keys

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def keys(served: ServedData) -> dict[str, str]:
    return api_keys(served.settings, prefix="trace")


@pytest.fixture
def access_log(tmp_path: Path) -> Iterator[Path]:
    """The run log in a folder of this test's (the served data dir is read only)."""
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    path = logs.configure(tmp_path / "logs", "INFO")
    assert path is not None
    yield path
    logs.reset()
    root.setLevel(level)


@pytest.fixture
def client(served: ServedData) -> Iterator[TestClient]:
    app = create_app(served.settings)

    @app.get("/test-boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret detail MRN00123456")

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def access_lines(path: Path) -> list[dict]:
    got = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in got if line["msg"] == "http_request"]


def test_an_x_trace_id_comes_back_and_is_logged(client, access_log):
    response = client.get("/health", headers={"X-Trace-Id": "client-req.42:a"})
    assert response.status_code == 200
    assert response.headers["X-Trace-Id"] == "client-req.42:a"
    [line] = access_lines(access_log)
    assert line["trace_id"] == "client-req.42:a" and line["trace_origin"] == "x-trace-id"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/health", 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def test_a_traceparent_gives_the_trace_id(client, access_log):
    response = client.get("/health", headers={"traceparent": TRACEPARENT, "X-Trace-Id": "other"})
    assert response.headers["X-Trace-Id"] == TRACE
    [line] = access_lines(access_log)
    assert (line["trace_id"], line["trace_origin"]) == (TRACE, "traceparent")


def test_no_header_gets_a_fresh_id_per_request(client, access_log):
    ids = [client.get("/health").headers["X-Trace-Id"] for _ in range(3)]
    assert len(set(ids)) == 3 and all(tracing.is_trace_id(i) for i in ids)
    got = access_lines(access_log)
    assert [line["trace_id"] for line in got] == ids
    assert {line["trace_origin"] for line in got} == {"generated"}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Trace-Id": "x" * 10_240},
        {"X-Trace-Id": "two words"},
        {"X-Trace-Id": '{"msg":"forged"}'},
        {"traceparent": "00-not-a-trace-01"},
        {"X-Trace-Id": "Zuleika Okonkwo"},
    ],
)
def test_a_bad_header_is_replaced(client, access_log, headers):
    response = client.get("/health", headers=headers)
    assert response.status_code == 200
    trace_id = response.headers["X-Trace-Id"]
    assert tracing.is_trace_id(trace_id)
    [line] = access_lines(access_log)
    assert (line["trace_id"], line["trace_origin"]) == (trace_id, "replaced")
    text = access_log.read_text()
    for value in headers.values():
        assert value[:64] not in text


def test_a_crlf_header_is_replaced_and_never_echoed(access_log):
    """CRLF cannot travel through an HTTP client: handed straight to the ASGI middleware."""
    sent: list[dict] = []

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [(b"x-trace-id", b"abc\r\nX-Evil: 1"), (b"traceparent", b"00-\r\n")],
    }
    asyncio.run(TraceAccessMiddleware(app)(scope, receive, send))
    [(name, value)] = sent[0]["headers"]
    assert name.lower() == b"x-trace-id" and tracing.is_trace_id(value.decode())
    [line] = access_lines(access_log)
    assert line["trace_origin"] == "replaced" and line["route"] == "unmatched"
    assert "Evil" not in access_log.read_text()


def test_one_access_line_per_request_without_key_query_or_ids(
    client, access_log, keys, served: ServedData
):
    key = keys["analyst"]
    stuck = client.get("/v1/orders/stuck?limit=3", headers={"X-API-Key": key})
    assert stuck.status_code == 200
    orders = [o["order_id"] for o in stuck.json()["items"]] or ["ORD-NOT-THERE-1"]
    requests = [
        ("/v1/kpis/daily", {"X-API-Key": key}),
        (f"/v1/orders/{orders[0]}/timeline?token=querysecret", {"X-API-Key": key}),
        ("/v1/orders/stuck?limit=3", {"Authorization": f"Bearer {key}"}),
        ("/v1/kpis/daily", {}),  # no key: 401
        ("/v1/kpis/daily", {"X-API-Key": "pf_wrong_key_value"}),  # a wrong key: 401
        ("/no/such/path/MRN00123456", {}),  # 404, its path never logged
    ]
    statuses = [client.get(url, headers=headers).status_code for url, headers in requests]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [401, 401, 404]
    got = access_lines(access_log)
    assert len(got) == 1 + len(requests)
    assert [line["status"] for line in got] == [200, *statuses]
    assert [line["route"] for line in got] == [
        "/v1/orders/stuck",
        "/v1/kpis/daily",
        "/v1/orders/{order_id}/timeline",
        "/v1/orders/stuck",
        "/v1/kpis/daily",
        "/v1/kpis/daily",
        "unmatched",
    ]
    assert len({line["trace_id"] for line in got}) == len(got)
    text = access_log.read_text()
    for secret in (key, "pf_wrong_key_value", "querysecret", "limit=3", "MRN00123456", *orders):
        assert secret not in text


def test_an_unhandled_error_is_logged_as_500_by_type_only(client, access_log):
    response = client.get("/test-boom", headers={"X-Trace-Id": "boom-1"})
    assert response.status_code == 500
    [line] = access_lines(access_log)
    assert (line["status"], line["level"], line["error"]) == (500, "ERROR", "RuntimeError")
    assert (line["trace_id"], line["route"]) == ("boom-1", "/test-boom")
    assert "MRN00123456" not in access_log.read_text()
