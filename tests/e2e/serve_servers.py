"""Real servers for end-to-end serving tests: the API under uvicorn, the dashboard under Streamlit.

Each runs in a subprocess of its own on a free loopback port, reading a data dir through the
`PHARMAFLOW_*` environment exactly as `pharmaflow serve` / `pharmaflow dashboard` deploy it
(the API through `pharmaflow.serve.api.app:app_from_env`). A server is ready when its health
route answers; it is stopped by its PID (SIGTERM, then SIGKILL after a grace period), never by
name. Its output goes to a log file, shown in the error when it does not come up.

The session fixtures (`api_server`, `dashboard_server`) serve the shared `served` data dir
(`ml_dashboard_server` the scored ML one);
tests that need a data dir of their own start servers with `start_api` / `start_dashboard`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pharmaflow.broker.embedded import free_port
from tests.conftest import TEST_KEYS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_APP = ROOT / "src" / "pharmaflow" / "serve" / "dashboard" / "app.py"
API_FACTORY = "pharmaflow.serve.api.app:app_from_env"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
ROLES = ("viewer", "analyst", "qa", "privacy_officer", "collector")


class ServerDied(RuntimeError):
    """The server exited before it answered its health route."""


@dataclass
class Server:
    """A running server: its base URL, process and log."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)  # role -> raw API key (API servers)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM by PID, wait, SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def data_dir_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment serving a data dir with the test keys; PHARMAFLOW_* settings of the
    calling environment are dropped, so nothing points the server elsewhere."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("PHARMAFLOW_")}
    return {**plain, **TEST_KEYS, "PHARMAFLOW_DATA_DIR": str(data_dir), **extra}


def launch_process(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # a Ctrl-C of pytest reaches it through stop(), once
        )


def _wait_ready(server: Server, health: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise ServerDied(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
                )
            try:
                if client.get(server.url + health).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s:\n{server.log_tail()}")


def _start(
    name: str, command: list[str], env: dict[str, str], health: str, log_dir: Path
) -> Server:
    """Start on a free port (retried when the port was taken meanwhile) and wait until ready."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        argv = [arg.replace("{port}", str(port)) for arg in command]
        log = log_dir / f"{name}.log"
        proc = launch_process(argv, env, log)
        server = Server(name, f"http://127.0.0.1:{port}", proc, log)
        try:
            _wait_ready(server, health)
            return server
        except ServerDied:
            in_use = "address already in use" in server.log_tail().lower()
            if not in_use or attempt == START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def api_command(workers: int = 1) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", API_FACTORY,
        "--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def start_api(env: dict[str, str], log_dir: Path) -> Server:
    """The API (uvicorn, one worker) on a free loopback port, ready (`/health` answers)."""
    return _start("api", api_command(), env, "/health", log_dir)


def start_dashboard(env: dict[str, str], log_dir: Path) -> Server:
    """The Streamlit dashboard on a free loopback port, ready (`/_stcore/health` answers).
    The file watcher is off: nothing edits the app while it is tested, and polling the
    source tree would cost CPU the browser needs."""
    command = [sys.executable, "-m", "pharmaflow", "dashboard", "--port", "{port}"]
    return _start("dashboard", command, env, "/_stcore/health", log_dir)


def create_keys(security_store: str, data_dir: Path) -> dict[str, str]:
    """One API key per role in `security_store` (role -> raw key)."""
    from pharmaflow.config import Settings
    from pharmaflow.serve.security.store import open_security

    settings = Settings(
        data_dir=data_dir,
        security_store=security_store,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
    )
    keys, audit = open_security(settings)
    try:
        return {
            role: keys.create(f"e2e-{role}", role, actor="tests/e2e", reason="e2e test key")[1]
            for role in ROLES
        }
    finally:
        keys.close()
        audit.close()


@pytest.fixture(scope="session")
def api_server(served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API over the `served` data dir, with a key per role (`server.keys[role]`) in a
    security store of its own (the served data dir stays as built)."""
    work = tmp_path_factory.mktemp("api-server")
    store = str(work / "security.db")
    keys = create_keys(store, served.settings.root)
    env = data_dir_env(
        served.settings.root,
        PHARMAFLOW_SECURITY_STORE=store,
        PHARMAFLOW_API_CACHE_SECONDS=str(served.settings.api_cache_seconds),
    )
    server = start_api(env, work)
    server.keys = keys
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dashboard_server(served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dashboard over the `served` data dir."""
    work = tmp_path_factory.mktemp("dashboard-server")
    server = start_dashboard(data_dir_env(served.settings.root), work)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ml_dashboard_server(ml_scored, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dashboard over the `ml_scored` data dir (weeks of data, models trained and scored:
    what the models page shows)."""
    work = tmp_path_factory.mktemp("ml-dashboard-server")
    server = start_dashboard(data_dir_env(ml_scored.settings.root), work)
    try:
        yield server
    finally:
        server.stop()
