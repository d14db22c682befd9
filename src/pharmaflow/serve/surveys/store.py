"""The survey database: `survey_data.survey_responses` in PostgreSQL, written idempotently.

Why these choices:
- `survey_id` is the primary key and inserts are `on conflict (survey_id) do nothing`: a client
  that retries (a timeout, a double click) never creates a second row, and a later, different
  version of a survey never overwrites the first one (it is reported as a conflict instead).
- `seq` (an identity, so strictly increasing across sessions) is the bookmark of the
  incremental extract into bronze (`pharmaflow.ingest.sources.postgres`). Rows are append-only.
- Many rows go in with one COPY into a temporary table and one insert-select per chunk, not one
  statement per row; a whole call is one transaction, so a batch is stored entirely or not at all.
- Submitters to one table take turns (a transaction-level advisory lock): two transactions
  inserting overlapping survey ids in different orders would otherwise deadlock. Calls are
  short (a COPY and an insert per 5,000 rows), so the wait is too.
- The comment is stored raw, as the operational system of record (like the OMS): PHI is removed
  at ingest, exactly as for Kafka-borne surveys. Nothing here logs row content, and database
  errors are reduced to their primary message (PostgreSQL's DETAIL may echo a failing row).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.surveys.model import NPS_RANGE, RATING_RANGE, SurveySubmission

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "survey_data"
TABLE = "survey_responses"
# The columns a submission fills, in COPY order (`received_at` and `seq` are the database's).
COLUMNS = ("survey_id", "order_id", "rating", "nps", "comment", "submitted_at")
CHUNK_ROWS = 5_000
_DDL_LOCK = 0x5355_5256_4559  # advisory lock key: concurrent first starts create the table once


def ddl(schema: str = DEFAULT_SCHEMA) -> list[sql.Composed]:
    """Statements creating the schema and table if missing (safe to run every start)."""
    table = sql.Identifier(schema, TABLE)
    return [
        sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)),
        sql.SQL(
            """
            create table if not exists {table} (
                survey_id text primary key check (survey_id <> ''),
                order_id text not null check (order_id <> ''),
                rating smallint not null check (rating between {r0} and {r1}),
                nps smallint not null check (nps between {n0} and {n1}),
                comment text,
                submitted_at timestamptz not null,
                received_at timestamptz not null default now(),
                seq bigint generated always as identity unique
            )
            """
        ).format(
            table=table,
            r0=sql.Literal(RATING_RANGE[0]),
            r1=sql.Literal(RATING_RANGE[1]),
            n0=sql.Literal(NPS_RANGE[0]),
            n1=sql.Literal(NPS_RANGE[1]),
        ),
        sql.SQL("comment on column {} is {}").format(
            sql.Identifier(schema, TABLE, "comment"),
            sql.Literal(
                "Patient free text; may hold names, phone numbers, emails. Stored raw here, "
                "scrubbed when ingested into the lake."
            ),
        ),
        sql.SQL("comment on column {} is {}").format(
            sql.Identifier(schema, TABLE, "seq"),
            sql.Literal("Arrival order; the bookmark of the incremental extract into bronze."),
        ),
    ]


@dataclass(frozen=True)
class SubmitResult:
    """What a submission did: `new` rows stored, `duplicates` already present (or repeated in
    the same call) and left alone, and of those the survey ids whose contract content
    (order, rating, nps, comment) differs from the stored version (`conflicts`, sorted)."""

    new: int = 0
    duplicates: int = 0
    conflicts: tuple[str, ...] = ()

    @property
    def submitted(self) -> int:
        return self.new + self.duplicates

    def __add__(self, other: SubmitResult) -> SubmitResult:
        return SubmitResult(
            self.new + other.new,
            self.duplicates + other.duplicates,
            tuple(sorted({*self.conflicts, *other.conflicts})),
        )


def describe_dsn(dsn: str) -> str:
    """host:port/dbname of a libpq DSN or URL, for messages (never the password)."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable DSN)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def db_error(exc: psycopg.Error, doing: str, where: str) -> PharmaflowError:
    """One line for a database error: its primary message, never DETAIL (which can show a row)."""
    primary = exc.diag.message_primary if exc.diag else None
    first = primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return PharmaflowError(f"{doing} ({where}): {first}")


