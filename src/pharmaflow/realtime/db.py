"""The speed layer's database: SQLite (WAL, under the data dir) by default, PostgreSQL in
production, behind one small interface.

Why one interface rather than an ORM: the speed layer's writes are a handful of bulk upserts
per batch, committed with the source offsets in one transaction (that is what makes a crash
lose and double nothing), and its readers are other processes (API, CLI, alerts) reading while
it writes. SQLite in WAL mode gives readers a consistent snapshot beside one writer with no
server; PostgreSQL does the same across machines. SQL is written once with `?` placeholders
and the SQL both dialects share (`INSERT … ON CONFLICT … DO UPDATE`, `excluded.`); this module
translates placeholders for psycopg.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.urls import redact_url

Row = tuple[Any, ...]

# SQLite: a writer waits this long for another writer's lock before failing.
_BUSY_TIMEOUT_MS = 30_000


def _pg_sql(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


@dataclass
class Tx:
    """One open transaction: `execute`, `executemany`, `query`. Committed when the
    `Database.transaction()` block ends without an exception, rolled back otherwise."""

    _cursor: Any
    postgres: bool

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(_pg_sql(sql) if self.postgres else sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self._cursor.executemany(_pg_sql(sql) if self.postgres else sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(_pg_sql(sql) if self.postgres else sql, params)
        return [tuple(r) for r in self._cursor.fetchall()]


class Database:
    """A connection per thread (neither sqlite3 nor psycopg connections may be shared across
    threads mid-transaction). `url`: a path (SQLite) or `postgresql://…`."""

    def __init__(
        self,
        url: str | Path,
        name: str = "realtime store",
        setting: str = "PHARMAFLOW_REALTIME_STORE",
    ) -> None:
        self.url = str(url)
        # what errors call it, and the setting that points elsewhere
        self.name, self.setting = name, setting
        self.postgres = self.url.startswith(("postgresql://", "postgres://"))
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        if not self.postgres:
            Path(self.url).parent.mkdir(parents=True, exist_ok=True)

    @property
    def description(self) -> str:
        return redact_url(self.url) if self.postgres else f"sqlite:{self.url}"

    def _connect(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.postgres:
            import psycopg

            try:
                conn = psycopg.connect(self.url, autocommit=False, connect_timeout=10)
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise PharmaflowError(
                    f"cannot reach the {self.name} {self.description}: {first}"
                ) from None
        else:
            try:
                conn = sqlite3.connect(
                    self.url,
                    timeout=_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoint
                conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:  # not a database, unreadable, a directory...
                raise PharmaflowError(
                    f"cannot open the {self.name} {self.description}: {exc} (move it aside, "
                    f"or point {self.setting} elsewhere)"
                ) from None
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction. SQLite: `BEGIN IMMEDIATE` (the write lock at once, so two writers
        never deadlock upgrading a read lock)."""
        conn = self._connect()
        if self.postgres:
            with conn.transaction(), conn.cursor() as cur:
                yield Tx(cur, True)
            return
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(cur, False)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A read-only transaction: one consistent snapshot for several queries."""
        conn = self._connect()
        if self.postgres:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield Tx(cur, True)
            return
        cur = conn.cursor()
        cur.execute("BEGIN")  # deferred: a WAL reader's snapshot starts at its first read
        try:
            yield Tx(cur, False)
        finally:
            cur.execute("COMMIT")
            cur.close()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):  # closing: nothing left to save
                conn.close()
        self._local = threading.local()
