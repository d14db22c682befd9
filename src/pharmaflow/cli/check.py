"""`pharmaflow check`: the SLA and health rules, for people and for schedulers.

The exit code is the interface a scheduler needs (cron, a Kubernetes CronJob, Airflow): 0 when
nothing is breached (unknown is not a breach), 1 on a breach, 2 for a usage error such as an
`--only` naming no rule. People get a table, scripts one JSON object (`--json`). It only reads
(docs/checks.md), so it can run beside builds and ingest as often as wanted.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, print_json
from pharmaflow.orchestrate.checks import RULES

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.orchestrate.check import CheckReport, CheckResult

Rule = StrEnum("Rule", {name: name for name in RULES})  # type: ignore[misc]

_STYLE = {"ok": "green", "breach": "bold red", "unknown": "yellow"}
_SHORT = {"minutes": "min", "hours": "h"}


def _number(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.2%}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def measured(result: CheckResult) -> str:
    """`value / threshold unit`, as the table shows it (— for a value not measured)."""
    value = "—" if result.value is None else _number(result.value, result.unit)
    if result.threshold is None:
        return f"{value} {_SHORT.get(result.unit, result.unit)}".strip()
    unit = "" if result.unit == "ratio" else f" {_SHORT.get(result.unit, result.unit)}"
    return f"{value} / {_number(result.threshold, result.unit)}{unit}"


def _table(report: CheckReport) -> object:
    from rich.table import Table

    table = Table(title=f"checks at {report.checked_at:%Y-%m-%d %H:%M:%S} UTC")
    table.add_column("rule", overflow="fold")
    table.add_column("subject", overflow="fold")
    table.add_column("status")
    table.add_column("value / threshold", justify="right")
    table.add_column("detail", ratio=1)
    for r in report.results:
        status = f"[{_STYLE[r.status]}]{r.status}[/]"
        table.add_row(r.check, r.subject, status, measured(r), r.detail)
    return table


def summary(report: CheckReport) -> str:
    counts = {s: sum(1 for r in report.results if r.status == s) for s in _STYLE}
    return (
        f"{counts['breach']} breached, {counts['ok']} ok, {counts['unknown']} unknown "
        f"({len(report.results)} results)"
    )


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check_cmd(
        ctx: typer.Context,
        only: Annotated[
            list[Rule] | None,
            typer.Option("--only", help="Run only this rule (repeat for several)."),
        ] = None,
        as_json: Annotated[
            bool,
            typer.Option("--json", help="One JSON object: checked_at, ok, breached, results."),
        ] = False,
    ) -> None:
        """Judge the SLA and health rules (freshness of sources and gold, consumer lag, dead
        letters, delivery SLA, build age, failed tests). Exit 0: nothing breached; 1: a
        breach; 2: a usage error. Read-only."""
        from pharmaflow.orchestrate.check import run_checks

        settings: Settings = ctx.obj
        report = run_checks(settings, only=[r.value for r in only] if only else None)
        if as_json:
            print_json(report.to_dict())
        else:
            console.print(_table(report))
            console.print(summary(report), highlight=False)
        if not report.ok:
            raise typer.Exit(1)
