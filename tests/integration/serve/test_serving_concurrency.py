"""Serving under load and during a build: a real uvicorn server (its real thread pool).

* 50 concurrent requests give exactly the answers the same requests gave one at a time (a
  shared DuckDB connection across threads would mix rows up: each thread has its cursor);
* while `pharmaflow build` rewrites the warehouse, every request still succeeds with the same
  numbers (serving reads the published snapshot, never the build's file), and the next
  requests after the build read the new snapshot.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn

from pharmaflow.serve.api.app import create_app
from tests.serve_data import ServedData, api_keys, served_settings

# Fields that name the snapshot an answer came from (they change with a build; numbers don't).
_PROVENANCE = {"snapshot", "as_of", "built_at", "checked_at"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _PROVENANCE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@pytest.fixture(scope="module")
def server(served: ServedData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """A private copy of the served data dir (a build will run on it) and a server on it."""
    root = tmp_path_factory.mktemp("concurrent") / "data"
    shutil.copytree(served.settings.root, root)
    settings = served_settings(root)
    keys = api_keys(settings)
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield settings, f"http://127.0.0.1:{port}", keys
    finally:
        srv.should_exit = True
        thread.join(30)


def _requests(base: str, keys: dict[str, str]) -> list[tuple[str, str]]:
    analyst = keys["analyst"]
    with httpx.Client(base_url=base, headers={"X-API-Key": analyst}) as c:
        stuck = c.get("/v1/orders/stuck?limit=5").json()["items"]
        facilities = c.get("/v1/facilities").json()
    urls = [
        "/v1/kpis/daily",
        "/v1/kpis/timeseries?metric=orders_placed&interval=hour",
        "/v1/kpis/timeseries?metric=insurance_rejected&interval=day",
        "/v1/kpis/realtime?width_s=300&last=6",
        "/v1/orders/stuck?limit=20",
        *(f"/v1/orders/{o['order_id']}/timeline" for o in stuck),
        *(f"/v1/facilities/{f['facility_id']}/metrics" for f in facilities[:6]),
    ]
    return [(url, analyst) for url in urls]


def _get(client: httpx.Client, url: str, key: str) -> tuple[int, Any]:
    response = client.get(url, headers={"X-API-Key": key})
    return response.status_code, response.json()


def test_fifty_concurrent_requests_give_the_serial_answers(server) -> None:
    _settings, base, keys = server
    requests = _requests(base, keys)
    with httpx.Client(base_url=base, timeout=60) as client:
        serial = {url: _get(client, url, key) for url, key in requests}
    assert all(status == 200 for status, _ in serial.values())
    work = [requests[i % len(requests)] for i in range(200)]
    with (
        httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=50)) as client,
        ThreadPoolExecutor(50) as pool,
    ):
        answers = list(pool.map(lambda r: (r[0], _get(client, *r)), work))
    wrong = [url for url, answer in answers if answer != serial[url]]
    assert not wrong, f"{len(wrong)} of {len(answers)} answers differ, e.g. {wrong[:3]}"


def test_requests_during_a_build_succeed_with_the_same_numbers(server) -> None:
    from pharmaflow.warehouse.runner import build

    settings, base, keys = server
    requests = _requests(base, keys)
    with httpx.Client(base_url=base, timeout=60) as client:
        serial = {url: _strip(_get(client, url, key)[1]) for url, key in requests}
        before = client.get("/ready").json()["checks"]["warehouse"]["snapshot"]
    outcome: dict[str, Any] = {}

    def run_build() -> None:
        outcome["result"] = build(settings)

    builder = threading.Thread(target=run_build)
    builder.start()
    answered = failures = 0
    mismatched: list[str] = []
    with (
        httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=4)) as client,
        ThreadPoolExecutor(4) as pool,
    ):
        while builder.is_alive():  # rounds of concurrent requests, leaving the build a core
            time.sleep(0.5)
            for url, (status, body) in zip(
                [u for u, _ in requests],
                pool.map(lambda r: _get(client, *r), requests),
                strict=True,
            ):
                answered += 1
                failures += status != 200
                if status == 200 and _strip(body) != serial[url]:
                    mismatched.append(url)
    builder.join()
    assert outcome["result"].success
    assert answered > len(requests)  # requests really overlapped the build
    assert (failures, mismatched) == (0, [])
    with httpx.Client(base_url=base, timeout=60) as client:
        time.sleep(0.6)  # the pointer is re-read at most every 0.5 s
        after = client.get("/ready").json()["checks"]["warehouse"]["snapshot"]
        assert after != before
        for url, key in requests:
            assert _strip(_get(client, url, key)[1]) == serial[url], url
