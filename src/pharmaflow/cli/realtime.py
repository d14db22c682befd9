"""`pharmaflow realtime`: the speed layer — live windowed KPIs and alerts from the stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.realtime.engine import RealtimeResult


def show(result: RealtimeResult) -> None:
    table = Table(title="realtime")
    table.add_column("what")
    table.add_column("events", justify="right")
    for name in ("input", "landed", "duplicates", "quarantined", "replayed"):
        label = "counted" if name == "landed" else name
        table.add_row(label, f"{getattr(result, name):,}")
    table.add_row("  on time", f"{result.on_time:,}")
    table.add_row("  late (left to the batch layer)", f"{result.late:,}")
    table.add_row("windows closed", f"{result.windows_closed:,}")
    console.print(table)
    console.print(
        "conserved" if result.conserved else "[red]NOT conserved[/red]",
        f"in {result.seconds:.1f}s",
    )


def register(app: typer.Typer) -> None:
    @app.command("realtime")
    def realtime_cmd(
        ctx: typer.Context,
        source: Annotated[
            str,
            typer.Option(
                help="kafka://HOST:PORT?group=g (default group pharmaflow-realtime, apart from "
                "ingest's), or a .jsonl file / directory to replay."
            ),
        ],
        workers: Annotated[
            int | None,
            typer.Option(min=1, help="Kafka: speed-layer processes in the group (default 1)."),
        ] = None,
        idle_exit: Annotated[
            float | None,
            typer.Option(min=0.1, help="Kafka: stop after this many seconds without a record."),
        ] = None,
        metrics_port: Annotated[
            int | None,
            typer.Option(min=0, max=65535, help="Serve Prometheus metrics here (worker k: +k)."),
        ] = None,
        batch_size: Annotated[int | None, typer.Option(min=1, help="Events per batch.")] = None,
        no_alerts: Annotated[
            bool, typer.Option("--no-alerts", help="Do not evaluate alert rules here.")
        ] = False,
        worker_slot: Annotated[
            int | None, typer.Option(min=0, hidden=True, help="Run as this one worker slot.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Count the stream into live windows (event time, watermark, allowed lateness) and
        keyed state (orders waiting, cold chain, sensors), and raise alerts.

        The same checks as ingest (bad events are counted, not stored); nothing is written to
        bronze. State and offsets commit together, so a restart continues exactly.
        """
        from pharmaflow.cli.ingest import check_workers
        from pharmaflow.ingest.sources import is_stream
        from pharmaflow.realtime.workers import run_realtime_group, run_realtime_worker

        settings: Settings = ctx.obj
        check_workers(settings, workers)
        if batch_size is not None:
            settings = settings.model_copy(update={"batch_size": batch_size})
        port = metrics_port if metrics_port is not None else settings.metrics_port
        alerts = not no_alerts
        if is_stream(source) and worker_slot is None and (workers or 1) > 1:
            result = run_realtime_group(settings, source, workers or 1, idle_exit, port, alerts)
        else:
            if worker_slot is not None and workers is not None:
                raise PharmaflowError("--worker-slot runs one worker; leave out --workers")
            if not is_stream(source) and (idle_exit is not None or workers is not None):
                raise PharmaflowError("--idle-exit and --workers apply to kafka:// sources")
            slot = worker_slot or 0
            result = run_realtime_worker(
                settings, source, slot, idle_exit, port, alerts=alerts and slot == 0
            )
        if as_json:
            print_json(result.to_dict())
        else:
            show(result)