class SurveyStore:
    """Submits surveys to `<schema>.survey_responses`. One connection, opened on first use and
    shared by threads one call at a time; `close()` (or `with`) ends it. With `create` (the
    default) the schema and table are created on first use if missing."""

    def __init__(
        self,
        dsn: str,
        schema: str = DEFAULT_SCHEMA,
        *,
        create: bool = True,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        if chunk_rows <= 0:
            raise ValueError("chunk_rows must be positive")
        self.dsn = dsn
        self.schema = schema
        self.create = create
        self.chunk_rows = chunk_rows
        self.where = describe_dsn(dsn)
        self._table = sql.Identifier(schema, TABLE)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def table(self) -> str:
        return f"{self.schema}.{TABLE}"

    # -- connection ---------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise db_error(exc, "cannot connect to the survey database", self.where) from None
        try:
            if self.create:
                self._create_schema(conn)
            conn.execute(
                "create temp table survey_in (pos bigint, survey_id text, order_id text,"
                " rating smallint, nps smallint, comment text, submitted_at timestamptz)"
                " on commit delete rows"
            )
        except psycopg.Error as exc:
            conn.close()
            raise db_error(exc, "cannot prepare the survey table", self.where) from None
        self._conn = conn
        return conn

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", [_DDL_LOCK])
            for statement in ddl(self.schema):
                conn.execute(statement)

    def ensure_schema(self) -> None:
        """Create the schema and table if missing (done on first use unless `create=False`)."""
        with self._lock:
            conn = self._connection()
            if not self.create:
                try:
                    self._create_schema(conn)
                except psycopg.Error as exc:
                    raise db_error(exc, "cannot create the survey table", self.where) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SurveyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------

    def submit(self, survey: SurveySubmission | Mapping[str, Any]) -> SubmitResult:
        """Store one survey unless its survey_id is already there. Raises `InvalidSurvey`."""
        return self.submit_many([SurveySubmission.parse(survey)])

    def submit_many(self, surveys: Iterable[SurveySubmission | Mapping[str, Any]]) -> SubmitResult:
        """Store every survey whose survey_id is not there yet, in one transaction: a survey
        that fails validation (`InvalidSurvey`, naming its index and field) stores nothing."""
        with self._lock:
            conn = self._connection()
            result = SubmitResult()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    # One submitter at a time per table: concurrent `on conflict` inserts of
                    # overlapping ids in different orders deadlock, and serial commits keep
                    # seq in commit order. Each call is short, so waiting is brief.
                    cur.execute(
                        "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        [f"pharmaflow.surveys:{self.table}"],
                    )
                    for n, chunk in enumerate(_chunks(surveys, self.chunk_rows)):
                        if len(chunk) == 1 and n == 0:
                            result += self._write_one(cur, chunk[0][1])
                        else:
                            result += self._write_chunk(cur, chunk, first=n == 0)
            except psycopg.OperationalError as exc:  # the connection is gone: start afresh
                conn.close()
                self._conn = None
                raise db_error(exc, "cannot store surveys", self.where) from None
            except psycopg.Error as exc:
                raise db_error(exc, "cannot store surveys", self.where) from None
        log.info(
            "surveys submitted to %s: new=%d duplicates=%d conflicts=%d",
            self.table,
            result.new,
            result.duplicates,
            len(result.conflicts),
        )
        return result

    def _write_one(self, cur: psycopg.Cursor[Any], s: SurveySubmission) -> SubmitResult:
        """One survey (an API call): an insert, and a look at the stored row if it was there."""
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        cur.execute(
            sql.SQL(
                "insert into {table} ({columns}) values (%s, %s, %s, %s, %s, %s) "
                "on conflict (survey_id) do nothing"
            ).format(table=self._table, columns=columns),
            [s.survey_id, s.order_id, s.rating, s.nps, s.comment, s.submitted_at],
        )
        if cur.rowcount == 1:
            return SubmitResult(new=1)
        cur.execute(
            sql.SQL(
                "select order_id, rating, nps, comment from {table} where survey_id = %s"
            ).format(table=self._table),
            [s.survey_id],
        )
        stored = cur.fetchone()
        same = stored is None or tuple(stored) == (s.order_id, s.rating, s.nps, s.comment)
        return SubmitResult(duplicates=1, conflicts=() if same else (s.survey_id,))

    def _write_chunk(
        self, cur: psycopg.Cursor[Any], chunk: list[tuple[int, SurveySubmission]], first: bool
    ) -> SubmitResult:
        """Many surveys: COPY into the session's temporary table, then one insert-select."""
        if not first:  # the table empties itself at commit; between chunks, by hand
            cur.execute("truncate pg_temp.survey_in")
        copy_sql = sql.SQL("copy pg_temp.survey_in (pos, {}) from stdin").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with cur.copy(copy_sql) as copy:
            for pos, s in chunk:
                copy.write_row(
                    (pos, s.survey_id, s.order_id, s.rating, s.nps, s.comment, s.submitted_at)
                )
        cur.execute("analyze pg_temp.survey_in")  # join plans fit the chunk, not a guess
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        cur.execute(
            sql.SQL(
                "insert into {table} ({columns}) select {columns} from pg_temp.survey_in "
                "order by pos on conflict (survey_id) do nothing"
            ).format(table=self._table, columns=columns)
        )
        new = max(cur.rowcount, 0)
        # After the insert, every survey_id of the chunk is in the table (ours or earlier):
        # an input row that differs from the stored one is a conflicting second version.
        cur.execute(
            sql.SQL(
                "select distinct i.survey_id from pg_temp.survey_in i "
                "join {table} s on s.survey_id = i.survey_id "
                "where (s.order_id, s.rating, s.nps, s.comment) "
                "is distinct from (i.order_id, i.rating, i.nps, i.comment) order by 1"
            ).format(table=self._table)
        )
        conflicts = tuple(row[0] for row in cur.fetchall())
        return SubmitResult(new, len(chunk) - new, conflicts)

    # -- reads (operations, tests) ------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            conn = self._connection()
            row = conn.execute(sql.SQL("select count(*) from {}").format(self._table)).fetchone()
            return int(row[0]) if row else 0


def _chunks(
    surveys: Iterable[SurveySubmission | Mapping[str, Any]], size: int
) -> Iterator[list[tuple[int, SurveySubmission]]]:
    """Validated surveys with their input positions, `size` at a time."""
    numbered = enumerate(surveys)
    while chunk := list(islice(numbered, size)):
        yield [(i, SurveySubmission.parse(s, index=i)) for i, s in chunk]
