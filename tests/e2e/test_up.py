"""`pharmaflow up`: everything live on one machine; data reaches the API within seconds;
SIGINT stops every child and every event sent is in the lake."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import env_with_keys

pytestmark = pytest.mark.slow
PHARMAFLOW = [sys.executable, "-m", "pharmaflow"]


def _free_ports(n: int) -> list[int]:
    """`n` distinct free ports (all held open while picked, so none is picked twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _processes_naming(text: str) -> list[int]:
    """PIDs whose command line names `text` (the test's own data dir: only what up started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if text in cmdline or f"PHARMAFLOW_DATA_DIR={text}".encode() in environ:
            found.append(int(entry.name))
    return found


def _wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:  # not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {seconds} s (last: {last!r})")


def test_up_runs_everything_and_stops_without_losing_an_event(tmp_path: Path) -> None:
    root = tmp_path / "data"
    api, board = _free_ports(2)
    env = env_with_keys()
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    proc = subprocess.Popen(
        [
            *PHARMAFLOW, "--data-dir", str(root), "up", "--rate", "400", "--days", "1",
            "--scale", "0.5", "--build-every", "0.25", "--api-port", str(api),
            "--dashboard-port", str(board), "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{api}"
        _wait_for(lambda: httpx.get(f"{base}/health").status_code == 200, 60, "the API")
        created = subprocess.run(
            [*PHARMAFLOW, "--data-dir", str(root), "apikey", "create", "--name", "t",
             "--role", "analyst"],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        key = next(w for w in created.stdout.split() if w.startswith("pf_"))
        headers = {"X-API-Key": key}
        started = time.monotonic()

        def live_counts() -> float:
            """Events the speed layer counted in the last day of windows, per the API."""
            url = f"{base}/v1/kpis/realtime?width_s=300&last=288"
            body = httpx.get(url, headers=headers).json()
            return sum(v["value"] for v in body["kpis"] if v["kpi"] == "events")

        first = _wait_for(live_counts, 60, "live events in the API")
        assert time.monotonic() - started < 60
        _wait_for(lambda: live_counts() > first, 30, "more live events")  # it keeps flowing
        _wait_for(
            lambda: httpx.get(f"{base}/ready").json()["checks"]["warehouse"]["ok"],
            120,
            "a published build",
        )
        daily = httpx.get(f"{base}/v1/kpis/daily", headers=headers).json()
        assert sum(d["orders_placed"] for d in daily["days"]) > 0
        dashboard = f"http://127.0.0.1:{board}/_stcore/health"
        _wait_for(lambda: httpx.get(dashboard).status_code == 200, 60, "the dashboard")
        assert len(_processes_naming(str(root))) >= 4  # ingest, realtime, API, dashboard...
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["events_sent"] > 0
    assert summary["records_landed"] == summary["events_sent"]
    assert summary["conserved"] is True and summary["builds_failed"] == 0
    assert _processes_naming(str(root)) == []  # no child left behind
    assert not (root / "broker" / "broker.json").exists() or "broker" not in out.decode()
