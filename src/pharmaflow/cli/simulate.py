"""`pharmaflow simulate`: write a deterministic, coherent stream of events to a JSONL file."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json, progress_bar
from pharmaflow.config import Settings
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import SimStats, simulate


def default_input(settings: Settings) -> Path:
    return settings.root / "input" / "events.jsonl"


def run_simulation(config: SimConfig, out: Path) -> SimStats:
    with progress_bar("simulate") as advance:

        def on_progress(done: int, total: int) -> None:
            advance(0, total=total)
            advance(done - on_progress.done)  # type: ignore[attr-defined]
            on_progress.done = done  # type: ignore[attr-defined]

        on_progress.done = 0  # type: ignore[attr-defined]
        return simulate(config, out, progress=on_progress)


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        ctx: typer.Context,
        out: Annotated[
            Path | None,
            typer.Option(help="Output JSONL file [default: <data-dir>/input/events.jsonl]."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 42,
        days: Annotated[int, typer.Option(min=1, max=366, help="Days of activity.")] = 7,
        scale: Annotated[
            float,
            typer.Option(min=0.001, max=1000.0, help="Multiplies the volume of every stream."),
        ] = 1.0,
        start: Annotated[
            datetime, typer.Option(formats=["%Y-%m-%d"], help="First day (UTC).")
        ] = datetime(2026, 11, 1),
        duplicate_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.01,
        late_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.02,
        out_of_order_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.02,
        malformed_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.005,
        no_faults: Annotated[
            bool, typer.Option("--no-faults", help="Turn every fault knob off.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print stats as JSON.")] = False,
    ) -> None:
        """Simulate a coherent stream of supply-chain events to a JSONL file.

        Manufacturing, logistics, pharmacy, feedback and sales, with duplicates, late,
        out-of-order and malformed events mixed in; deterministic for a seed.
        """
        settings: Settings = ctx.obj
        rates = (
            (0.0, 0.0, 0.0, 0.0)
            if no_faults
            else (duplicate_rate, late_rate, out_of_order_rate, malformed_rate)
        )
        config = SimConfig(
            seed=seed,
            days=days,
            scale=scale,
            start=date(start.year, start.month, start.day),
            duplicate_rate=rates[0],
            late_rate=rates[1],
            out_of_order_rate=rates[2],
            malformed_rate=rates[3],
        )
        target = out or default_input(settings)
        stats = run_simulation(config, target)
        if as_json:
            print_json({"out": str(target), **stats.to_dict()})
            return
        table = Table(title=f"simulated → {target}")
        table.add_column("event type")
        table.add_column("events", justify="right")
        for event_type, n in sorted(stats.by_type.items()):
            table.add_row(event_type, f"{n:,}")
        console.print(table)
        console.print(
            f"{stats.lines:,} lines ({stats.duplicates:,} duplicates, "
            f"{stats.malformed:,} malformed) in {stats.seconds:.2f}s"
        )
