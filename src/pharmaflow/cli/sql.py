"""`pharmaflow sql`: read-only queries over the warehouse and the lake's metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, print_json
from pharmaflow.cli.tables import Layout, print_rows
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:
    from pharmaflow.config import Settings


def register(app: typer.Typer) -> None:
    # a query may start with "--" (an SQL comment): it is the query, not an unknown option
    @app.command("sql", context_settings={"ignore_unknown_options": True})
    def sql_cmd(
        ctx: typer.Context,
        query: Annotated[str, typer.Argument(help='SQL, e.g. "select * from gold.dim_product".')],
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON array of row objects.")
        ] = False,
        vertical: Annotated[
            bool,
            typer.Option(
                "--vertical", help="One record per block (column | value), like psql's \\x."
            ),
        ] = False,
        table: Annotated[
            bool, typer.Option("--table", help="One line per row, however wide.")
        ] = False,
    ) -> None:
        """Run a read-only query against the warehouse (silver, gold and reference schemas)
        and the lake's metadata (lake.manifests, lake.bronze, lake.quarantine).

        A result wider than the terminal is shown one record per block unless --table.
        Conservation, e.g.: select sum(landed) from lake.manifests  =  select count(*) from
        lake.bronze.
        """
        from pharmaflow.warehouse.query import run_query

        if vertical and table:
            raise PharmaflowError("--vertical and --table are mutually exclusive: pick one")
        settings: Settings = ctx.obj
        columns, rows = run_query(settings.warehouse_path, query, settings.lake_dir)
        if as_json:
            print_json([dict(zip(columns, row, strict=True)) for row in rows])
            return
        layout: Layout = "vertical" if vertical else "table" if table else "auto"
        print_rows(console, columns, rows, layout)
        console.print(f"{len(rows):,} rows", highlight=False)
