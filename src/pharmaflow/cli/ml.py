"""`pharmaflow train` and `pharmaflow score`: the four models on the current warehouse snapshot.

`train` trains, tracks (MLflow) and registers each model, promoting a version to `champion`
only when it beats its baseline and the current champion (docs/ml.md); `score` writes each
champion's batch scores to gold and checks its features for drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json

if TYPE_CHECKING:
    from pharmaflow.config import Settings

MODELS_HELP = (
    "Models (default: all): delay, demand, elasticity, sentiment "
    "(or shipment_delay, demand_forecast, price_elasticity, survey_sentiment)."
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}"


def _train_table(outcomes: list) -> Table:
    table = Table(title="training (holdout, time-based)")
    for column in ("model", "version", "metric", "model", "baseline", "champion", "promoted"):
        table.add_column(column, justify="right" if column not in ("model", "metric") else "left")
    for outcome in outcomes:
        r = outcome.registered
        for i, key in enumerate(sorted(r.metrics)):
            champion = (r.champion_metrics or {}).get(key)
            table.add_row(
                r.model_name if i == 0 else "",
                f"v{r.version}" if i == 0 else "",
                key,
                _fmt(r.metrics[key]),
                _fmt(r.baseline.get(key)),
                _fmt(champion),
                ("yes" if r.promoted else "no") if i == 0 else "",
            )
    return table


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        models: Annotated[list[str] | None, typer.Argument(help=MODELS_HELP)] = None,
        seed: Annotated[
            int | None, typer.Option(min=0, help="Training seed (default PHARMAFLOW_ML_SEED).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="The outcome as JSON.")] = False,
    ) -> None:
        """Train each model on a time-based split of the current warehouse snapshot, compare it
        with its baseline (and the champion), log it to MLflow, register it and write its
        model card; promote it to `champion` only if it beats both."""
        from pharmaflow.ml.tasks import task_names
        from pharmaflow.ml.train import train

        settings: Settings = ctx.obj
        names = task_names(models)  # an unknown name fails before anything is loaded
        with console.status("training…"):
            outcomes = train(settings, names, seed=seed)
        if as_json:
            print_json([o.to_dict() for o in outcomes])
            return
        console.print(_train_table(outcomes))
        for o in outcomes:
            r = o.registered
            console.print(
                f"{r.model_name} v{r.version} ({o.seconds:.1f}s): "
                f"{'champion' if r.promoted else 'not promoted'}: {r.reason}; card {r.card}"
            )
        console.print(f"tracking: {settings.tracking_uri}")

    @app.command("score")
    def score_cmd(
        ctx: typer.Context,
        models: Annotated[list[str] | None, typer.Argument(help=MODELS_HELP)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="The outcome as JSON.")] = False,
    ) -> None:
        """Score with each champion model and write the scores to gold (stamped with the model
        version), then check the scored features for drift against the training data and
        raise an alert where they drifted."""
        from pharmaflow.ml.score import score
        from pharmaflow.ml.tasks import task_names

        settings: Settings = ctx.obj
        names = task_names(models)
        with console.status("scoring…"):
            results = score(settings, names)
        if as_json:
            print_json([r.to_dict() for r in results])
            return
        table = Table(title="scores written")
        for column in ("model", "version", "table", "rows", "drifted features"):
            table.add_column(column, justify="right" if column == "rows" else "left")
        for r in results:
            drifted = ", ".join(getattr(r.drift, "drifted", []) or []) or "-"
            table.add_row(
                r.model_name,
                f"v{r.version}" if r.version else "-",
                r.table or "-",
                f"{r.rows:,}" if r.version else r.note,
                drifted,
            )
        console.print(table)
