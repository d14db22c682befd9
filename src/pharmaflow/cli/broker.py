"""`pharmaflow broker start|stop|status`: the embedded Kafka-compatible broker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, err_console, print_json
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:
    from pharmaflow.broker.embedded import EmbeddedBroker
    from pharmaflow.config import Settings

broker_app = typer.Typer(
    help="Run a local Kafka-compatible broker (Tansu) for this data dir.", no_args_is_help=True
)


def embedded(ctx: typer.Context) -> EmbeddedBroker:
    from pharmaflow.broker.embedded import EmbeddedBroker

    settings: Settings = ctx.obj
    return EmbeddedBroker(settings.root / "broker", warn=warn)


def warn(message: str) -> None:
    """A note about broker state that pharmaflow fixed or ignored: one line on stderr."""
    err_console.print(
        f"[yellow]pharmaflow: warning:[/yellow] {message}", highlight=False, soft_wrap=True
    )


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
    from confluent_kafka import KafkaException  # confluent_kafka: only here

    from pharmaflow.broker.topics import ensure_topics

    info = embedded(ctx).start(port=port)
    try:
        created = ensure_topics(info.bootstrap, partitions=partitions)
    except KafkaException as exc:
        raise PharmaflowError(
            f"the broker runs at {info.bootstrap} (pid {info.pid}) but its topics could not "
            f"be created ({exc.args[0]}); retry `pharmaflow broker start` or see its log"
        ) from None
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
