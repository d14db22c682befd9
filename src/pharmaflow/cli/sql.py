"""`pharmaflow sql`: read-only queries over the warehouse."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json
from pharmaflow.config import Settings
from pharmaflow.warehouse.query import run_query


def register(app: typer.Typer) -> None:
    @app.command("sql")
    def sql_cmd(
        ctx: typer.Context,
        query: Annotated[str, typer.Argument(help='SQL, e.g. "select * from gold.dim_product".')],
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON array of row objects.")
        ] = False,
    ) -> None:
        """Run a read-only query against the warehouse (silver, gold and reference schemas)."""
        settings: Settings = ctx.obj
        columns, rows = run_query(settings.warehouse_path, query)
        if as_json:
            print_json([dict(zip(columns, row, strict=True)) for row in rows])
            return
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        console.print(f"{len(rows):,} rows")
