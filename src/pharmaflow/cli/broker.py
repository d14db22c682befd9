"""`pharmaflow broker start|stop|status`: the embedded Kafka-compatible broker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, print_json

if TYPE_CHECKING:
    from pharmaflow.broker.embedded import EmbeddedBroker
    from pharmaflow.config import Settings

broker_app = typer.Typer(
    help="Run a local Kafka-compatible broker (Tansu) for this data dir.", no_args_is_help=True
)


def embedded(ctx: typer.Context) -> EmbeddedBroker:
    from pharmaflow.broker.embedded import EmbeddedBroker

    settings: Settings = ctx.obj
    return EmbeddedBroker(settings.root / "broker")


@broker_app.command("start")
def start_cmd(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Loopback port [default: a free one].")
    ] = None,
    partitions: Annotated[
        int, typer.Option(min=1, max=256, help="Partitions per domain topic.")
    ] = 6,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Start the broker on 127.0.0.1 and create the domain and dead-letter topics."""
    from pharmaflow.broker.topics import ensure_topics  # confluent_kafka: only here

    info = embedded(ctx).start(port=port)
    created = ensure_topics(info.bootstrap, partitions=partitions)
    if as_json:
        print_json({"bootstrap": info.bootstrap, "pid": info.pid, "created_topics": created})
    else:
        console.print(
            f"broker running at {info.bootstrap} (pid {info.pid}); {len(created)} topics created"
        )


@broker_app.command("stop")
def stop_cmd(ctx: typer.Context) -> None:
    """Stop this data dir's broker (its in-memory topics go with it)."""
    info = embedded(ctx).stop()
    console.print(f"broker at {info.bootstrap} stopped (pid {info.pid})")


@broker_app.command("status")
def status_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Say whether this data dir's broker runs, and where."""
    info = embedded(ctx).info()
    if as_json:
        print_json(
            {
                "running": info is not None,
                "bootstrap": info.bootstrap if info else None,
                "pid": info.pid if info else None,
            }
        )
    elif info is None:
        console.print("broker not running")
    else:
        console.print(f"broker running at {info.bootstrap} (pid {info.pid})")
    if info is None:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.add_typer(broker_app, name="broker")
