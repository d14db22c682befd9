"""`pharmaflow docs`: render the data dictionary from the dbt project."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console

if TYPE_CHECKING:
    from pharmaflow.config import Settings


def register(app: typer.Typer) -> None:
    @app.command("docs")
    def docs_cmd(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option(help="Markdown file to write.")] = Path(
            "docs/data-dictionary.md"
        ),
        lineage: Annotated[
            Path | None,
            typer.Option(
                help="Also write dbt's documentation site (lineage graph) as one HTML file."
            ),
        ] = None,
    ) -> None:
        """Write the data dictionary (every table and column of the warehouse) as markdown."""
        from pharmaflow.warehouse.dictionary import lineage_page, parse_manifest, render

        settings: Settings = ctx.obj
        text = render(parse_manifest(settings))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        console.print(f"data dictionary → {out} ({text.count('### ')} tables)")
        if lineage is not None:
            lineage.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lineage_page(settings), lineage)
            console.print(f"lineage (dbt docs) → {lineage}")
