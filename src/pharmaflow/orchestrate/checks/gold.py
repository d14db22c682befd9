"""freshness_gold and delivery_sla: judged on the warehouse as serving reads it.

DuckDB target: the published snapshot (warehouse/publish.py), opened read-only with the
configuration serving uses (serve/snapshots.py: DuckDB refuses a second connection to a file
with another configuration in one process, and the API's /metrics runs these checks beside its
own reader). Never the warehouse file: a build holds it for writing, and a reader would make
the build wait. PostgreSQL target: the warehouse database, in a read-only session with a
connect timeout. BigQuery: not read by pharmaflow, so unknown.

Each rule is one query over the judged tables (SQL that DuckDB and PostgreSQL both run), never
a loop over rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pharmaflow.config import Settings
from pharmaflow.orchestrate.check import CheckResult
from pharmaflow.orchestrate.checks.judge import age, count_list, judged, unknown, utc, when

Query = Callable[[str], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Judged:
    """A gold table and the SQL of its newest event time (models/gold, per model's rules)."""

    table: str
    newest: str  # SQL expression over the table's rows
    what: str  # said in the detail: which column the time comes from


# Facts and KPIs; dimensions (dim_*), the genealogy bridge, gold._rejected and the ML tables
# (written by `pharmaflow score`, not by builds) are not judged. Daily tables carry a day, not a
# time: their newest moment is the end of their newest day.
GOLD_TABLES: tuple[Judged, ...] = (
    # the event time of the newest lifecycle / shipment / batch event a row used
    Judged("fact_order_lifecycle", "max(status_changed_at)", "status_changed_at"),
    Judged("fact_shipment", "max(status_changed_at)", "status_changed_at"),
    Judged("fact_shipment_temperature_hourly", "max(reading_hour)", "start of reading_hour"),
    Judged("fact_batch_production", "max(status_changed_at)", "status_changed_at"),
    Judged("fact_deviation", "max(coalesce(closed_at, opened_at))", "opened_at or closed_at"),
    Judged("fact_survey", "max(submitted_at)", "submitted_at"),
    Judged("fact_sales_daily", "max(sale_date) + interval '1 day'", "end of sale_date"),
    Judged(
        "fact_sales_daily_local", "max(business_date) + interval '1 day'", "end of business_date"
    ),
    Judged("daily_order_summary", "max(order_date) + interval '1 day'", "end of order_date"),
    Judged(
        "daily_pharmacy_order_summary", "max(order_date) + interval '1 day'", "end of order_date"
    ),
    Judged(
        "daily_pharmacy_order_summary_local",
        "max(business_date) + interval '1 day'",
        "end of business_date",
    ),
    Judged("kpi_quality", "max(observed_to)", "observed_to"),
)

# KPI tables without a time of their own: rebuilt from one fact on every build, so exactly as
# fresh as it.
KPI_SOURCES = {
    "kpi_fulfilment": "fact_order_lifecycle",
    "kpi_carrier_on_time": "fact_shipment",
    "kpi_nps": "fact_survey",
}


class NoWarehouse(Exception):
    """Nothing to read: the reason is the `unknown` detail."""


@contextmanager
def gold_reader(settings: Settings) -> Iterator[Query]:
    """A read-only query function on what serving reads; NoWarehouse when there is none."""
    if settings.warehouse_target == "duckdb":
        with _snapshot_reader(settings) as query:
            yield query
    elif settings.warehouse_target == "postgres":
        with _postgres_reader(settings) as query:
            yield query
    else:
        raise NoWarehouse(f"pharmaflow does not read the {settings.warehouse_target} warehouse")


@contextmanager
def _snapshot_reader(settings: Settings) -> Iterator[Query]:
    import duckdb

    from pharmaflow.serve.snapshots import reader_config
    from pharmaflow.warehouse import publish

    meta = publish.current(settings.snapshots_dir)
    if meta is None:
        raise NoWarehouse("no published warehouse snapshot yet: run `pharmaflow build`")
    try:
        con = duckdb.connect(str(meta.path), read_only=True, config=reader_config(meta.path))
    except duckdb.IOException as exc:
        if not meta.path.exists():  # pruned between the pointer read and the open
            raise NoWarehouse(f"the snapshot {meta.path.name} vanished; try again") from None
        raise NoWarehouse(f"cannot open the snapshot {meta.path.name}: {exc}") from None
    try:
        yield lambda sql: con.execute(sql).fetchall()
    finally:
        con.close()


@contextmanager
def _postgres_reader(settings: Settings) -> Iterator[Query]:
    import psycopg

    from pharmaflow.urls import redact
    from pharmaflow.warehouse.targets import _secrets

    dsn = settings.warehouse_dsn
    timeout = max(1, round(settings.check_warehouse_timeout_s))
    try:
        con = psycopg.connect(dsn, autocommit=True, connect_timeout=timeout)
    except psycopg.Error as exc:
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, _secrets(dsn))
        raise NoWarehouse(f"cannot reach the PostgreSQL warehouse: {reason}") from None
    try:
        con.execute("set session characteristics as transaction read only")
        con.execute(f"set statement_timeout = {int(settings.check_warehouse_timeout_s * 1000)}")
        yield lambda sql: con.execute(sql).fetchall()  # type: ignore[call-overload]
    finally:
        con.close()


