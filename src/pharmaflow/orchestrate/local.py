"""`pharmaflow up`: the whole platform live on one machine, supervised, stopped cleanly.

What runs (each a `pharmaflow` child process unless noted):

| part | how |
|---|---|
| broker | the data dir's embedded Kafka-compatible broker (Tansu), or `KAFKA_BOOTSTRAP_SERVERS` |
| simulator | a thread of this process (`publish(live=True, rate=...)`): exact count sent |
| ingest | `pharmaflow ingest --source kafka://...` (group `pharmaflow-up-ingest`) |
| speed layer | `pharmaflow realtime --source kafka://...` (group `pharmaflow-up-realtime`) |
| builds | `pharmaflow build` every `build_every` seconds (incremental; publishes a snapshot) |
| API | `pharmaflow serve` (uvicorn) |
| dashboard | `pharmaflow dashboard` (Streamlit) |

Children run in their own sessions, so the terminal's Ctrl-C reaches this supervisor only,
and it stops them in the order that loses nothing: the simulator first (what it sent is
flushed and counted), then the two consumers (SIGTERM: each commits what it holds), then one
drain run per consumer group with `--idle-exit` that lands whatever the broker still holds,
then the build in progress is let finish, then API and dashboard, then the broker. A child
that dies while running is restarted (at most `MAX_RESTARTS` times). At the end it checks
conservation: the records the lake's manifests count from Kafka equal the events sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError

MAX_RESTARTS = 5
STOP_WAIT_S = 30.0
DRAIN_IDLE_S = 3.0
GROUPS = {"ingest": "pharmaflow-up-ingest", "realtime": "pharmaflow-up-realtime"}


@dataclass
class Child:
    """One supervised child process and how to (re)start it."""

    name: str
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _out: IO[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C goes to the supervisor, which stops us in order
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, wait: float = STOP_WAIT_S) -> int | None:
        """Signal the child, wait for it, kill it if it does not stop; its exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            code = self.proc.returncode
        if self._out is not None:
            self._out.close()
            self._out = None
        return code


@dataclass
class UpResult:
    urls: dict[str, str]
    sent: int = 0
    landed_records: int = 0
    builds: int = 0
    builds_failed: int = 0
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return self.sent == self.landed_records


