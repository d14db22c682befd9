"""`pharmaflow ingest`: land events from files into bronze / quarantine."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json, progress_bar
from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine, IngestResult
from pharmaflow.ingest.sources import open_sources


def run_ingest(settings: Settings, source: str) -> IngestResult:
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
    rate = result.input / result.seconds if result.seconds else 0.0
    console.print(f"{result.batches} batches in {result.seconds:.2f}s ({rate:,.0f} events/s)")


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest_cmd(
        ctx: typer.Context,
        source: Annotated[str, typer.Option(help="A .jsonl or .csv file, or a directory of them.")],
        batch_size: Annotated[int | None, typer.Option(min=1, help="Events per batch.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Validate, deduplicate and protect events, then land them in bronze.

        Bad events go to quarantine with a reason. Re-running the same input adds nothing.
        """
        settings: Settings = ctx.obj
        if batch_size is not None:
            settings = settings.model_copy(update={"batch_size": batch_size})
        result = run_ingest(settings, source)
        if as_json:
            print_json(result.to_dict())
        else:
            show(result)
