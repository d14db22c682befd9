"""`pharmaflow ingest`: land events from files, Kafka or Pub/Sub into bronze / quarantine."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, err_console, print_json, progress_bar
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:  # the pipeline loads pyarrow, numpy, Kafka, psycopg: imported when used
    from pharmaflow.config import Settings
    from pharmaflow.ingest.pipeline import IngestResult


def run_ingest(settings: Settings, source: str) -> IngestResult:
    from pharmaflow.ingest.pipeline import IngestEngine
    from pharmaflow.ingest.sources import open_sources

    engine = IngestEngine(settings)
    sources = open_sources(source, engine.registry)
    with progress_bar("ingest") as advance:
        return engine.run(sources, progress=advance)


def show(result: IngestResult) -> None:
    table = Table(title="ingest")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    for name in ("input", "landed", "duplicates", "quarantined", "replayed"):
        table.add_row(name, f"{getattr(result, name):,}")
    console.print(table)
    if result.quarantine_reasons:
        console.print(
            "quarantine reasons: "
            + ", ".join(f"{k}={v:,}" for k, v in sorted(result.quarantine_reasons.items()))
        )
    if result.dead_lettered:
        console.print(f"dead-lettered: {result.dead_lettered:,}")
    rate = result.input / result.seconds if result.seconds else 0.0
    console.print(f"{result.batches} batches in {result.seconds:.2f}s ({rate:,.0f} events/s)")


def check_workers(settings: Settings, workers: int | None) -> None:
    """Refuse a process count over `max_workers` before anything is started: 10,000 forks
    would exhaust the host long before they helped."""
    cap = settings.max_workers
    if workers is not None and workers > cap:
        raise PharmaflowError(
            f"--workers {workers} is over the cap of {cap} processes: use at most {cap}, or "
            "raise PHARMAFLOW_MAX_WORKERS (max_workers)"
        )
    if settings.ingest_workers > cap:
        raise PharmaflowError(
            f"PHARMAFLOW_INGEST_WORKERS={settings.ingest_workers} is over the cap of {cap} "
            "processes: lower it, or raise PHARMAFLOW_MAX_WORKERS (max_workers)"
        )


def _warnings_to_stderr() -> None:
    """A stream worker runs unattended: broker trouble must show where someone looks."""
    handler = logging.StreamHandler(err_console.file)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("pharmaflow").addHandler(handler)


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest_cmd(
        ctx: typer.Context,
        source: Annotated[
            str,
            typer.Option(
                help="A .jsonl or .csv file, a directory of them, "
                "kafka://HOST:PORT?topics=a,b&group=g (no host: KAFKA_BOOTSTRAP_SERVERS), "
                "pubsub://PROJECT/SUBSCRIPTION[?dead_letter_topic=TOPIC] (Application Default "
                "Credentials; docs/pubsub.md), or "
                "postgresql://HOST:PORT/DB?table=survey_data.survey_responses (new rows only)."
            ),
        ],
        batch_size: Annotated[int | None, typer.Option(min=1, help="Events per batch.")] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                min=1,
                help="Kafka: consumer processes in the group (default 1). Pub/Sub: "
                "subscriber processes on the subscription (default 1). Files: processes "
                "decoding and validating (default PHARMAFLOW_INGEST_WORKERS).",
            ),
        ] = None,
        idle_exit: Annotated[
            float | None,
            typer.Option(
                min=0.1,
                help="Kafka, Pub/Sub: stop after this many seconds without a record (counted "
                "from the start, assigned or not; exits 1 if no broker could be reached).",
            ),
        ] = None,
        metrics_port: Annotated[
            int | None,
            typer.Option(
                min=0,
                max=65535,
                help="Kafka, Pub/Sub: serve Prometheus metrics here (worker k: +k).",
            ),
        ] = None,
        worker_slot: Annotated[
            int | None,
            typer.Option(
                min=0, hidden=True, help="Run as this one worker slot, unsupervised (tests)."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Validate, deduplicate and protect events, then land them in bronze.

        Bad events go to quarantine with a reason (and, from Kafka, to <topic>.dlq; from
        Pub/Sub, to ?dead_letter_topic=). Re-running the same input adds nothing. A Kafka or
        Pub/Sub worker runs until SIGTERM/SIGINT (or --idle-exit), committing offsets or
        acknowledging messages only once a batch is in the lake.
        """
        from pharmaflow.ingest.sources import is_stream
        from pharmaflow.ingest.workers import run_stream_worker, run_worker_group

        settings: Settings = ctx.obj
        check_workers(settings, workers)
        if batch_size is not None:
            settings = settings.model_copy(update={"batch_size": batch_size})
        port = metrics_port if metrics_port is not None else settings.metrics_port
        if is_stream(source):
            _warnings_to_stderr()
            if worker_slot is None:  # supervised: crashed workers are started again
                result = run_worker_group(settings, source, workers or 1, idle_exit, port)
            elif workers is not None:
                raise PharmaflowError("--worker-slot runs one worker; leave out --workers")
            else:
                result = run_stream_worker(settings, source, worker_slot, idle_exit, port)
        else:
            if idle_exit is not None or port is not None:
                raise PharmaflowError(
                    "--idle-exit and --metrics-port apply to kafka:// and pubsub:// sources"
                )
            if workers is not None:
                settings = settings.model_copy(update={"ingest_workers": workers})
            result = run_ingest(settings, source)
        if as_json:
            print_json(result.to_dict())
        else:
            show(result)
