"""`pharmaflow serve` (the analytics API) and `pharmaflow dashboard` (the Streamlit app).

Both read the data dir's published warehouse snapshot and its speed-layer store; neither
writes the warehouse, so both keep answering while `pharmaflow build` runs. They bind
loopback by default (`PHARMAFLOW_API_HOST`): the dashboard has no login, the API needs a key.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import err_console
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:
    from pharmaflow.config import Settings

PortOption = Annotated[
    int | None, typer.Option(min=0, max=65535, help="Port (default: the configured one).")
]
HostOption = Annotated[
    str | None, typer.Option(help="Address to bind (default: PHARMAFLOW_API_HOST, loopback).")
]


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken, in one line, before a server starts (uvicorn and Streamlit
    would log an error of their own and exit with a code of their own)."""
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PharmaflowError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; pick another --port"
            ) from None


def dashboard_command(settings: Settings, host: str, port: int) -> list[str]:
    """The Streamlit command line for the dashboard (shared with `pharmaflow up`)."""
    app = Path(__file__).resolve().parent.parent / "serve" / "dashboard" / "app.py"
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.headless", "true", "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--global.developmentMode", "false", "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(ctx: typer.Context, port: PortOption = None, host: HostOption = None) -> None:
        """Serve the analytics API (OpenAPI docs at /docs) until stopped."""
        import uvicorn

        from pharmaflow.serve.api.app import create_app

        settings: Settings = ctx.obj
        bind = host or settings.api_host
        chosen = settings.api_port if port is None else port
        check_port(bind, chosen)
        err_console.print(f"pharmaflow: API on http://{bind}:{chosen}/docs", highlight=False)
        try:
            uvicorn.run(create_app(settings), host=bind, port=chosen, log_level="warning")
        except OSError as exc:  # the port is taken, the address is not ours...
            raise PharmaflowError(f"cannot serve on {bind}:{chosen}: {exc.strerror}") from None

    @app.command("dashboard")
    def dashboard_cmd(ctx: typer.Context, port: PortOption = None, host: HostOption = None) -> None:
        """Serve the dashboard (Streamlit) until stopped."""
        import streamlit  # noqa: F401  (missing: one line, before this process is replaced)

        settings: Settings = ctx.obj
        bind = host or settings.api_host
        chosen = settings.dashboard_port if port is None else port
        check_port(bind, chosen)
        env = {**os.environ, "PHARMAFLOW_DATA_DIR": str(settings.root)}
        err_console.print(f"pharmaflow: dashboard on http://{bind}:{chosen}", highlight=False)
        command = dashboard_command(settings, bind, chosen)
        # this process becomes Streamlit: a supervisor's SIGTERM or Ctrl-C reaches it directly
        os.execve(command[0], command, env)
