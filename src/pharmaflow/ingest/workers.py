"""Stream workers: one consumer-group member per process, N of them on one machine.

`pharmaflow ingest --source kafka://… --workers N` starts N copies of itself, each a member of
the same consumer group with its own writer slot; the broker splits the partitions between
them and moves them when one leaves. On several machines the same command joins the same
group. The parent only forwards SIGTERM/SIGINT and adds up what the workers report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import orjson

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.lifetime import die_with_parent
from pharmaflow.ingest.metrics import IngestMetrics
from pharmaflow.ingest.pipeline import IngestEngine, IngestResult
from pharmaflow.ingest.sources import open_sources

log = logging.getLogger(__name__)


def writer_id(slot: int) -> str:
    """This host's writer name for a worker slot (unique per machine and slot)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "host"
    return f"kafka-{host}-{slot}"


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
    """One group member in this process, until stopped (signal) or idle for `idle_exit` s."""
    metrics = metrics or IngestMetrics()
    serving = metrics_port is not None
    if serving:
        port = metrics.serve(metrics_port)
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
    try:
        with stop_on_signals() as stop:
            engine = IngestEngine(settings, metrics=metrics)
            sources = open_sources(
                source,
                engine.registry,
                default_bootstrap=settings.kafka_bootstrap_servers,
                stop=stop,
                idle_exit=idle_exit,
                metrics=metrics,
            )
            return engine.run(sources, writer=writer_id(slot))
    finally:
        if serving:
            metrics.close()


def run_worker_group(
    settings: Settings,
    source: str,
    workers: int,
    idle_exit: float | None = None,
    metrics_port: int | None = None,
) -> IngestResult:
    """Start `workers` worker processes and wait for all; their results, added up."""
    children: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    # The workers are the parallelism: each analyses its own batches in-process.
    env.setdefault("PHARMAFLOW_INGEST_WORKERS", "0")
    for slot in range(workers):
        command = [
            sys.executable, "-m", "pharmaflow", "--data-dir", str(settings.root),
            "ingest", "--source", source, "--worker-slot", str(slot), "--json",
            "--batch-size", str(settings.batch_size),
        ]  # fmt: skip
        if idle_exit is not None:
            command += ["--idle-exit", str(idle_exit)]
        if metrics_port is not None:
            command += ["--metrics-port", str(metrics_port + slot if metrics_port else 0)]
        children.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, env=env, preexec_fn=die_with_parent)
        )

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        outputs = [child.communicate()[0] for child in children]
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    total = IngestResult()
    failed = [slot for slot, child in enumerate(children) if child.returncode != 0]
    for slot, out in enumerate(outputs):
        if slot not in failed:
            total.merge(IngestResult.from_dict(orjson.loads(_last_line(out))))
    if failed:
        raise PharmaflowError(
            f"ingest worker(s) {', '.join(map(str, failed))} failed; see {settings.logs_dir}"
        )
    return total


def _last_line(out: bytes) -> bytes:
    lines = [line for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else b"{}"
