"""PostgreSQL as an ingest source: an incremental extract of the survey database into bronze.

`postgresql://HOST:PORT/DB?table=survey_data.survey_responses` reads the rows of the table
(`pharmaflow.serve.surveys.store`) that are not in the lake yet, turns each into a
`feedback.survey.submitted` envelope and hands the engine message batches, just as the Kafka
source does; from there decode → validate → dedupe → PHI scrub → bronze is the same path, so
silver and gold cannot tell a database-borne survey from a Kafka-borne one.

Exactly once, with the lake as the only bookmark (no side file, no state in the database):
- every row has `seq`, an identity that only grows. A row is a message at offset `seq` of
  partition 0 of a "topic" named after the table, whose topic id names the incarnation of the
  table (server, database, table OID): a table dropped and created again restarts `seq`, and
  its old bookmark must not apply (the deterministic event id then makes overlaps duplicates);
- each batch's manifest records the seq range it holds (`offsets`), so the highest landed seq
  comes from committed manifests only. A crash before a manifest leaves debris that recovery
  removes, and the next run reads those rows again; a crash after it finds them landed.
- `seq` is handed out at insert but rows become visible at commit, so a slow transaction can
  commit seq 5 after seq 6 is visible, and a bookmark at 6 would skip 5 forever. The extract
  therefore first takes `LOCK TABLE … IN SHARE MODE` for an instant: it waits for every
  transaction still inserting and blocks new ones, so the highest seq visible then is a
  watermark below which nothing can appear any more. Only rows up to it are read.
Rows are append-only: an UPDATE of a row already extracted is not seen again.

The comment is free text that may hold PHI; nothing here logs a row, and database errors are
reduced to their primary message (PostgreSQL's DETAIL can echo a row).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import orjson
import psycopg
from psycopg import IsolationLevel, sql
from psycopg.conninfo import conninfo_to_dict

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources.base import RawBatch, Source, SourceContext
from pharmaflow.lake.writers import FILE_WRITER, batch_id
from pharmaflow.serve.surveys.store import db_error, describe_dsn
from pharmaflow.urls import check_host, check_port, redact, split_url, url_password

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres")
EVENT_TYPE = "feedback.survey.submitted"
EVENT_VERSION = 1
SOURCE_SYSTEM = "survey"
EVENT_ID_PREFIX = "survey-db:"
PARTITION = 0
# Columns read, in this order: the bookmark, then the survey.
COLUMNS = ("seq", "survey_id", "order_id", "rating", "nps", "comment", "submitted_at")
LOCK_TIMEOUT_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 10
_NAME = r"[A-Za-z_][A-Za-z0-9_$]*"
_TABLE = re.compile(rf"^(?:{_NAME}\.)?{_NAME}$")


def is_postgres_url(spec: str) -> bool:
    return spec.split("://", 1)[0].lower() in SCHEMES if "://" in spec else False


@dataclass(frozen=True)
class PostgresSpec:
    """What a `postgresql://[USER[:PASSWORD]@]HOST:PORT/DB?table=SCHEMA.TABLE` URL asks for.
    `dsn` is the URL without `table` (other query parameters go to libpq, e.g. `sslmode`);
    it may hold a password, so only `description` is ever shown."""

    dsn: str = field(repr=False)
    table: str = ""
    where: str = ""

    @property
    def description(self) -> str:
        return f"postgresql://{self.where} table={self.table}"

    @property
    def passwords(self) -> list[str | None]:
        """What must never be printed: the password in the URL or in a `password=` parameter."""
        return _passwords(self.dsn, parse_qsl(urlsplit(self.dsn).query))


def _passwords(url: str, query: list[tuple[str, str]]) -> list[str | None]:
    return [url_password(url), *(value for name, value in query if name == "password")]


def parse_postgres_url(url: str) -> PostgresSpec:
    """Parse a source URL. Every mistake is one line naming what is wrong (never the URL
    itself: it may hold a password)."""
    parts = split_url(url, "postgresql://", "postgresql://HOST:PORT/DB?table=SCHEMA.TABLE")
    if parts.scheme.lower() not in SCHEMES:
        raise PharmaflowError("not a postgresql:// URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    tables = [value for name, value in query if name == "table"]
    if not tables or not tables[-1]:
        raise PharmaflowError(
            "postgresql:// source needs ?table=SCHEMA.TABLE "
            "(e.g. postgresql://127.0.0.1:5432/db?table=survey_data.survey_responses)"
        )
    table = tables[-1]
    if not _TABLE.match(table):
        raise PharmaflowError(
            f"bad table name {table!r}: expected SCHEMA.TABLE of letters, digits and _"
        )
    _check_servers(parts.netloc.rpartition("@")[2], {name for name, _ in query})
    rest = [(name, value) for name, value in query if name != "table"]
    # not urlunsplit: it drops the `//` of an empty host (`postgresql:///db?host=/socket`)
    dsn = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{urlencode(rest)}" if rest else "")
    try:
        conninfo_to_dict(dsn)  # libpq's own check of the remaining parameters
    except psycopg.ProgrammingError as exc:
        first = (str(exc).strip().splitlines() or ["unparseable"])[0]
        raise PharmaflowError(
            f"bad PostgreSQL URL: {redact(first, _passwords(url, query))}"
        ) from None
    return PostgresSpec(dsn=dsn, table=table, where=describe_dsn(dsn))


def _check_servers(hosts: str, params: set[str]) -> None:
    """`HOST[:PORT][,HOST[:PORT]…]` (libpq allows several): each host named, each port
    1-65535. A host may instead come as a `host=` parameter (e.g. a socket directory)."""
    what = "the postgresql:// source URL"
    if not hosts:
        if params & {"host", "hostaddr"}:
            return
        raise PharmaflowError(f"{what} needs a host: postgresql://HOST:PORT/DB?table=SCHEMA.TABLE")
    for server in hosts.split(","):
        port: str | None
        if server.startswith("["):  # [IPv6] or [IPv6]:PORT
            inside, bracket, rest = server.partition("]")
            host, port = inside + bracket, rest[1:] if rest[:1] == ":" else None
            if not bracket or (rest and port is None):
                raise PharmaflowError(f"bad host {server!r} in {what}: expected HOST:PORT")
        else:
            host, colon, tail = server.partition(":")
            port = tail if colon else None
        check_host(host, what)
        if port is not None:
            check_port(port, what)


def iso_millis(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and `Z`: the contract's `timestamp-millis` on the
    JSON wire, as the simulator and Kafka producers write it."""
    if moment.tzinfo is None:  # a `timestamp without time zone` column: taken as UTC
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def survey_event(
    survey_id: str,
    order_id: str | None,
    rating: int | None,
    nps: int | None,
    comment: str | None,
    submitted_at: datetime | None,
) -> bytes:
    """One survey row as a contract envelope (JSON bytes). The event id is derived from the
    survey id, so a row extracted twice (a recreated table, a restored database) is a
    duplicate downstream, never a second survey."""
    return orjson.dumps(
        {
            "event_id": EVENT_ID_PREFIX + survey_id,
            "event_type": EVENT_TYPE,
            "event_version": EVENT_VERSION,
            "event_time": iso_millis(submitted_at) if submitted_at is not None else None,
            "source_system": SOURCE_SYSTEM,
            "trace_id": None,
            "key": survey_id,
            "payload": {
                "survey_id": survey_id,
                "order_id": order_id,
                "rating": rating,
                "nps": nps,
                "comment": comment,
            },
        }
    )


