"""Console output: Rich for people, one JSON object on the last line for machines.

Only `rich.console` is imported up front (typer's help needs it anyway): the progress bar and
orjson load when a command uses them, so `pharmaflow --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

console = Console()  # results: stdout
err_console = Console(stderr=True)  # progress and errors: stderr


def print_json(obj: Any) -> None:
    """One compact JSON object on stdout (the last line a script reads)."""
    import orjson

    print(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str).decode(), flush=True)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Any]:
    """A transient Rich progress bar on stderr; yields `advance(n)`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(
        *columns, console=err_console, transient=True, disable=not err_console.is_terminal
    ) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1, total: int | None = None) -> None:
            if total is not None:
                progress.update(task, total=total)
            progress.advance(task, n)

        yield advance
