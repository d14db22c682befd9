"""The query layer's common ground: where answers come from, filters, pages and cursors.

The API and the dashboard call the same functions (serve/query/<domain>.py), and those are the
only place serving SQL is written. Every query is parameterised (`?` placeholders, DuckDB binds
them): no value a client sends is ever spliced into SQL text. Answers are plain dicts and
lists (JSON-able), cached per (snapshot, query, parameters).

Two sources, one context:

* the warehouse: the newest published read-only snapshot (serve/snapshots.py). `reading()`
  pins one snapshot so the queries of one answer agree with each other;
* the speed layer: its store (SQLite or PostgreSQL), read as one consistent snapshot
  (realtime/reader.py), cached for `api_cache_seconds` as well.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.cache import TTLCache
from pharmaflow.serve.snapshots import OpenSnapshot, ServingWarehouse

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.realtime.config import RealtimeConfig
    from pharmaflow.realtime.reader import StateReader
    from pharmaflow.realtime.snapshot import OrderWaiting, Snapshot, WindowValue

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


class BadCursor(PharmaflowError):
    """A pagination cursor that this API did not hand out (the API answers 422)."""


@dataclass(frozen=True)
class Filters:
    """The filters every list and KPI route accepts; None: no filter. Dates are UTC days,
    both ends included."""

    date_from: date | None = None
    date_to: date | None = None
    site_id: str | None = None
    pharmacy_id: str | None = None
    carrier_id: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (self.date_from, self.date_to, self.site_id, self.pharmacy_id, self.carrier_id)

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) as UTC datetimes for timestamp columns."""
        start = None if self.date_from is None else _midnight(self.date_from)
        end = None if self.date_to is None else _midnight(self.date_to) + timedelta(days=1)
        return start, end

    def where(
        self,
        *,
        time: str | None = None,
        day: str | None = None,
        site: str | None = None,
        pharmacy: str | None = None,
        carrier: str | None = None,
    ) -> tuple[str, list[Any]]:
        """SQL conditions (joined with AND, starting with ' and ' when any) and their
        parameters, for the columns a query names: `time` a timestamp column, `day` a date
        column, `site`/`pharmacy`/`carrier` id columns. A filter whose column the query does
        not name does not apply to it."""
        parts: list[str] = []
        params: list[Any] = []
        start, end = self.time_range()
        if time is not None:
            if start is not None:
                parts.append(f"{time} >= ?")
                params.append(start.replace(tzinfo=None))
            if end is not None:
                parts.append(f"{time} < ?")
                params.append(end.replace(tzinfo=None))
        if day is not None:
            if self.date_from is not None:
                parts.append(f"{day} >= ?")
                params.append(self.date_from)
            if self.date_to is not None:
                parts.append(f"{day} <= ?")
                params.append(self.date_to)
        for column, value in ((site, self.site_id), (pharmacy, self.pharmacy_id)):
            if column is not None and value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        if carrier is not None and self.carrier_id is not None:
            parts.append(f"{carrier} = ?")
            params.append(self.carrier_id)
        return "".join(f" and {p}" for p in parts), params


@dataclass(frozen=True)
class Page:
    """A page request: `cursor` (opaque, from the previous page's `next_cursor`) and `limit`."""

    cursor: str | None = None
    limit: int = DEFAULT_LIMIT

    def after(self) -> list[Any] | None:
        """The ordering key of the last row of the previous page (None: first page)."""
        if self.cursor is None:
            return None
        try:
            key = orjson.loads(base64.urlsafe_b64decode(self.cursor.encode("ascii")))
        except (ValueError, binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError):
            raise BadCursor("cursor: not a cursor this API returned") from None
        if not isinstance(key, list) or not key or not all(_scalar(v) for v in key):
            raise BadCursor("cursor: not a cursor this API returned")
        return key


def _scalar(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key), default=_jsonable)).decode("ascii")