@dataclass(frozen=True)
class _Table:
    """The table as the catalog knows it: its quoted name, the bookmark's topic and topic id."""

    ident: sql.Identifier
    topic: str  # schema.table
    topic_id: str  # server system id / database / table OID
    oid: int


class PostgresSource(Source):
    """Rows of one table with `seq` above the lake's bookmark, in batches of `batch_size`.
    `check()` (done by `open_sources`) connects and validates the table up front, so a bad
    URL fails before any ingest work starts."""

    source = "postgres"

    def __init__(self, spec: PostgresSpec) -> None:
        self.spec = spec
        self.description = spec.description
        self._ctx: SourceContext | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._table: _Table | None = None

    # -- set-up -------------------------------------------------------------------------------

    def attach(self, ctx: SourceContext) -> None:
        self._ctx = ctx

    def _error(self, exc: psycopg.Error, doing: str) -> PharmaflowError:
        """One line for a database error (`db_error`), with any password masked: libpq's
        messages are not ours, and some quote the connection string."""
        return PharmaflowError(
            redact(str(db_error(exc, doing, self.spec.where)), self.spec.passwords)
        )

    def check(self) -> PostgresSource:
        self._open()
        return self

    def _open(self) -> tuple[psycopg.Connection[Any], _Table]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.spec.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
            except psycopg.Error as exc:
                raise self._error(exc, "cannot connect to PostgreSQL") from None
            self._conn.isolation_level = IsolationLevel.READ_COMMITTED
            self._table = None
        if self._table is None:
            self._table = self._resolve(self._conn)
        return self._conn, self._table

    def _resolve(self, conn: psycopg.Connection[Any]) -> _Table:
        where = self.spec.where
        try:
            row = conn.execute(
                "select c.oid::bigint, n.nspname, c.relname, current_database() "
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.oid = to_regclass(%s)",
                [self.spec.table],
            ).fetchone()
            if row is None:
                raise PharmaflowError(f"table {self.spec.table} not found in {where}")
            oid, schema, name, database = row
            present = {
                r[0]
                for r in conn.execute(
                    "select attname from pg_attribute "
                    "where attrelid = %s and attnum > 0 and not attisdropped",
                    [oid],
                ).fetchall()
            }
            server = self._server_id(conn)
        except psycopg.Error as exc:
            raise self._error(exc, f"cannot read table {self.spec.table}") from None
        missing = [c for c in COLUMNS if c not in present]
        if missing:
            raise PharmaflowError(
                f"table {schema}.{name} lacks column(s) {', '.join(missing)}: "
                "expected the survey_data.survey_responses layout"
            )
        return _Table(
            ident=sql.Identifier(schema, name),
            topic=f"{schema}.{name}",
            topic_id=f"{server}/{database}/{oid}",
            oid=int(oid),
        )

    @staticmethod
    def _server_id(conn: psycopg.Connection[Any]) -> str:
        """The cluster's system identifier (two servers' tables may share an OID); '' where
        a locked-down server does not let us read it."""
        try:
            with conn.transaction():
                row = conn.execute("select system_identifier from pg_control_system()").fetchone()
        except psycopg.Error:
            return ""
        return str(row[0]) if row else ""

    # -- the extract --------------------------------------------------------------------------

    def _watermark(self, conn: psycopg.Connection[Any], table: _Table) -> int:
        """The highest seq below which no row can still appear (see the module docstring)."""
        try:
            with conn.transaction():
                conn.execute(
                    "select set_config('lock_timeout', %s, true)", [f"{LOCK_TIMEOUT_SECONDS}s"]
                )
                conn.execute(sql.SQL("lock table {} in share mode").format(table.ident))
                row = conn.execute(
                    sql.SQL("select coalesce(max(seq), 0) from {}").format(table.ident)
                ).fetchone()
        except psycopg.errors.LockNotAvailable:
            raise PharmaflowError(
                f"table {table.topic} is busy: a transaction writing to it has been open for "
                f"over {LOCK_TIMEOUT_SECONDS}s; try again"
            ) from None
        except psycopg.Error as exc:
            raise self._error(exc, f"cannot read table {table.topic}") from None
        return int(row[0]) if row else 0

    def _bookmark(self, table: _Table) -> int:
        if self._ctx is None:
            return 0
        self._ctx.refresh([(table.topic, PARTITION)])
        return self._ctx.landed_offsets().get((table.topic, table.topic_id, PARTITION), 0)

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        conn, table = self._open()
        last = self._bookmark(table)
        high = self._watermark(conn, table)
        log.info("extract %s: rows with seq in (%d, %d]", table.topic, last, high)
        query = sql.SQL(
            "select {columns} from {table} where seq > %s and seq <= %s order by seq limit %s"
        ).format(columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), table=table.ident)
        while last < high:
            try:
                rows = conn.execute(query, [last, high, batch_size]).fetchall()
            except psycopg.Error as exc:
                raise self._error(exc, f"cannot read table {table.topic}") from None
            if not rows:
                break
            yield self._batch(table, rows)
            last = int(rows[-1][0])

    def _batch(self, table: _Table, rows: Sequence[tuple[Any, ...]]) -> RawBatch:
        n = len(rows)
        seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        first, last = int(seqs[0]), int(seqs[-1])
        writer = self._ctx.writer if self._ctx is not None else FILE_WRITER
        return RawBatch(
            batch_id=batch_id(writer, f"pg-{table.oid}-{first}-{last}"),
            source=self.source,
            source_uri=f"postgresql://{self.spec.where}",
            records=[survey_event(*r[1:]) for r in rows],
            offsets=seqs,
            partitions=np.zeros(n, dtype=np.int32),
            topics=[table.topic] * n,
            keys=[str(r[1]).encode() for r in rows],
            offset_ranges=[[table.topic, table.topic_id, PARTITION, first, last]],
        )

    def ack(self, batch: RawBatch) -> None:
        """Nothing to do: the batch's manifest (its seq range) is the bookmark."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
