"""`pharmaflow` entry point: global options, and errors as one line instead of a traceback.

Startup is part of the interface: every command module is registered here, so each imports
its heavy dependencies (pyarrow, duckdb, dbt, Kafka, PostgreSQL, numpy, even pydantic for the
settings) inside the command that needs them. `pharmaflow --help` loads typer and Rich only
(tests/e2e/test_cli_startup.py keeps it that way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pharmaflow.cli import (
    alerts,
    apikey,
    audit,
    broker,
    build,
    check,
    demo,
    docs,
    ingest,
    keys,
    kpis,
    ml,
    realtime,
    serve,
    simulate,
    sql,
    trace,
    up,
)
from pharmaflow.cli.output import err_console
from pharmaflow.errors import PharmaflowError, os_error_line

app = typer.Typer(
    name="pharmaflow",
    help="Pharmaceutical supply-chain data platform: simulate, ingest, build, query.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="PHARMAFLOW_DATA_DIR",
            help="Where this run keeps its lake, vault, warehouse and logs.",
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            envvar="PHARMAFLOW_ENV_FILE",
            help="Read PHARMAFLOW_* settings from this file too (never read unless asked).",
        ),
    ] = None,
) -> None:
    from pharmaflow import logs
    from pharmaflow.config import Settings
    from pharmaflow.datadir import check_data_dir

    if env_file is not None and not env_file.is_file():
        raise PharmaflowError(f"--env-file {env_file} is not a file")
    given = {"data_dir": data_dir} if data_dir is not None else {}
    settings = Settings(_env_file=env_file, **given)  # type: ignore[call-arg]
    state = check_data_dir(settings.root)
    logs.configure_from(settings, writable=state.writable)
    ctx.obj = settings


for module in (
    simulate,
    ingest,
    realtime,
    kpis,
    alerts,
    build,
    check,
    sql,
    demo,
    docs,
    broker,
    keys,
    trace,
    serve,
    up,
    apikey,
    audit,
    ml,
):
    module.register(app)


def _fail(message: str, code: int) -> None:
    err_console.print(f"[red]pharmaflow: error:[/red] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def _fail_on_bad_setting(exc: Exception) -> None:
    """A bad PHARMAFLOW_* setting is one line. pydantic is imported only to check: when the
    settings raised, it is loaded already; otherwise the exception propagates unchanged."""
    if "pydantic" not in sys.modules:
        return
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        _fail(f"invalid setting {where}: {first['msg']}", 2)


def main() -> None:
    """Run the CLI; user errors print one line on stderr and exit non-zero."""
    from pharmaflow.datadir import owner_only

    owner_only()  # before anything is created: the data dir holds patient data
    if len(sys.argv) == 1:  # typer prints the help, then a usage error with no message
        app(["--help"], standalone_mode=False)
        _fail("no command given: pick one of the commands above", 2)
    try:
        # Without standalone mode click returns a command's `typer.Exit(code)` instead of
        # exiting: pass it on, or a failed build would exit 0.
        code = app(standalone_mode=False)
    except typer.Abort:
        _fail("aborted", 130)
    except typer.TyperException as exc:  # bad arguments, missing options, bad values
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(message.replace("\n", " "), getattr(exc, "exit_code", 2))
    except PharmaflowError as exc:
        _fail(str(exc), 1)
    except FileNotFoundError as exc:
        _fail(f"file not found: {exc.filename or exc}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        _fail_on_bad_setting(exc)
        line = os_error_line(exc)
        if line is not None:
            _fail(line, 1)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)