class Platform:
    """Starts, watches and stops the parts (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        rate: float,
        days: int,
        scale: float,
        seed: int,
        build_every: float,
        api_port: int,
        dashboard_port: int,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.rate, self.days, self.scale, self.seed = rate, days, scale, seed
        self.build_every = build_every
        self.api_port, self.dashboard_port = api_port, dashboard_port
        self.say = say
        self.stop_event = threading.Event()
        self.sim_stop = threading.Event()
        self.children: dict[str, Child] = {}
        self.bootstrap = ""
        self._broker: Any = None
        self._sent = 0
        self._sim_error: BaseException | None = None
        self._builds = [0, 0]  # done, failed
        self._build_child: Child | None = None
        self._build_lock = threading.Lock()
        self.logs = settings.logs_dir / "up"
        self.env = {**os.environ, "PHARMAFLOW_DATA_DIR": str(settings.root)}

    # start

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pharmaflow", "--data-dir", str(self.settings.root), *args]

    def source(self, part: str) -> str:
        return (
            f"kafka://{self.bootstrap}?group={GROUPS[part]}&session_timeout_ms=6000&max_wait_ms=300"
        )

    def start(self) -> dict[str, str]:
        self.bootstrap = self._start_broker()
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        from pharmaflow.broker.topics import DEFAULT_PARTITIONS, ensure_topics

        ensure_topics(self.bootstrap, DEFAULT_PARTITIONS)
        parts = {
            "ingest": self.command("ingest", "--source", self.source("ingest")),
            "realtime": self.command("realtime", "--source", self.source("realtime")),
            "api": self.command("serve", "--port", str(self.api_port)),
            "dashboard": self.command("dashboard", "--port", str(self.dashboard_port)),
        }
        for name, args in parts.items():
            child = Child(name, args, self.logs / f"{name}.log")
            child.start(self.env)
            self.children[name] = child
        threading.Thread(target=self._simulate, name="simulator", daemon=True).start()
        threading.Thread(target=self._build_loop, name="builds", daemon=True).start()
        host = self.settings.api_host
        return {
            "api": f"http://{host}:{self.api_port}/docs",
            "dashboard": f"http://{host}:{self.dashboard_port}",
            "kafka": self.bootstrap,
            "logs": str(self.logs),
        }

    def _start_broker(self) -> str:
        if self.settings.kafka_bootstrap_servers:
            return self.settings.kafka_bootstrap_servers
        from pharmaflow.broker.embedded import EmbeddedBroker

        broker = EmbeddedBroker(self.settings.root / "broker", warn=self.say)
        self._broker = broker
        return broker.start().bootstrap

    def _simulate(self) -> None:
        from pharmaflow.simulate.config import SimConfig
        from pharmaflow.simulate.publish import live_config, publish
        from pharmaflow.simulate.simulator import generate

        try:
            config = live_config(SimConfig(seed=self.seed, days=self.days, scale=self.scale))
            output = generate(config)
            stats = publish(output, self.bootstrap, rate=self.rate, live=True, stop=self.sim_stop)
            self._sent = stats.delivered
        except BaseException as exc:  # reported by stop(); the rest keeps running
            self._sim_error = exc

    def _build_loop(self) -> None:
        """A build every `build_every` seconds; the first one as soon as events landed."""
        next_at = time.monotonic() + min(10.0, self.build_every)
        while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
            if not kafka_records(self.settings):
                next_at = time.monotonic() + 2.0
                continue
            self._build_once()
            next_at = time.monotonic() + self.build_every

    def _build_once(self) -> None:
        with self._build_lock:
            if self.stop_event.is_set():
                return
            child = Child("build", self.command("build"), self.logs / "build.log")
            child.start(self.env)
            self._build_child = child
        assert child.proc is not None
        code = child.proc.wait()
        child.stop()
        self._builds[0] += 1
        if code != 0:
            self._builds[1] += 1
            self.say(f"a build failed (exit {code}); see {child.log}")

    # watch

    def watch(self) -> None:
        """Restart children that died, until `stop_event` is set."""
        while not self.stop_event.wait(1.0):
            for child in self.children.values():
                if child.running:
                    continue
                code = child.proc.returncode if child.proc else None
                if child.restarts >= MAX_RESTARTS:
                    raise PharmaflowError(
                        f"{child.name} exited {code} {MAX_RESTARTS} times; see {child.log}"
                    )
                child.restarts += 1
                self.say(f"{child.name} exited ({code}); restarting it (see {child.log})")
                child.stop()
                child.start(self.env)

    # stop

    def stop(self) -> UpResult:
        """Stop everything in the order that loses nothing (module docstring)."""
        self.stop_event.set()
        self.sim_stop.set()
        for thread in threading.enumerate():
            if thread.name == "simulator":
                thread.join(STOP_WAIT_S)
        for name in ("ingest", "realtime"):
            if name in self.children:
                self.children[name].stop()
        if self.bootstrap:
            self._drain()
        with self._build_lock:  # a build already running finishes; none starts
            build = self._build_child
        if build is not None and build.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                build.proc.wait(600)
            build.stop()
        for name in ("api", "dashboard"):
            if name in self.children:
                self.children[name].stop(signal.SIGINT)
        if self._broker is not None:
            self._broker.stop()
        result = UpResult(
            urls={},
            sent=self._sent,
            landed_records=kafka_records(self.settings),
            builds=self._builds[0],
            builds_failed=self._builds[1],
            restarts={n: c.restarts for n, c in self.children.items()},
        )
        if self._sim_error is not None and not isinstance(self._sim_error, KeyboardInterrupt):
            self.say(f"the simulator stopped with an error: {self._sim_error}")
        return result

    def _drain(self) -> None:
        """Land what the broker still holds: one run per group that exits once idle."""
        drains = [
            Child(
                f"drain-{part}",
                self.command(part, "--source", self.source(part), "--idle-exit", str(DRAIN_IDLE_S)),
                self.logs / f"drain-{part}.log",
            )
            for part in ("ingest", "realtime")
        ]
        for child in drains:
            child.start(self.env)
        for child in drains:
            assert child.proc is not None
            try:
                child.proc.wait(300)
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not finish in 300 s; stopping it")
            child.stop()


def kafka_records(settings: Settings) -> int:
    """Records the lake's committed manifests count from Kafka sources (landed, duplicates,
    quarantined and blank: every message consumed)."""
    import orjson

    from pharmaflow.lake.layout import LakeLayout

    total = 0
    for path in LakeLayout(settings.lake_dir).committed_manifests().values():
        manifest = orjson.loads(path.read_bytes())
        if str(manifest.get("source", "")).startswith("kafka"):
            total += int(manifest["counts"]["records"])
    return total
