"""The persistent half of deduplication: every landed event id, filed by event date.

Memory holds only the ids of recent event hours (see `ingest.dedupe`); an event older than
that window is checked here, reading just the parts of its own event date. Each batch writes
one small part per event date it touched, committed with the batch like any other part, so
the index never holds an id that is not in bronze and never misses one that is.

`LandedElsewhere` reads the parts of batches other writers committed while this one runs (the
lake-wide dedupe check, see `lake.commits`), again only for the dates a batch touches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.files import write_parquet_atomic
from pharmaflow.lake.layout import LakeLayout

HOUR_US = 3_600_000_000
SCHEMA = pa.schema([("event_id", pa.string()), ("event_hour", pa.int32())])


def date_of_hour(hour: int) -> str:
    """`YYYY-MM-DD` of an hour counted from the Unix epoch."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour)).strftime("%Y-%m-%d")


def _batch_of(path: Path) -> str:
    return path.stem.removeprefix("part-")


class EventIndex:
    def __init__(self, layout: LakeLayout) -> None:
        self.layout = layout

    def write(self, batch_id: str, ids: pa.Array, hours: np.ndarray) -> list[Path]:
        """One part per event date of the batch's landed events; returns the paths."""
        if not len(ids):
            return []
        days = hours // 24
        order = np.argsort(days, kind="stable")
        days = days[order]
        bounds = np.flatnonzero(np.r_[True, days[1:] != days[:-1], True])
        ids = ids.take(pa.array(order))
        hours = hours[order].astype(np.int32)
        paths = []
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            path = self.layout.event_ids_part(date_of_hour(int(days[lo]) * 24), batch_id)
            table = pa.table([ids[lo:hi], pa.array(hours[lo:hi])], schema=SCHEMA)
            write_parquet_atomic(table, path)
            paths.append(path)
        return paths

    def dates(self) -> list[str]:
        if not self.layout.event_ids.exists():
            return []
        return sorted(p.name.removeprefix("date=") for p in self.layout.event_ids.glob("date=*"))

    def parts(self, event_date: str, committed: Callable[[str], bool]) -> list[Path]:
        directory = self.layout.event_ids / f"date={event_date}"
        if not directory.exists():
            return []
        return sorted(p for p in directory.glob("part-*.parquet") if committed(_batch_of(p)))

    def read(self, paths: list[Path]) -> Iterator[pa.Table]:
        for path in paths:
            yield pq.read_table(path, schema=SCHEMA)

    def known(
        self, ids: list[str], hours: np.ndarray, committed: Callable[[str], bool]
    ) -> set[str]:
        """Those of `ids` (each with its event hour) that a committed batch landed."""
        days = hours // 24
        candidates = pa.array(ids, pa.string())
        found: set[str] = set()
        for day in np.unique(days).tolist():
            tables = list(self.read(self.parts(date_of_hour(day * 24), committed)))
            if not tables:
                continue
            landed = pa.concat_tables(tables)["event_id"]
            mine = candidates.filter(pa.array(days == day))
            found.update(mine.filter(pc.is_in(mine, value_set=landed)).to_pylist())
        return found


def event_dates(hours: np.ndarray) -> list[str]:
    """The event dates of event hours."""
    return [date_of_hour(int(day) * 24) for day in np.unique(hours // 24).tolist()]


class LandedElsewhere:
    """Event ids that other writers' batches landed since this writer last looked.

    Batches come from the commit journal (in commit order); of each, only the event-index parts
    listed in its manifest are noted, by event date, and a part is read only when a batch of
    this writer touches its date. A duplicate has its original's event time, so that is enough.
    """

    def __init__(self, commits: CommitLog, index: EventIndex, data_root: Path) -> None:
        self.commits = commits
        self.index = index
        self.root = data_root
        self._pending: dict[str, list[Path]] = {}
        # What the last batch's polls returned: the batch after it was deduped before those
        # ids reached the writer's memory (batches overlap), so it is checked against them too.
        self.recent = SCHEMA.empty_table()
        # Under the lock no commit is half done: every batch journaled before this offset has
        # its manifest, so the refresh (and the dedupe that loads after it) knows it.
        with commits.lock():
            self._offset = commits.journal_offset()
            commits.refresh()

    def poll(self, dates: Iterable[str], locked: bool) -> pa.Table:
        """(event_id, event_hour) landed by others on `dates`, not returned before. `locked`:
        the caller holds the commit lock, so a journaled batch without a manifest died before
        committing; outside the lock it may be committing now, and is looked at next time."""
        lines, end = self.commits.journal_since(self._offset)
        offset = self._offset
        for batch_id in lines:
            if not self.commits.is_mine(batch_id):
                if self.commits.has_manifest(batch_id):
                    self._note(batch_id)
                elif not locked:
                    break
            offset += len(batch_id.encode()) + 1
        else:
            offset = end
        self._offset = offset
        tables = [t for d in dates for t in self.index.read(self._pending.pop(d, []))]
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()

    def _note(self, batch_id: str) -> None:
        # Committed from now on for this writer too: its ids, once read here and dropped from
        # memory as too old, are still found by the dedupe's look-ups in the lake (`known`).
        self.commits.note(batch_id)
        for name in self.commits.manifest(batch_id).get("files", []):
            path = Path(name) if Path(name).is_absolute() else self.root / name
            if path.parent.parent.name == self.index.layout.event_ids.name:
                day = path.parent.name.removeprefix("date=")
                self._pending.setdefault(day, []).append(path)
