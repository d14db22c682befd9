"""`pharmaflow demo`: simulate → Kafka → ingest worker → lake → speed layer → build, then a summary.

By default events travel through a real Kafka protocol: an embedded broker (Tansu) started for
the run, or the cluster in `KAFKA_BOOTSTRAP_SERVERS`. `--no-broker` goes through a JSONL file,
written to a private temporary folder outside the data dir and removed once ingested: it holds
raw (synthetic) patient records in the clear, which must not sit beside the protected lake.

The demo owns its data dir: it refuses a non-empty dir it did not create (so it never wipes
someone's lake), and starts a dir it created earlier afresh, so every demo run is comparable.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pharmaflow.cli import build as build_cli
from pharmaflow.cli import ingest as ingest_cli
from pharmaflow.cli import realtime as realtime_cli
from pharmaflow.cli.output import console, print_json
from pharmaflow.cli.simulate import run_simulation
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:  # simulator, Kafka and pipeline load numpy, pyarrow...: imported when run
    from pharmaflow.config import Settings
    from pharmaflow.ingest.pipeline import IngestResult
    from pharmaflow.realtime.engine import RealtimeResult
    from pharmaflow.simulate.config import SimConfig

IDLE_EXIT_SECONDS = 3.0

MARKER = ".pharmaflow-demo"


def reset_demo_dir(root: Path) -> None:
    if root.exists() and any(p.name != "logs" for p in root.iterdir()):
        if not (root / MARKER).exists():
            raise PharmaflowError(
                f"{root} holds data the demo did not create; pass an empty --data-dir"
            )
        for child in root.iterdir():
            if child.name != "logs":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("created by `pharmaflow demo`; the next demo run empties this dir\n")


@contextmanager
def kafka_cluster(settings: Settings) -> Iterator[tuple[str, bool]]:
    """The cluster to go through: `KAFKA_BOOTSTRAP_SERVERS`, else an embedded broker started
    (and stopped) for this run. Yields (bootstrap, whether it is ours)."""
    from pharmaflow.broker.embedded import EmbeddedBroker

    if settings.kafka_bootstrap_servers:
        yield settings.kafka_bootstrap_servers, False
        return
    from pharmaflow.cli.broker import warn

    broker = EmbeddedBroker(settings.root / "broker", warn=warn)
    if broker.info() is not None:  # left by a killed demo: its topics hold that run's events
        broker.stop()
    info = broker.start()
    try:
        yield info.bootstrap, True
    finally:
        if broker.info() is not None:  # a broker that died mid-run must not hide the error
            broker.stop()


def through_kafka(
    settings: Settings, config: SimConfig
) -> tuple[float, str, IngestResult, RealtimeResult]:
    """Publish the simulated window to the domain topics, land it with one worker that stops
    once the topics are drained, then count it live with the speed layer (its own group).
    Returns (simulate+publish seconds, source, ingest result, speed-layer result)."""
    from pharmaflow.broker.topics import DOMAIN_TOPICS, start_group_at_end
    from pharmaflow.ingest.workers import run_stream_worker
    from pharmaflow.realtime.workers import run_realtime_worker
    from pharmaflow.simulate.publish import publish
    from pharmaflow.simulate.simulator import generate

    began = time.perf_counter()
    output = generate(config)
    output.truth.write(settings.truth_dir, config.model_dump(mode="json"))
    with kafka_cluster(settings) as (bootstrap, ours):
        group = f"pharmaflow-demo-{uuid.uuid4().hex[:8]}"
        if not ours:  # a shared cluster: read only what this run publishes
            start_group_at_end(bootstrap, group, list(DOMAIN_TOPICS.values()))
        publish(output, bootstrap)
        produced = time.perf_counter() - began
        url = f"kafka://{bootstrap}?group={group}&session_timeout_ms=6000&max_wait_ms=300"
        result = run_stream_worker(settings, url, idle_exit=IDLE_EXIT_SECONDS)
        live_group = f"{group}-realtime"
        if not ours:
            start_group_at_end(bootstrap, live_group, list(DOMAIN_TOPICS.values()))
        live = run_realtime_worker(
            settings,
            f"kafka://{bootstrap}?group={live_group}&session_timeout_ms=6000",
            idle_exit=IDLE_EXIT_SECONDS,
        )
    if result.input != len(output) or live.input != len(output):
        raise PharmaflowError(
            f"published {len(output):,} events but ingest read {result.input:,} and the "
            f"speed layer {live.input:,}"
        )
    return produced, f"kafka://{bootstrap}", result, live


def through_file(
    settings: Settings, config: SimConfig
) -> tuple[float, str, IngestResult, RealtimeResult]:
    """Simulate to a JSONL file in a private temporary folder (TMPDIR, owner-only), land it
    and replay it through the speed layer; the file is removed afterwards, whatever happens.
    Returns (simulate seconds, source, ingest result, speed-layer result)."""
    from pharmaflow.realtime.workers import run_realtime_worker

    with tempfile.TemporaryDirectory(prefix="pharmaflow-demo-") as folder:
        path = Path(folder) / "events.jsonl"
        stats = run_simulation(config, path, settings.truth_dir)
        ingest = ingest_cli.run_ingest(settings, str(path))
        live = run_realtime_worker(settings, str(path))
    source = "file (simulated to a temporary file, removed after ingest)"
    return stats.seconds, source, ingest, live


def summary(
    sim_seconds: float, ingest: Any, warehouse: Any, source: str, live: Any
) -> dict[str, Any]:
    return {
        "source": source,
        "events": {
            "input": ingest.input,
            "landed": ingest.landed,
            "duplicates": ingest.duplicates,
            "quarantined": ingest.quarantined,
        },
        "quarantine_reasons": dict(sorted(ingest.quarantine_reasons.items())),
        "live": {
            "counted": live.landed,
            "on_time": live.on_time,
            "late": live.late,
            "windows_closed": live.windows_closed,
            "alerts": live.alerts,
        },
        "warehouse": {
            "tests_passed": warehouse.tests_passed,
            "tests_failed": warehouse.tests_failed,
            "tables": warehouse.tables,
        },
        "seconds": {
            "simulate": round(sim_seconds, 2),
            "ingest": round(ingest.seconds, 2),
            "realtime": round(live.seconds, 2),
            "build": round(warehouse.seconds, 2),
        },
    }


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        ctx: typer.Context,
        seed: Annotated[int, typer.Option(help="Simulator seed.")] = 42,
        days: Annotated[int, typer.Option(min=1, max=366, help="Days to simulate.")] = 7,
        scale: Annotated[
            float, typer.Option(min=0.001, max=1000.0, help="Volume multiplier.")
        ] = 1.0,
        no_broker: Annotated[
            bool,
            typer.Option("--no-broker", help="Go through a JSONL file instead of Kafka."),
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="End with one JSON summary line.")
        ] = False,
    ) -> None:
        """Run the whole flow end to end on embedded defaults and print a summary."""
        from pharmaflow.simulate.config import SimConfig

        settings: Settings = ctx.obj
        reset_demo_dir(settings.root)
        config = SimConfig(seed=seed, days=days, scale=scale)
        if no_broker:
            sim_seconds, source, ingest, live = through_file(settings, config)
        else:
            sim_seconds, source, ingest, live = through_kafka(settings, config)
        warehouse = build_cli.run_build(settings)
        result = summary(sim_seconds, ingest, warehouse, source, live)
        if not as_json:
            ingest_cli.show(ingest)
            realtime_cli.show(live)
            build_cli.show(warehouse)
            seconds = result["seconds"]
            console.print(
                f"simulate {seconds['simulate']}s · ingest {seconds['ingest']}s · "
                f"realtime {seconds['realtime']}s · build {seconds['build']}s"
            )
        else:
            print_json(result)
        if not (ingest.conserved and live.conserved and warehouse.success):
            raise typer.Exit(1)
