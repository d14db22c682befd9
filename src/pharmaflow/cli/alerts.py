"""`pharmaflow alerts list|rules`: the alerts the speed layer recorded, and its rules.

Reads only: listing opens the realtime store (SQLite under the data dir, or the PostgreSQL
URL it was configured with) in a read transaction and never creates it; `rules` loads a
rules file exactly as `pharmaflow realtime` would, so a bad file fails here in one line
before it fails a deployment.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pharmaflow.cli.output import console, err_console, print_json
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:
    from pharmaflow.config import Settings

alerts_app = typer.Typer(
    help="Alerts of the speed layer: incidents fired and resolved, and the rules.",
    no_args_is_help=True,
)


class StateChoice(StrEnum):
    firing = "firing"
    resolved = "resolved"
    all = "all"


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The realtime store: a SQLite path or postgresql://… "
        "(default: the configured store, or <data-dir>/realtime/state.db).",
    ),
]


def store_url(settings: Settings, store: str | None) -> str:
    """--store, else PHARMAFLOW_REALTIME_STORE, else `<data-dir>/realtime/state.db`."""
    return store or settings.realtime_store_url


def _when(value: str | None) -> str:
    return "" if value is None else value.replace("T", " ").split(".")[0].removesuffix("Z")


def _delivery(d: dict[str, int]) -> str:
    if not (d["sent"] or d["pending"] or d["given_up"]):
        return "none queued"  # every route of its rule disabled
    parts = [f"{d['sent']} sent"]
    if d["pending"]:
        parts.append(f"{d['pending']} pending")
    if d["given_up"]:
        parts.append(f"{d['given_up']} GIVEN UP")
    if d["failed_attempts"]:
        parts.append(f"{d['failed_attempts']} failed attempts")
    return ", ".join(parts)


@alerts_app.command("list")
def list_cmd(
    ctx: typer.Context,
    state: Annotated[
        StateChoice, typer.Option("--state", help="Which incidents: firing, resolved or all.")
    ] = StateChoice.all,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array, each incident with its history.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    store: StoreOption = None,
) -> None:
    """Incidents newest first: state, severity, rule, key, when fired and resolved, and how
    their notifications fared (sent, pending, given up). Times are UTC."""
    from pharmaflow.realtime.alerts.incidents import list_incidents
    from pharmaflow.realtime.db import Database

    settings: Settings = ctx.obj
    url = store_url(settings, store)
    postgres = url.startswith(("postgresql://", "postgres://"))
    if not postgres and not Path(url).is_file():
        raise PharmaflowError(
            f"no realtime store at {url}: start `pharmaflow realtime` first, or pass --store"
        )
    db = Database(url)
    try:
        incidents = list_incidents(db, state.value, limit)
    finally:
        db.close()
    if as_json:
        print_json(incidents)
        return
    _print(incidents, state.value)


def _print(incidents: list[dict[str, Any]], state: str) -> None:
    from pharmaflow.cli.tables import print_rows

    columns = ["id", "state", "severity", "key", "fired", "resolved", "notifications", "summary"]
    rows = [
        [
            i["id"],
            i["state"],
            i["severity"],
            i["key"],
            _when(i["first_fired_at"]),
            _when(i["resolved_at"]),
            _delivery(i["delivery"]),
            i["summary"],
        ]
        for i in incidents
    ]
    if rows:
        print_rows(console, columns, rows)
    firing = sum(1 for i in incidents if i["state"] == "firing")
    if state == "all":
        console.print(f"{len(incidents):,} incidents ({firing:,} firing)", highlight=False)
    else:
        console.print(f"{len(incidents):,} {state} incidents", highlight=False)
    given_up = sum(i["delivery"]["given_up"] for i in incidents)
    if given_up:
        err_console.print(
            f"warning: {given_up:,} notifications were given up (see --json for the errors)",
            highlight=False,
            soft_wrap=True,
        )


@alerts_app.command("rules")
def rules_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="A rules file to check (default: PHARMAFLOW_ALERT_RULES, else the shipped rules).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load a rules file as `pharmaflow realtime` would and print its routes and rules; a
    bad file is one line naming the rule and the field. Route URLs are never printed."""
    from pharmaflow.realtime.alerts.rules import AlertRules, format_duration

    settings: Settings = ctx.obj
    path = file if file is not None else settings.alert_rules
    rules = AlertRules.load(path)
    routes = [
        {
            "name": r.name,
            "type": r.type,
            "host": r.host or None,
            "enabled": r.disabled is None,
            "disabled": r.disabled,
        }
        for r in rules.routes.values()
    ]
    listed = [
        {
            "id": r.id,
            "kind": r.kind,
            "severity": r.severity,
            "enabled": r.enabled,
            "routes": r.routes,
            "repeat_interval": format_duration(r.repeat_interval),
            "thresholds": _plain(r.thresholds.model_dump()),
            "for_each": getattr(r, "for_each", None),
            "labels": r.labels,
        }
        for r in rules.all_rules
    ]
    if as_json:
        print_json({"origin": rules.origin, "routes": routes, "rules": listed})
        return
    from pharmaflow.cli.tables import print_rows

    console.print(f"rules: {rules.origin}", highlight=False)
    print_rows(
        console,
        ["route", "type", "target"],
        [
            [r["name"], r["type"], r["host"] if r["enabled"] else f"DISABLED: {r['disabled']}"]
            for r in routes
        ],
    )
    print_rows(
        console,
        ["rule", "kind", "severity", "routes", "repeat", "thresholds"],
        [
            [
                r["id"] + ("" if r["enabled"] else " (disabled)"),
                r["kind"],
                r["severity"],
                ", ".join(r["routes"]) or "-",
                r["repeat_interval"],
                _thresholds(r["thresholds"]),
            ]
            for r in listed
        ],
    )
    console.print(f"{len(rules.rules)} rules enabled, {len(routes)} routes", highlight=False)


def _plain(values: Any) -> Any:
    """Thresholds as written in a rules file (durations as 5m, 4h)."""
    from datetime import timedelta

    from pharmaflow.realtime.alerts.rules import format_duration

    if isinstance(values, dict):
        return {k: _plain(v) for k, v in values.items()}
    if isinstance(values, timedelta):
        return format_duration(values)
    return values


def _thresholds(values: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {one(x)}" for k, x in v.items()) + "}"
        return str(v)

    return ", ".join(f"{k}={one(v)}" for k, v in values.items())


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