@dataclass(frozen=True)
class SnapshotInfo:
    """What an answer from the warehouse is as of: the snapshot and when its build ended."""

    id: str
    built_at: datetime


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _plain(value: Any) -> Any:
    """A DuckDB value as a JSON-able one: decimals as floats, naive timestamps as UTC."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class SnapshotQuery:
    """Queries on one pinned snapshot (see `QueryContext.reading`)."""

    def __init__(self, snap: OpenSnapshot, cache: TTLCache) -> None:
        self.snap = snap
        self.cache = cache

    @property
    def info(self) -> SnapshotInfo:
        return SnapshotInfo(self.snap.id, self.snap.meta.built_at)

    def rows(self, name: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of `sql` as dicts, cached by (snapshot, `name`, the SQL text, params):
        `name` says what the query is (in cache keys and profiles), the text tells apart the
        variants a filter builds. Callers must not mutate what they get: cached answers are
        shared."""
        key = (self.snap.id, name, sql, tuple(params))
        return self.cache.get_or_compute(key, lambda: self._run(sql, params))

    def one(self, name: str, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.rows(name, sql, params)
        return rows[0] if rows else None

    def page(
        self,
        name: str,
        sql: str,
        params: Sequence[Any],
        order_by: Sequence[str],
        page: Page,
    ) -> dict[str, Any]:
        """One page of `sql` (a SELECT without ORDER BY or LIMIT) in keyset order: rows after
        the cursor's key by the columns `order_by` (unique together: the ordering is total),
        `page.limit` of them, and the cursor of the next page (None on the last)."""
        limit = max(1, min(int(page.limit), MAX_LIMIT))
        after = page.after()
        keys = ", ".join(order_by)
        query = f"select * from ({sql}) as q"
        args = list(params)
        if after is not None:
            if len(after) != len(order_by):
                raise BadCursor("cursor: not a cursor of this list")
            query += f" where ({keys}) > ({', '.join('?' for _ in order_by)})"
            args += after
        query += f" order by {keys} limit {limit + 1}"
        try:
            rows = self.rows(f"{name}:page", query, args)
        except (duckdb.ConversionException, duckdb.BinderException):
            if after is None:
                raise
            # a cursor of another list: its key's types do not compare with this list's
            raise BadCursor("cursor: not a cursor of this list") from None
        more = len(rows) > limit
        items = rows[:limit]
        last = items[-1] if more else None
        next_cursor = None if last is None else encode_cursor([last[k] for k in order_by])
        return {"items": items, "next_cursor": next_cursor}

    def _run(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cur = self.snap.cursor()
        cur.execute(sql, list(params))
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, map(_plain, row), strict=True)) for row in cur.fetchall()]


class QueryContext:
    """Everything one serving process reads from, shared by its threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.warehouse = ServingWarehouse(settings.snapshots_dir)
        self.cache = TTLCache(settings.api_cache_seconds)
        self._live_lock = threading.Lock()
        self._reader: StateReader | None = None
        self._config: RealtimeConfig | None = None

    @contextmanager
    def reading(self) -> Iterator[SnapshotQuery]:
        """Pin the current warehouse snapshot for the block (raises NotBuilt without one)."""
        with self.warehouse.reading() as snap:
            yield SnapshotQuery(snap, self.cache)

    def info(self) -> SnapshotInfo:
        with self.reading() as q:
            return q.info

    # the speed layer

    @property
    def realtime_config(self) -> RealtimeConfig:
        from pharmaflow.realtime.config import RealtimeConfig

        if self._config is None:
            self._config = RealtimeConfig.from_settings(self.settings)
        return self._config

    def live_reader(self) -> StateReader | None:
        """The speed layer's store, or None when it has never run (no state to read)."""
        with self._live_lock:
            if self._reader is not None:
                return self._reader
            url = self.settings.realtime_store_url
            if not url.startswith(("postgresql://", "postgres://")) and not Path(url).exists():
                return None
            from pharmaflow.realtime.db import Database
            from pharmaflow.realtime.reader import StateReader

            self._reader = StateReader(Database(url), self.realtime_config)
            return self._reader

    def live(self) -> Snapshot | None:
        """The speed layer's state now (without windows: `live_windows` reads those), cached
        for `api_cache_seconds`; None when the speed layer has never run."""
        reader = self.live_reader()
        if reader is None:
            return None
        return self.cache.get_or_compute(
            ("live", "snapshot"),
            lambda: reader.snapshot(window_since=datetime.now(UTC) + timedelta(days=3650)),
        )

    def live_clock(self) -> datetime | None:
        """The speed layer's stream clock (None: it has never run or holds nothing yet)."""
        reader = self.live_reader()
        if reader is None:
            return None
        return self.cache.get_or_compute(("live", "clock"), reader.clock)

    def live_waiting(self) -> list[OrderWaiting] | None:
        """Orders waiting in a stage now (None: no speed layer)."""
        reader = self.live_reader()
        if reader is None:
            return None
        return self.cache.get_or_compute(("live", "waiting"), reader.waiting)

    def live_order(self, order_id: str) -> OrderWaiting | None:
        """One order's live waiting state (None: not waiting, or no speed layer)."""
        reader = self.live_reader()
        if reader is None:
            return None
        return self.cache.get_or_compute(
            ("live", "order", order_id), lambda: reader.order(order_id)
        )

    def live_windows(self, kpi: str, width_s: int, since: datetime | None) -> list[WindowValue]:
        """The speed layer's windows of one KPI and width starting at or after `since`."""
        reader = self.live_reader()
        if reader is None:
            return []
        key = ("live", "windows", kpi, width_s, since)
        return self.cache.get_or_compute(key, lambda: reader.windows(kpi, width_s, since))

    def close(self) -> None:
        self.warehouse.close()
        if self._reader is not None:
            self._reader.db.close()
