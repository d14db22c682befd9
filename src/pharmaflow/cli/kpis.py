"""`pharmaflow kpis live`: the speed layer's current windows and keyed state, from its store.

It reads the store as another process would (the API, a dashboard): one consistent snapshot,
taken while the speed layer keeps writing. Nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pharmaflow.cli.output import console, print_json

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.realtime.snapshot import Snapshot

kpis_app = typer.Typer(help="Live KPIs of the speed layer.", no_args_is_help=True)


def take_snapshot(settings: Settings, since_s: float | None) -> Snapshot:
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from pharmaflow.errors import PharmaflowError
    from pharmaflow.realtime.config import RealtimeConfig
    from pharmaflow.realtime.db import Database
    from pharmaflow.realtime.reader import StateReader

    url = settings.realtime_store_url
    if not url.startswith(("postgresql://", "postgres://")) and not Path(url).exists():
        raise PharmaflowError(f"no speed-layer state at {url}: run `pharmaflow realtime` first")
    db = Database(url)
    try:
        reader = StateReader(db, RealtimeConfig.from_settings(settings))
        now = datetime.now(UTC)
        probe = reader.snapshot(now, window_since=now)  # the clock, without windows
        since = None
        if since_s is not None and probe.clock is not None:
            since = probe.clock - timedelta(seconds=since_s)
        return reader.snapshot(now, window_since=since)
    finally:
        db.close()


def _windows_table(snapshot: Snapshot, width: int, last: int) -> Table:
    """Per KPI, the total of each of the `last` most recent windows of `width` seconds."""
    totals: dict[tuple[str, object], float] = defaultdict(float)
    final: dict[object, bool] = {}
    for w in snapshot.windows:
        if w.width_s != width:
            continue
        totals[(w.kpi, w.start)] += w.value
        final[w.start] = final.get(w.start, True) and w.final
    starts = sorted(final)[-last:]
    table = Table(title=f"{width}-second windows (event time; * = final)")
    table.add_column("kpi")
    for start in starts:
        mark = "*" if final[start] else ""
        table.add_column(f"{start:%H:%M:%S}{mark}", justify="right")
    for kpi in sorted({k for k, _ in totals}):
        table.add_row(kpi, *(f"{totals.get((kpi, s), 0):,.0f}" for s in starts))
    return table


def _orders_table(snapshot: Snapshot, settings: Settings) -> Table:
    from pharmaflow.realtime.config import WAITING_STAGES, RealtimeConfig

    config = RealtimeConfig.from_settings(settings)
    table = Table(title="orders waiting, by stage")
    table.add_column("stage")
    table.add_column("waiting", justify="right")
    table.add_column("stuck", justify="right")
    table.add_column("stuck after", justify="right")
    for stage in WAITING_STAGES:
        orders = [o for o in snapshot.orders if o.stage == stage]
        limit = config.stuck_after_s(stage)
        stuck = sum(1 for o in orders if limit is not None and o.waiting_s > limit)
        after = f"{limit / 3600:g} h" if limit is not None else "-"
        table.add_row(stage, f"{len(orders):,}", f"{stuck:,}", after)
    return table


def _state_table(snapshot: Snapshot, limit: int) -> Table:
    table = Table(title="needs attention")
    table.add_column("what")
    table.add_column("id")
    table.add_column("detail")
    for s in [s for s in snapshot.shipments if s.in_excursion][:limit]:
        table.add_row(
            "cold chain", s.shipment_id, f"{s.last_celsius} C, {s.minutes_out_of_range:g} min out"
        )
    sensors = sorted(snapshot.sensors, key=lambda s: -s.consecutive_out_of_spec)
    for s in [s for s in sensors if s.consecutive_out_of_spec][:limit]:
        table.add_row(
            "sensor", f"{s.equipment_id}/{s.sensor_id}", f"{s.consecutive_out_of_spec} in a row"
        )
    for f in snapshot.lab_failures[:limit]:
        table.add_row("lab failure", f.batch_id, f"{f.test_name} ({f.test_id})")
    return table


def register(app: typer.Typer) -> None:
    @kpis_app.command("live")
    def live_cmd(
        ctx: typer.Context,
        since: Annotated[
            float,
            typer.Option(min=1, help="Windows of the last this many seconds of event time."),
        ] = 3600,
        width: Annotated[
            int | None, typer.Option(min=1, help="Window width to show (default: narrowest).")
        ] = None,
        last: Annotated[int, typer.Option(min=1, max=24, help="Windows per row.")] = 6,
        as_json: Annotated[bool, typer.Option("--json", help="The snapshot as JSON.")] = False,
    ) -> None:
        """The current windows (early results while open, final once closed), orders waiting
        and stuck per stage, and what needs attention now."""
        from dataclasses import asdict

        settings: Settings = ctx.obj
        snapshot = take_snapshot(settings, since)
        if as_json:
            print_json(asdict(snapshot))
            return
        widths = sorted({w.width_s for w in snapshot.windows})
        clock = f"{snapshot.clock:%Y-%m-%d %H:%M:%S} UTC" if snapshot.clock else "no data yet"
        console.print(f"stream clock {clock}")
        if widths:
            console.print(_windows_table(snapshot, width or widths[0], last))
        console.print(_orders_table(snapshot, settings))
        console.print(_state_table(snapshot, 10))
        late = sum(n for n in (c.count for c in snapshot.late))
        on_time = sum(t[0] for t in snapshot.totals.values())
        console.print(f"{on_time:,} events on time, {late:,} late (left to the batch layer)")

    app.add_typer(kpis_app, name="kpis")
