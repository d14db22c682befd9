"""Stream workers: one consumer-group member per process, N of them on one machine.

`pharmaflow ingest --source kafka://… --workers N` starts N copies of itself, each a member of
the same consumer group with its own writer slot; the broker splits the partitions between
them and moves them when one leaves. On several machines the same command joins the same
group. The parent only forwards SIGTERM/SIGINT and adds up what the workers report.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

import orjson

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.lifetime import die_with_parent
from pharmaflow.ingest.metrics import IngestMetrics, ServedMetrics
from pharmaflow.ingest.phi.keyring import ensure_keys
from pharmaflow.ingest.pipeline import IngestEngine, IngestResult
from pharmaflow.ingest.sources import check_stream_url, open_sources, stream_kind
from pharmaflow.ingest.sources.kafka import kafka_security

log = logging.getLogger(__name__)

MAX_RESTARTS = 5
_ERROR_PREFIX = "pharmaflow: error: "  # how the CLI prints a user error (cli/main.py)


def writer_id(slot: int, kind: str = "kafka") -> str:
    """This host's writer name for a worker slot (unique per machine, kind and slot)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "host"
    return f"{kind}-{host}-{slot}"


@contextlib.contextmanager
def unattended(metrics: ServedMetrics, metrics_port: int | None) -> Iterator[None]:
    """What every stream worker process sets up: a trace if it crashes — a crash in native
    code (librdkafka) prints every thread's stack to stderr, and kill -USR1 <pid> prints them
    on demand — and its metrics served on `metrics_port` (if given) while it runs. Metrics a
    caller serves itself stay served (it reads them after the run)."""
    faulthandler.enable(all_threads=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if metrics_port is None:
        yield
        return
    port = metrics.serve(metrics_port)
    log.info("metrics on http://127.0.0.1:%d/metrics", port)
    try:
        yield
    finally:
        metrics.close()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT, for a clean stop: the batch in hand is finished and
    committed, records read after it are left for the next run."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after the batch in hand", signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_stream_worker(
    settings: Settings,
    source: str,
    slot: int = 0,
    idle_exit: float | None = None,
    metrics_port: int | None = None,
    metrics: IngestMetrics | None = None,
) -> IngestResult:
    """One group member in this process, until stopped (signal) or idle for `idle_exit` s.

    `idle_exit` counts from the start or the last record, whether or not the group gave us
    partitions or the broker answers. If no broker can be reached when it expires, the run
    fails (exit 1, one line): "nothing to read" and "nothing reachable" must not look alike
    to a script, even though whatever was landed before stays landed."""
    metrics = metrics or IngestMetrics()
    with unattended(metrics, metrics_port), stop_on_signals() as stop:
        engine = IngestEngine(settings, metrics=metrics)
        sources = open_sources(
            source,
            engine.registry,
            default_bootstrap=settings.kafka_bootstrap_servers,
            stop=stop,
            idle_exit=idle_exit,
            metrics=metrics,
            settings=settings,
        )
        result = engine.run(sources, writer=writer_id(slot, stream_kind(source)))
        unreachable = [s.unreachable for s in sources]
        if any(unreachable):  # --idle-exit with no broker: a failure, not "nothing to do"
            raise PharmaflowError(next(u for u in unreachable if u))
        return result


def run_worker_group(
    settings: Settings,
    source: str,
    workers: int,
    idle_exit: float | None = None,
    metrics_port: int | None = None,
    command_name: str = "ingest",
    result_type: type[IngestResult] = IngestResult,
    extra_args: tuple[str, ...] = (),
) -> IngestResult:
    """Start `workers` worker processes and wait for all; their results, added up.
    `command_name` is the CLI command each worker runs (`ingest`, or `realtime` for the speed
    layer, whose results are `result_type`), with `extra_args` passed through.

    A worker killed by a signal we did not send (a crash in native code: librdkafka has been
    seen to segfault when a restarted broker drops the group) is started again, up to
    `MAX_RESTARTS` times per slot; the lake's bookmarks make a restart lose and double nothing.
    """
    check_stream_url(source, settings)  # a bad URL: one line, here
    if stream_kind(source) == "kafka":
        kafka_security(settings)  # so are inconsistent PHARMAFLOW_KAFKA_* settings
    # The keys exist (created exactly once, checked against the data dir's fingerprints)
    # before N workers start and each loads them; a wrong key is one line here, not N.
    ensure_keys(settings)
    env = dict(os.environ)
    # The workers are the parallelism: each analyses its own batches in-process.
    env.setdefault("PHARMAFLOW_INGEST_WORKERS", "0")
    running: dict[int, subprocess.Popen[bytes]] = {}
    finished: dict[int, tuple[int, bytes]] = {}
    stopping = threading.Event()

    def command(slot: int) -> list[str]:
        args = [
            sys.executable, "-m", "pharmaflow", "--data-dir", str(settings.root),
            command_name, "--source", source, "--worker-slot", str(slot), "--json",
            "--batch-size", str(settings.batch_size), *extra_args,
        ]  # fmt: skip
        if idle_exit is not None:
            args += ["--idle-exit", str(idle_exit)]
        if metrics_port is not None:
            args += ["--metrics-port", str(metrics_port + slot if metrics_port else 0)]
        return args

    reported: dict[int, str] = {}  # slot -> the one-line error its worker printed

    def relay(slot: int, stream: IO[bytes]) -> None:
        """A worker's stderr, passed on as it comes, except its closing error line: N workers
        failing alike (no broker) must still be one line, which the supervisor prints."""
        for line in stream:
            text = line.decode(errors="replace").rstrip()
            if text.startswith(_ERROR_PREFIX):
                reported[slot] = text.removeprefix(_ERROR_PREFIX)
            else:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()

    def supervise(slot: int) -> None:
        for attempt in range(MAX_RESTARTS + 1):
            reported.pop(slot, None)
            child = subprocess.Popen(
                command(slot),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                preexec_fn=die_with_parent,
            )
            running[slot] = child
            assert child.stdout is not None and child.stderr is not None
            relaying = threading.Thread(target=relay, args=(slot, child.stderr), daemon=True)
            relaying.start()
            out = child.stdout.read()
            child.wait()
            relaying.join()
            crashed = child.returncode < 0 and not stopping.is_set()
            if not crashed or attempt == MAX_RESTARTS:
                finished[slot] = (child.returncode, out)
                return
            log.warning(
                "%s worker %d died of signal %d; restarting it",
                command_name,
                slot,
                -child.returncode,
            )
            time.sleep(1.0)

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in list(running.values()):
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    threads = [threading.Thread(target=supervise, args=(slot,)) for slot in range(workers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # join in steps, so signals reach `forward`
                thread.join(0.5)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    total = result_type()
    failed = sorted(slot for slot, (code, _) in finished.items() if code != 0)
    for code, out in finished.values():
        if code == 0:
            total.merge(result_type.from_dict(orjson.loads(_last_line(out))))
    if failed or len(finished) != workers:
        said = sorted({reported[slot] for slot in failed if slot in reported})
        if said and all(slot in reported for slot in failed):
            raise PharmaflowError("; ".join(said))  # what they said, once
        raise PharmaflowError(
            f"{command_name} worker(s) {', '.join(map(str, failed))} failed; "
            f"see {settings.logs_dir}"
        )
    return total


def _last_line(out: bytes) -> bytes:
    lines = [line for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else b"{}"
