"""`pharmaflow simulate`: a deterministic, coherent stream of events, to a JSONL file or Kafka."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json, progress_bar
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:  # the simulator loads numpy and the publisher Kafka: imported when run
    from pharmaflow.config import Settings
    from pharmaflow.simulate.config import SimConfig
    from pharmaflow.simulate.publish import PublishStats
    from pharmaflow.simulate.simulator import SimStats

DEFAULT_START = date(2026, 11, 1)
DEFAULT_PARTITIONS = 6


def default_input(settings: Settings) -> Path:
    return settings.root / "input" / "events.jsonl"


def run_simulation(config: SimConfig, out: Path, truth_dir: Path | None = None) -> SimStats:
    """Write the window to `out` (and its ground truth to `truth_dir`); an output the OS
    refuses is one line, with nothing written (the file is written under a temporary name and
    renamed only once complete)."""
    from pharmaflow.simulate.simulator import simulate

    check_out(out)
    check_memory(config)
    try:
        with progress_bar("simulate") as advance:
            return simulate(config, out, progress=_reporter(advance), truth_dir=truth_dir)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PharmaflowError(
            f"cannot write {out}: {reason}; pick a writable --out (nothing was written)"
        ) from exc


def check_out(out: Path) -> None:
    """Refuse an --out that is a folder or not a regular file (renaming over a device or a
    pipe would replace it), and create its folder, before anything is simulated."""
    if out.is_dir():
        raise PharmaflowError(f"--out {out} is a folder: give a file path, e.g. {out}/events.jsonl")
    if out.exists() and not out.is_file():
        raise PharmaflowError(f"--out {out} is not a regular file: give a file path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise PharmaflowError(
            f"cannot create the folder of --out {out}: a part of that path is a file"
        ) from exc
    except OSError as exc:
        raise PharmaflowError(
            f"cannot create the folder of --out {out}: {exc.strerror or exc}; pick a writable path"
        ) from exc
    if not os.access(out.parent, os.W_OK):
        raise PharmaflowError(
            f"cannot write in {out.parent} (read-only or not permitted): pick another --out"
        )


def check_memory(config: SimConfig, *, in_memory: bool = False) -> None:
    """Refuse up front a window that cannot fit in the memory available, instead of being
    killed by the kernel minutes later with nothing written."""
    from pharmaflow.simulate.simulator import estimate_bytes

    available = _available_memory()
    needed = estimate_bytes(config, in_memory=in_memory)
    if available is not None and needed > available:
        gib = 2**30
        raise PharmaflowError(
            f"--scale {config.scale:g} --days {config.days} needs up to {needed / gib:.1f} GiB "
            f"of memory and {available / gib:.1f} GiB is available: lower --scale or --days, "
            "or simulate several shorter windows (--start) and ingest each"
        )


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reporter(advance: Callable[..., None]) -> Callable[[int, int], None]:
    """A `progress(done, total)` callback driving a `progress_bar` advance function."""
    done_so_far = 0

    def on_progress(done: int, total: int) -> None:
        nonlocal done_so_far
        advance(0, total=total)
        advance(done - done_so_far)
        done_so_far = done

    return on_progress


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        ctx: typer.Context,
        out: Annotated[
            Path | None,
            typer.Option(help="Output JSONL file [default: <data-dir>/input/events.jsonl]."),
        ] = None,
        to: Annotated[
            str | None,
            typer.Option(
                "--to",
                help="Publish to Kafka instead of a file: kafka://HOST:PORT[,HOST:PORT] "
                "(kafka:// alone takes KAFKA_BOOTSTRAP_SERVERS).",
            ),
        ] = None,
        seed: Annotated[
            int, typer.Option(min=0, help="Random seed (0 or more): same seed, same bytes.")
        ] = 42,
        days: Annotated[int, typer.Option(min=1, max=366, help="Days of activity.")] = 7,
        scale: Annotated[
            float,
            typer.Option(min=0.001, max=1000.0, help="Multiplies the volume of every stream."),
        ] = 1.0,
        start: Annotated[
            datetime | None,
            typer.Option(formats=["%Y-%m-%d"], help="First day (UTC) [default: 2026-11-01]."),
        ] = None,
        duplicate_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.01,
        late_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.02,
        out_of_order_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.02,
        malformed_rate: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.005,
        no_faults: Annotated[
            bool, typer.Option("--no-faults", help="Turn every fault knob off.")
        ] = False,
        rate: Annotated[
            float | None,
            typer.Option(help="With --to: at most this many events per second [default: no cap]."),
        ] = None,
        live: Annotated[
            bool,
            typer.Option(
                "--live",
                help="With --to: the window starts today and each event is sent when the wall "
                "clock reaches its arrival time.",
            ),
        ] = False,
        fmt: Annotated[
            str | None,
            typer.Option("--format", help="With --to: json (default) or avro (Confluent-framed)."),
        ] = None,
        schema_registry: Annotated[
            str | None,
            typer.Option(
                help="With --format avro: schema registry URL [default: $SCHEMA_REGISTRY_URL]."
            ),
        ] = None,
        partitions: Annotated[
            int | None,
            typer.Option(min=1, max=256, help="With --to: partitions of created topics [6]."),
        ] = None,
        truth_dir: Annotated[
            Path | None,
            typer.Option(
                help="Where the ground truth goes (never into the events) [default: "
                "<data-dir>/truth]."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print stats as JSON.")] = False,
    ) -> None:
        """Simulate a coherent stream of supply-chain events to a JSONL file or Kafka.

        Manufacturing, logistics, pharmacy, feedback and sales, with duplicates, late,
        out-of-order and malformed events mixed in; deterministic for a seed. With --to, each
        line is published to its domain topic (pharma.<domain>) keyed by the envelope key.
        The ground truth the models are judged against (true late probabilities, demand,
        price elasticities, comment sentiment) is written beside the data, never into it.
        """
        from pharmaflow.simulate.config import FIRST_START, LAST_START, SimConfig

        settings: Settings = ctx.obj
        kafka_only = {
            "--rate": rate is not None,
            "--live": live,
            "--format": fmt is not None,
            "--schema-registry": schema_registry is not None,
            "--partitions": partitions is not None,
        }
        if to is not None and out is not None:
            raise PharmaflowError("--to and --out are mutually exclusive: pick a file or Kafka")
        if to is None and any(kafka_only.values()):
            given = ", ".join(name for name, used in kafka_only.items() if used)
            raise PharmaflowError(f"{given} only apply with --to kafka://HOST:PORT")
        if live and start is not None:
            raise PharmaflowError("--live starts the window today; drop --start")
        first_day = date(start.year, start.month, start.day) if start else DEFAULT_START
        if not FIRST_START <= first_day <= LAST_START:
            raise PharmaflowError(
                f"--start {first_day} is out of range: pick a day from {FIRST_START} "
                f"to {LAST_START}"
            )
        rates = (
            (0.0, 0.0, 0.0, 0.0)
            if no_faults
            else (duplicate_rate, late_rate, out_of_order_rate, malformed_rate)
        )
        config = SimConfig(
            seed=seed,
            days=days,
            scale=scale,
            start=first_day,
            duplicate_rate=rates[0],
            late_rate=rates[1],
            out_of_order_rate=rates[2],
            malformed_rate=rates[3],
        )
        if to is None:
            target = out or default_input(settings)
            stats = run_simulation(config, target, truth_dir or settings.truth_dir)
            if as_json:
                print_json({"out": str(target), **stats.to_dict()})
                return
            _print_simulation(stats, f"simulated → {target}")
            return

        from pharmaflow.simulate.publish import (
            bootstrap_from_url,
            check_options,
            expected_by_topic,
            live_config,
            publish,
        )
        from pharmaflow.simulate.simulator import generate

        bootstrap = bootstrap_from_url(to)
        fmt = fmt or "json"
        registry = schema_registry or os.environ.get("SCHEMA_REGISTRY_URL") or None
        partitions = partitions or DEFAULT_PARTITIONS
        check_options(rate, fmt, registry, partitions)
        if live:
            config = live_config(config)
        check_memory(config, in_memory=True)
        output = generate(config)
        output.truth.write(truth_dir or settings.truth_dir, config.model_dump(mode="json"))
        with progress_bar("publish") as advance:
            sent = publish(
                output,
                bootstrap,
                rate=rate,
                live=live,
                fmt=fmt,
                schema_registry=registry,
                partitions=partitions,
                progress=_reporter(advance),
            )
        if as_json:
            summary = {"to": f"kafka://{bootstrap}", **output.stats.to_dict()}
            print_json({**summary, "publish": sent.to_dict()})
            return
        _print_publish(output.stats, sent, expected_by_topic(output))


def _print_simulation(stats: SimStats, title: str) -> None:
    table = Table(title=title)
    table.add_column("event type")
    table.add_column("events", justify="right")
    for event_type, n in sorted(stats.by_type.items()):
        table.add_row(event_type, f"{n:,}")
    console.print(table)
    console.print(
        f"{stats.lines:,} lines ({stats.duplicates:,} duplicates, "
        f"{stats.malformed:,} malformed) in {stats.seconds:.2f}s"
    )


def _print_publish(stats: SimStats, sent: PublishStats, expected: dict[str, int]) -> None:
    table = Table(title=f"published → kafka://{sent.bootstrap} ({sent.format})")
    table.add_column("topic")
    table.add_column("messages", justify="right")
    table.add_column("delivered", justify="right")
    for topic, n in expected.items():
        table.add_row(topic, f"{n:,}", f"{sent.by_topic.get(topic, 0):,}")
    console.print(table)
    raw = f", {sent.raw:,} sent raw (not a valid event)" if sent.format == "avro" else ""
    console.print(
        f"{sent.delivered:,} of {sent.messages:,} messages delivered ({stats.duplicates:,} "
        f"duplicates, {stats.malformed:,} malformed{raw}) in {sent.seconds:.2f}s, "
        f"{sent.events_per_second:,.0f} events/s"
    )
