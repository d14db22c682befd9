"""`pharmaflow demo`: simulate → ingest → build on embedded defaults, then a summary.

The demo owns its data dir: it refuses a non-empty dir it did not create (so it never wipes
someone's lake), and starts a dir it created earlier afresh, so every demo run is comparable.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from pharmaflow.cli import build as build_cli
from pharmaflow.cli import ingest as ingest_cli
from pharmaflow.cli.output import console, print_json
from pharmaflow.cli.simulate import default_input, run_simulation
from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.simulate.config import SimConfig

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


def summary(sim_seconds: float, ingest: Any, warehouse: Any) -> dict[str, Any]:
    return {
        "events": {
            "input": ingest.input,
            "landed": ingest.landed,
            "duplicates": ingest.duplicates,
            "quarantined": ingest.quarantined,
        },
        "quarantine_reasons": dict(sorted(ingest.quarantine_reasons.items())),
        "warehouse": {
            "tests_passed": warehouse.tests_passed,
            "tests_failed": warehouse.tests_failed,
            "tables": warehouse.tables,
        },
        "seconds": {
            "simulate": round(sim_seconds, 2),
            "ingest": round(ingest.seconds, 2),
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
        as_json: Annotated[
            bool, typer.Option("--json", help="End with one JSON summary line.")
        ] = False,
    ) -> None:
        """Run the whole flow end to end on embedded defaults and print a summary."""
        settings: Settings = ctx.obj
        reset_demo_dir(settings.root)
        config = SimConfig(seed=seed, days=days, scale=scale)
        stats = run_simulation(config, default_input(settings))
        ingest = ingest_cli.run_ingest(settings, str(default_input(settings)))
        warehouse = build_cli.run_build(settings)
        result = summary(stats.seconds, ingest, warehouse)
        if not as_json:
            ingest_cli.show(ingest)
            build_cli.show(warehouse)
            console.print(
                f"simulate {result['seconds']['simulate']}s · ingest "
                f"{result['seconds']['ingest']}s · build {result['seconds']['build']}s"
            )
        else:
            print_json(result)
        if not (ingest.conserved and warehouse.success):
            raise typer.Exit(1)
