"""`pharmaflow build`: run the dbt project (silver, gold, tests) over the lake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, err_console, print_json, progress_bar

if TYPE_CHECKING:  # the runner loads duckdb: imported when a build runs (fast --help)
    from pharmaflow.config import Settings
    from pharmaflow.warehouse.runner import BuildResult


# Default of `--wait` (seconds a build waits for readers of the warehouse); the runner's
# READER_WAIT_SECONDS, repeated here so `pharmaflow build --help` does not import duckdb.
DEFAULT_WAIT = 60.0


def run_build(
    settings: Settings, full_refresh: bool = False, wait: float = DEFAULT_WAIT
) -> BuildResult:
    from pharmaflow.warehouse.runner import build

    def waiting(message: str) -> None:
        err_console.print(f"pharmaflow: {message}", highlight=False, soft_wrap=True)

    with progress_bar("build") as advance:
        return build(
            settings,
            on_node=lambda kind, name, status: advance(1),
            full_refresh=full_refresh,
            reader_wait=wait,
            on_wait=waiting,
        )


def show(result: BuildResult) -> None:
    table = Table(title="warehouse")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.tables.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    _show_set_aside(result)
    console.print(
        f"{result.models_built} models, {result.seeds_loaded} seeds, "
        f"tests: {result.tests_passed} passed, {result.tests_failed} failed "
        f"in {result.seconds:.1f}s"
    )
    if result.full_refresh_reason is not None:
        console.print(f"full refresh: {result.full_refresh_reason}")
    for failure in result.failures:
        console.print(f"[red]failed:[/red] {failure}", highlight=False, soft_wrap=True)
    if not result.success and result.dbt_log is not None:
        console.print(f"dbt's log (every statement and error): {result.dbt_log}", highlight=False)


def _show_set_aside(result: BuildResult) -> None:
    """Rows left out of the warehouse per (model, rule), and where to read them."""
    if not result.set_aside:
        return
    table = Table(title=f"set aside: {result.rows_set_aside:,} rows (not in silver / gold)")
    for column in ("table", "model", "rule"):
        table.add_column(column)
    table.add_column("rows", justify="right")
    for entry in result.set_aside:
        table.add_row(entry.table, entry.model, entry.rule, f"{entry.rows:,}")
    console.print(table)
    tables = sorted({entry.table for entry in result.set_aside})
    queries = " and ".join(f'"select * from {name}"' for name in tables)
    console.print(f"the events and their reasons: pharmaflow sql {queries}", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build_cmd(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        full_refresh: Annotated[
            bool,
            typer.Option(
                "--full-refresh",
                help="Rebuild silver and gold from all of bronze instead of only what is new "
                "(reference history is kept).",
            ),
        ] = False,
        wait: Annotated[
            float,
            typer.Option(
                "--wait",
                min=0,
                help="Seconds to wait for running readers of the warehouse (pharmaflow sql, "
                "trace) to finish before refusing; 0 refuses at once.",
            ),
        ] = DEFAULT_WAIT,
    ) -> None:
        """Build silver and gold with dbt (incrementally) and run every data test."""
        settings: Settings = ctx.obj
        result = run_build(settings, full_refresh=full_refresh, wait=wait)
        if as_json:
            print_json(result.to_dict())
        else:
            show(result)
        if not result.success:
            raise typer.Exit(1)
