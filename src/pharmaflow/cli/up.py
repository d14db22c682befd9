"""`pharmaflow up`: broker, live simulator, ingest, speed layer, builds, API and dashboard."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, err_console, print_json

if TYPE_CHECKING:
    from pharmaflow.config import Settings


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up_cmd(
        ctx: typer.Context,
        rate: Annotated[
            float, typer.Option(min=1.0, max=1_000_000.0, help="Events per second, at most.")
        ] = 200.0,
        days: Annotated[int, typer.Option(min=1, max=366, help="Days the live window spans.")] = 2,
        scale: Annotated[float, typer.Option(min=0.001, max=1000.0, help="Volume.")] = 1.0,
        seed: Annotated[int, typer.Option(help="Simulator seed.")] = 42,
        build_every: Annotated[
            float, typer.Option(min=0.1, help="Minutes between incremental builds.")
        ] = 5.0,
        api_port: Annotated[int | None, typer.Option(min=0, max=65535)] = None,
        dashboard_port: Annotated[int | None, typer.Option(min=0, max=65535)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="End with a JSON summary.")] = False,
    ) -> None:
        """Run the whole platform live until Ctrl-C, then stop it without losing an event."""
        from pharmaflow.orchestrate.local import Platform

        settings: Settings = ctx.obj

        def say(message: str) -> None:
            err_console.print(f"pharmaflow: {message}", highlight=False, soft_wrap=True)

        platform = Platform(
            settings,
            rate=rate,
            days=days,
            scale=scale,
            seed=seed,
            build_every=build_every * 60,
            api_port=settings.api_port if api_port is None else api_port,
            dashboard_port=settings.dashboard_port if dashboard_port is None else dashboard_port,
            say=say,
        )
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
        try:
            urls = platform.start()
            for name, url in urls.items():
                console.print(f"{name:>10}: {url}", highlight=False)
            console.print("Ctrl-C stops everything (nothing is lost).", highlight=False)
            platform.watch()
        except KeyboardInterrupt:
            pass
        finally:
            say("stopping: simulator, consumers (then draining what the broker holds), ...")
            result = platform.stop()
        summary = {
            "events_sent": result.sent,
            "records_landed": result.landed_records,
            "conserved": result.conserved,
            "builds": result.builds,
            "builds_failed": result.builds_failed,
            "restarts": result.restarts,
        }
        if as_json:
            print_json(summary)
        else:
            console.print(
                f"sent {result.sent:,} events; the lake holds {result.landed_records:,} records "
                f"from Kafka ({'conserved' if result.conserved else 'NOT conserved'}); "
                f"{result.builds} builds ({result.builds_failed} failed)",
                highlight=False,
            )
        if not result.conserved:
            raise typer.Exit(1)