def _gold_tables(query: Query) -> set[str]:
    rows = query("select table_name from information_schema.tables where table_schema = 'gold'")
    return {str(r[0]) for r in rows}


def freshness_gold(settings: Settings, now: datetime) -> list[CheckResult]:
    """Per fact and KPI table: hours since its newest event time, in one query."""
    rule, unit = "freshness_gold", "hours"
    limit = settings.check_gold_max_age_hours
    subjects = [f"gold.{t.table}" for t in GOLD_TABLES] + [f"gold.{k}" for k in KPI_SOURCES]
    try:
        with gold_reader(settings) as query:
            present = _gold_tables(query)
            judged_here = [t for t in GOLD_TABLES if t.table in present]
            newest: dict[str, tuple[datetime | None, int]] = {}
            if judged_here:
                sql = " union all ".join(
                    f"select '{t.table}', {t.newest}, count(*) from gold.{t.table}"
                    for t in judged_here
                )
                newest = {str(name): (ts, int(n)) for name, ts, n in query(sql)}
    except NoWarehouse as exc:
        return [unknown(rule, s, str(exc), limit, unit) for s in subjects]
    what = {t.table: t.what for t in GOLD_TABLES}
    results = []
    for table in [t.table for t in GOLD_TABLES]:
        results.append(_freshness(rule, table, newest, present, what[table], limit, now))
    for kpi, fact in KPI_SOURCES.items():
        if kpi not in present:
            results.append(unknown(rule, f"gold.{kpi}", "table not in the warehouse", limit, unit))
            continue
        source = _freshness(rule, fact, newest, present, what[fact], limit, now)
        results.append(
            CheckResult(
                rule, f"gold.{kpi}", source.status, source.value, limit, unit,
                f"rebuilt from gold.{fact} by every build; {source.detail}",
            )
        )  # fmt: skip
    return results


def _freshness(
    rule: str,
    table: str,
    newest: dict[str, tuple[datetime | None, int]],
    present: set[str],
    what: str,
    limit: float,
    now: datetime,
) -> CheckResult:
    subject = f"gold.{table}"
    if table not in present:
        return unknown(rule, subject, "table not in the warehouse", limit, "hours")
    moment, rows = newest.get(table, (None, 0))
    if moment is None:
        return unknown(rule, subject, "no rows yet", limit, "hours")
    moment = _as_datetime(moment)
    return judged(
        rule, subject, age(now, moment, 3600.0), limit, "hours",
        f"newest event {when(moment)} ({what}, over {rows:,} rows)",
    )  # fmt: skip


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return utc(value)
    return utc(datetime.fromisoformat(str(value)))  # a date, from a daily table's expression


def _sql_time(moment: datetime) -> str:
    """A timestamp literal both DuckDB and PostgreSQL read (naive UTC, as the tables hold)."""
    return f"timestamp '{utc(moment):%Y-%m-%d %H:%M:%S.%f}'"


def delivery_sla(settings: Settings, now: datetime) -> list[CheckResult]:
    """Orders past the delivery time promised for the shipment that carries them (the order's
    latest shipment, fact_shipment.promised_delivery_time) by more than the grace, neither
    delivered (by the pharmacy's or the carrier's event) nor cancelled. Counts only: no order
    id leaves this rule."""
    rule, unit, subject = "delivery_sla", "orders", "orders"
    limit = float(settings.check_delivery_sla_max_breaches)
    grace = settings.check_delivery_sla_grace_hours
    try:
        with gold_reader(settings) as query:
            present = _gold_tables(query)
            missing = sorted({"fact_order_lifecycle", "fact_shipment"} - present)
            if missing:
                raise NoWarehouse(f"gold.{missing[0]} not in the warehouse")
            rows = query(
                "select coalesce(s.current_status, 'unknown'), count(*), "
                "min(s.promised_delivery_time) "
                "from gold.fact_order_lifecycle o "
                "join gold.fact_shipment s on s.shipment_id = o.shipment_id "
                "where o.delivered_at is null and o.cancelled_at is null "
                "and s.delivered_at is null "
                f"and s.promised_delivery_time < {_sql_time(now - timedelta(hours=grace))} "
                "group by 1"
            )
    except NoWarehouse as exc:
        return [unknown(rule, subject, str(exc), limit, unit)]
    by_status = {str(status): int(n) for status, n, _ in rows}
    overdue = sum(by_status.values())
    if not overdue:
        detail = "no order past its promised delivery time"
        if grace:
            detail += f" by more than {grace:g} h"
        return [judged(rule, subject, 0, limit, unit, detail)]
    oldest = min(_as_datetime(p) for _, _, p in rows if p is not None)
    detail = (
        f"{overdue:,} order(s) past their promised delivery and not delivered; oldest "
        f"{age(now, oldest, 3600.0):.1f} h overdue (promised {when(oldest)}); "
        f"shipments {count_list(by_status)}"
    )
    return [judged(rule, subject, overdue, limit, unit, detail)]
