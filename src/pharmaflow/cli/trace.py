"""`pharmaflow trace lot|batch`: recall trace over the warehouse's lot genealogy.

For a recall coordinator: the batch and its QA outcome, every shipment that carried the lot,
every order dispensed from it and the distinct patients affected, with counts. Patients appear
only as their pseudonymous `patient_key` (the only form that exists past ingest); reaching the
person goes through the vault's logged re-identification, never through this command.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json
from pharmaflow.cli.tables import print_rows
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:  # the trace reads DuckDB: imported when a trace runs
    from pharmaflow.config import Settings
    from pharmaflow.warehouse.trace import RecallTrace

trace_app = typer.Typer(
    help="Recall trace: which batch, shipments, orders and patient keys a lot or batch reached.",
    no_args_is_help=True,
)

_FLAG_STYLE = {"REJECTED": "bold red", "REVIEW": "yellow", "RELEASABLE": "green"}


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")  # UTC
    return str(value)


def show(trace: RecallTrace) -> None:
    """For people: the batch with its QA verdict, shipments, orders, then counts.

    The batch is printed field per line (there is usually one), so its ids stay whole on a
    narrow terminal. Shipments and orders (hundreds on a busy lot) are plain aligned rows,
    or one record per block when they would not fit the terminal: ids are never cut, and a
    900-link lot prints in milliseconds where Rich tables took most of a second."""
    console.print(f"[bold]{trace.query} {trace.key}[/bold]", highlight=False)
    for b in trace.batches:
        style = _FLAG_STYLE.get(b.quality_flag, "")
        batch = Table.grid(padding=(0, 2))
        batch.add_column(style="dim")
        batch.add_column()
        for name, value in (
            ("batch", b.batch_id),
            ("lot", _text(b.lot_number)),
            ("product (NDC)", _text(b.ndc)),
            ("plant", _text(b.site_id)),
            ("final status", _text(b.final_status)),
            ("QA outcome", f"[{style}]{b.quality_flag}[/{style}]" if style else b.quality_flag),
            (
                "lab pass rate",
                "no lab results"
                if b.lab_pass_rate is None
                else f"{b.lab_pass_rate:.0%} of {b.lab_tests} ({b.lab_tests_failed} failed)",
            ),
            ("open deviations", str(b.open_deviations)),
            ("completed", _text(b.completed_at)),
        ):
            batch.add_row(name, value)
        console.print(batch)
    if not trace.batches:
        console.print("no batch events for this lot (made before the data window)")

    if trace.shipments:
        console.print(f"\n[bold]shipments[/bold] ({len(trace.shipments):,})", highlight=False)
        print_rows(
            console,
            (
                "shipment",
                "lot",
                "leg",
                "from",
                "to",
                "order",
                "patient key",
                "created",
                "delivered",
            ),
            [
                (
                    s.shipment_id,
                    s.lot_number,
                    s.leg,
                    _text(s.origin_facility_id),
                    _text(s.destination_facility_id or s.destination_facility_type),
                    _text(s.order_id),
                    _text(s.patient_key),
                    _text(s.created_at),
                    _text(s.delivered_at),
                )
                for s in trace.shipments
            ],
        )
    else:
        console.print("no shipment carried it")

    if trace.orders:
        console.print(f"\n[bold]orders[/bold] ({len(trace.orders):,})", highlight=False)
        print_rows(
            console,
            (
                "order",
                "lot",
                "pharmacy",
                "patient key",
                "qty",
                "filled",
                "shipment",
                "delivered",
                "cancelled",
            ),
            [
                (
                    o.order_id,
                    o.lot_number if o.is_current_fill else f"{o.lot_number} (re-filled)",
                    _text(o.pharmacy_id),
                    _text(o.patient_key),
                    o.quantity,
                    _text(o.filled_at),
                    _text(o.shipment_id),
                    _text(o.delivered_at),
                    _text(o.cancelled_at),
                )
                for o in trace.orders
            ],
        )
    else:
        console.print("no order was filled from it")
    console.print()

    counts = trace.counts
    legs = ", ".join(f"{leg} {n:,}" for leg, n in counts["shipments_by_leg"].items())
    console.print(
        f"{counts['batches']} batch(es), {counts['lots']} lot(s), "
        f"{counts['shipments']:,} shipments ({legs or 'none'}), {counts['orders']:,} orders "
        f"({counts['units_dispensed']:,} units), "
        f"[bold]{counts['patients']:,} distinct patient keys[/bold]"
        + (
            f", {counts['orders_without_patient']:,} orders whose patient is not known yet"
            if counts["orders_without_patient"]
            else ""
        ),
        highlight=False,
    )


def _run(
    ctx: typer.Context, key: str, as_json: bool, fn: Callable[[Path, str], RecallTrace]
) -> None:
    settings: Settings = ctx.obj
    if settings.warehouse_target != "duckdb":  # the genealogy is there too, but not read here
        raise PharmaflowError(
            f"trace reads the embedded DuckDB warehouse; with warehouse_target "
            f"{settings.warehouse_target} query gold.lot_genealogy / gold.dim_lot there"
        )
    trace = fn(settings.warehouse_path, key)
    if as_json:
        print_json(trace.to_dict())
    else:
        show(trace)


@trace_app.command("lot")
def lot_cmd(
    ctx: typer.Context,
    lot: Annotated[str, typer.Argument(help="Lot number, e.g. L261102-2-04.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Trace a lot: its batch and QA outcome, shipments, orders and patient keys."""
    from pharmaflow.warehouse.trace import trace_lot

    _run(ctx, lot, as_json, trace_lot)


@trace_app.command("batch")
def batch_cmd(
    ctx: typer.Context,
    batch: Annotated[str, typer.Argument(help="Manufacturing batch id.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Trace a batch: the lot it made and everything that lot reached."""
    from pharmaflow.warehouse.trace import trace_batch

    _run(ctx, batch, as_json, trace_batch)


def register(app: typer.Typer) -> None:
    app.add_typer(trace_app, name="trace")
