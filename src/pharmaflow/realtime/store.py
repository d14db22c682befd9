"""The speed layer's state: windows, keyed state, late counts, seen ids and source offsets,
committed together so that a crash at any point neither loses nor double-counts.

`StateStore.apply(events, rejected, offsets, now)` turns one batch into window deltas (additive
upserts), keyed-state upserts, late/on-time totals, the ids the dedupe admitted, the partitions'
clocks and the source offsets, and writes all of it in ONE transaction. A restart `load`s the
partitions it owns and resumes from their stored offsets: what was committed is there exactly
once, what was not is read again.

Already-applied input. A record at or below its partition's committed offset is skipped (not
applied again); a batch entirely below is a no-op that returns `Applied(skipped=n)`. Offsets
never move back. The engine skips such records itself; this is the store's own guard, and a
fence: if the database holds a higher offset for a partition than this store has in memory
(another worker committed it after a rebalance), `apply` refuses with a `PharmaflowError`
instead of writing over it; `load` the partition again to continue.

Memory. In-process state is what a batch needs: per owned partition its clock, keyed state
(compacted with the windows, `compact`) and the (width, start) slots of its open windows; the
windows' values live only in the database. `apply` stages its keyed-state changes and installs
them only after the commit, so a failed transaction leaves memory as it was as well.

Dedupe (`RealtimeDedupe`) mirrors `pharmaflow.ingest.dedupe.DedupeIndex`: `admit(ids, times) ->
(mask, gen)`, `release(gen)`, plus `rollback(gen)` for a batch whose `apply` failed. The ids it
admits are persisted by `apply` (from the events table, in the same transaction) and reloaded by
`load`; memory keeps the ids of `RealtimeConfig.dedupe_horizon_hours` of event time behind the
slowest owned partition's clock, filed by event hour so whole hours go at once. An event older
than that is not checked (there is no lake index to ask here); it is late anyway, so a copy of
it can only count twice among the late events, never in a window.

Partitions are (topic, partition); a file source is (its path, 0), a null partition is 0.
`apply` loads a partition it has not seen first, so a worker may also simply start applying.
Keyed state is per partition (with Kafka keys, an order's events share one): an order whose
events came through two partitions (two files of a replay) has a state in each.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.dedupe import event_hours
from pharmaflow.realtime.config import RealtimeConfig
from pharmaflow.realtime.db import Database, Tx
from pharmaflow.realtime.kpis import (
    PROCESSING_TIME_KPIS,
    KeyedState,
    KpiExtractor,
    LabFailure,
    Order,
    Sensor,
    Shipment,
    StateChanges,
)
from pharmaflow.realtime.schema import create_schema, partition_id
from pharmaflow.realtime.windows import (
    HOUR_US,
    US,
    OpenWindows,
    PartitionClock,
    classify,
    to_us,
    window_start,
)

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]  # (topic, partition); a file source: (path, 0)
_INT64_MAX = np.iinfo(np.int64).max
_PROC_KPIS_SQL = ", ".join(f"'{k}'" for k in sorted(PROCESSING_TIME_KPIS))


class RealtimeDedupe:
    """Event ids admitted recently, in memory; the store persists and reloads them.

    `admit` marks first arrivals (within the batch and against memory) and remembers them under
    a generation; `release(gen)` once the batch is committed lets their hours be evicted;
    `rollback(gen)` forgets them again when the batch was not committed. The eviction horizon
    is set by the store (`set_horizon`): an hour below it is dropped once every batch that
    added to it is released."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._hours: dict[int, list[str]] = {}
        self._hour_gen: dict[int, int] = {}
        self._pending: dict[int, list[str]] = {}
        self._horizon: int | None = None
        self._gen = 0
        self._done_gen = 0

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def hours(self) -> int:
        return len(self._hours)

    @property
    def horizon(self) -> int | None:
        return self._horizon

    def admit(self, ids: pa.Array, times: pa.Array) -> tuple[np.ndarray, int]:
        """True for each id seen neither before nor earlier in this batch (those are
        remembered). Returns the mask and this batch's generation."""
        self._gen += 1
        gen = self._gen
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        n = len(ids)
        if n == 0:
            return np.zeros(0, dtype=bool), gen
        hours = event_hours(times)
        values = ids.to_pylist()
        seen = self._seen
        add = seen.add
        admitted = np.fromiter((not (v in seen or add(v)) for v in values), dtype=bool, count=n)
        if admitted.any():
            kept = np.asarray(values, dtype=object)[admitted]
            self._file(kept, hours[admitted], gen)
            self._pending[gen] = kept.tolist()
        return admitted, gen

    def release(self, gen: int) -> None:
        """Batch `gen` (and every one before it) is committed."""
        self._done_gen = max(self._done_gen, gen)
        for g in [g for g in self._pending if g <= gen]:
            del self._pending[g]
        self._evict()

    def rollback(self, gen: int) -> None:
        """Batch `gen` was not committed: its ids are new again."""
        self._seen.difference_update(self._pending.pop(gen, ()))

    def remember(self, ids: Iterable[str], hour: int) -> None:
        """Ids committed earlier (reloaded by `StateStore.load`)."""
        fresh = [i for i in ids if i not in self._seen]
        self._seen.update(fresh)
        if fresh:
            self._hours.setdefault(hour, []).extend(fresh)

    def drop(self, ids: Iterable[str]) -> None:
        """Forget ids (their partition was revoked)."""
        self._seen.difference_update(ids)

    def set_horizon(self, hour: int | None) -> None:
        self._horizon = hour
        self._evict()

    def _file(self, values: np.ndarray, hours: np.ndarray, gen: int) -> None:
        for hour in np.unique(hours).tolist():
            self._hours.setdefault(hour, []).extend(values[hours == hour].tolist())
            self._hour_gen[hour] = max(self._hour_gen.get(hour, 0), gen)

    def _evict(self) -> None:
        horizon = self._horizon
        if horizon is None:
            return
        for hour in [h for h in self._hours if h < horizon]:
            if self._hour_gen.get(hour, 0) <= self._done_gen:
                self._seen.difference_update(self._hours.pop(hour))
                self._hour_gen.pop(hour, None)


@dataclass(frozen=True)
class Applied:
    """What one `apply` did. `events` = `on_time` + `late` (the events applied)."""

    events: int = 0
    on_time: int = 0
    late: int = 0
    rejected: int = 0
    skipped: int = 0  # records at or below the committed offsets: not applied again
    windows_closed: int = 0  # (partition, width, start) slots that became final
    window_rows: int = 0  # window rows upserted
    late_by_type: dict[str, int] = field(default_factory=dict)
    late_seconds: list[float] = field(default_factory=list)  # how late, per late event


@dataclass(frozen=True)
class Compacted:
    windows: int = 0
    keyed: int = 0
    seen: int = 0


@dataclass
class _Partition:
    key: PartitionKey
    pid: int
    offset: int | None = None
    clock: PartitionClock = field(default_factory=PartitionClock)
    state: KeyedState = field(default_factory=KeyedState)
    open: OpenWindows = field(default_factory=OpenWindows)


def _key(topic: str, partition: int | None) -> PartitionKey:
    return (str(topic), 0 if partition is None else int(partition))


_EVENT_FIELDS = {
    "event_id": pa.string(),
    "event_type": pa.string(),
    "event_time": pa.timestamp("us"),
    "event_json": pa.string(),
    "source_uri": pa.string(),
    "source_partition": pa.int32(),
    "source_offset": pa.int64(),
}


def _time_us(column: pa.ChunkedArray) -> np.ndarray:
    tz = column.type.tz if pa.types.is_timestamp(column.type) else None
    micros = pc.cast(column, pa.timestamp("us", tz)).cast(pa.int64())
    return micros.to_numpy().astype(np.int64)


class StateStore:
    """The state of the partitions one worker owns. Calls must not overlap (the engine
    serialises its writer and its ticker with a lock); `tick` and `compact` may come from
    another thread than `apply` (the database keeps a connection per thread)."""

    def __init__(self, db: Database, group: str, config: RealtimeConfig | None = None) -> None:
        self.db = db
        self.group = group
        self.config = config or RealtimeConfig()
        create_schema(db)
        self.dedupe = RealtimeDedupe()
        self._kpis = KpiExtractor(self.config.windows_s)
        self._parts: dict[PartitionKey, _Partition] = {}

    # -- ownership -------------------------------------------------------------------------

    @property
    def partitions(self) -> list[PartitionKey]:
        return sorted(self._parts)

    def offsets(self) -> dict[PartitionKey, int]:
        """Committed offsets of the owned partitions (those with one)."""
        return {k: p.offset for k, p in self._parts.items() if p.offset is not None}

    def load(self, partitions: Iterable[tuple[str, int | None]]) -> dict[PartitionKey, int]:
        """Take ownership of `partitions`: read their clocks, keyed state, open windows and
        seen ids into memory (replacing what memory had of them). Returns their committed
        offsets (partitions never committed are absent): resume after them."""
        keys = sorted({_key(t, p) for t, p in partitions})
        if not keys:
            return {}
        with self.db.reading() as tx:
            loaded = [self._read_partition(tx, key) for key in keys]
        for part, seen in loaded:
            self._parts[part.key] = part
            for hour, ids in seen:
                self.dedupe.remember(ids, hour)
        self._set_dedupe_horizon()
        return {p.key: p.offset for p, _ in loaded if p.offset is not None}

    def forget(self, partitions: Iterable[tuple[str, int | None]]) -> None:
        """Give up `partitions` (revoked): drop them from memory, dedupe ids included."""
        gone = [self._parts.pop(_key(t, p), None) for t, p in partitions]
        gone_pids = [p.pid for p in gone if p is not None]
        if gone_pids:
            with self.db.reading() as tx:
                for pid in gone_pids:
                    for (ids,) in tx.query("SELECT ids FROM rt_seen WHERE pid = ?", (pid,)):
                        self.dedupe.drop(ids.split("\n"))
        self._set_dedupe_horizon()

    def _read_partition(
        self, tx: Tx, key: PartitionKey
    ) -> tuple[_Partition, list[tuple[int, list[str]]]]:
        pid = partition_id(self.group, *key)
        part = _Partition(key, pid)
        rows = tx.query(
            "SELECT last_offset, watermark_us, clock_us FROM rt_partitions WHERE pid = ?", (pid,)
        )
        if rows:
            offset, watermark, clock = rows[0]
            part.offset = None if offset is None else int(offset)
            # wall reference unset: the downtime before this load is not quiet time
            part.clock = PartitionClock(_int(watermark), _int(clock), None)
        state = part.state
        for order_id, *o in tx.query(
            "SELECT order_id, stage, entered_us, pharmacy_id, insurance_status, insurance_us, "
            "last_us FROM rt_orders WHERE pid = ?",
            (pid,),
        ):
            state.orders[order_id] = Order(o[0], int(o[1]), o[2], o[3], _int(o[4]), int(o[5]))
        for shipment_id, *s in tx.query(
            "SELECT shipment_id, carrier_id, cold_chain, minutes_out_us, last_celsius, spec_min, "
            "spec_max, last_reading_us, in_excursion, delivered, last_us FROM rt_shipments "
            "WHERE pid = ?",
            (pid,),
        ):
            state.shipments[shipment_id] = Shipment(
                s[0], bool(s[1]), int(s[2]), _float(s[3]), _float(s[4]), _float(s[5]),
                _int(s[6]), bool(s[7]), bool(s[8]), int(s[9]),
            )  # fmt: skip
        for batch_id, sensor_id, *s in tx.query(
            "SELECT batch_id, sensor_id, equipment_id, sensor_type, consecutive, last_value, "
            "spec_min, spec_max, last_at_us FROM rt_sensors WHERE pid = ?",
            (pid,),
        ):
            state.sensors[(batch_id, sensor_id)] = Sensor(
                s[0], s[1], int(s[2]), _float(s[3]), _float(s[4]), _float(s[5]), int(s[6])
            )
        for batch_id, test_id, name, at in tx.query(
            "SELECT batch_id, test_id, test_name, at_us FROM rt_lab_failures WHERE pid = ?",
            (pid,),
        ):
            state.lab_failures[(batch_id, test_id)] = LabFailure(name, int(at))
        clock = part.clock.clock_us
        lateness = self.config.lateness_us
        if clock is None:
            since_s = -(2**62)
        else:
            since_s = (clock - lateness) // US - self.config.windows_s[-1]
        for width, start in tx.query(
            "SELECT DISTINCT width_s, start_s FROM rt_windows WHERE pid = ? AND start_s >= ? "
            f"AND kpi NOT IN ({_PROC_KPIS_SQL})",
            (pid, since_s),
        ):
            part.open.add(int(width), [int(start)])
        part.open.close(clock, lateness)
        seen: list[tuple[int, list[str]]] = []
        horizon = self._horizon_hour(part)
        for hour, ids in tx.query(
            "SELECT hour, ids FROM rt_seen WHERE pid = ? AND hour >= ?",
            (pid, -(2**62) if horizon is None else horizon),
        ):
            seen.append((int(hour), ids.split("\n")))
        return part, seen

    def _horizon_hour(self, part: _Partition) -> int | None:
        clock = part.clock.clock_us
        if clock is None:
            return None
        return clock // HOUR_US - self.config.dedupe_horizon_hours

    def _set_dedupe_horizon(self) -> None:
        hours = [h for h in (self._horizon_hour(p) for p in self._parts.values()) if h is not None]
        self.dedupe.set_horizon(min(hours) if hours else None)

    # -- apply ------------------------------------------------------------------------------

    def apply(
        self,
        events: pa.Table | None,
        rejected: pa.Table | None,
        offsets: Mapping[tuple[str, int | None], int],
        now: datetime,
    ) -> Applied:
        """Apply one batch and commit it with `offsets` in one transaction (see module doc).
        `events`: protected, deduplicated events in the bronze shape; `rejected`: quarantined
        records (`source_uri`, `source_partition`, `source_offset`, `event_type`,
        `reason_code`) or None; `offsets`: (topic, partition) → last offset in this batch;
        `now`: wall-clock time (UTC)."""
        now_us = to_us(now)
        events = _normalise(events, _EVENT_FIELDS)
        rejected = _normalise(
            rejected,
            {
                "source_uri": pa.string(),
                "source_partition": pa.int32(),
                "source_offset": pa.int64(),
                "reason_code": pa.string(),
            },
        )
        given = {_key(t, p): int(o) for (t, p), o in offsets.items()}
        ev_keys, ev_codes = _partition_codes(events)
        rj_keys, rj_codes = _partition_codes(rejected)
        keys = sorted(set(ev_keys) | set(rj_keys) | set(given))
        missing = [k for k in keys if k not in self._parts]
        if missing:
            self.load(missing)
        try:
            return self._apply(
                events, rejected, given, keys, ev_keys, ev_codes, rj_keys, rj_codes, now_us
            )
        except BaseException:
            if missing:  # memory as it was: without the partitions this call loaded
                self.forget(missing)
            raise

    def _apply(
        self,
        events: pa.Table,
        rejected: pa.Table,
        given: dict[PartitionKey, int],
        keys: list[PartitionKey],
        ev_keys: list[PartitionKey],
        ev_codes: np.ndarray,
        rj_keys: list[PartitionKey],
        rj_codes: np.ndarray,
        now_us: int,
    ) -> Applied:
        parts = [self._parts[k] for k in keys]
        index = {k: i for i, k in enumerate(keys)}
        ev_code = np.array([index[k] for k in ev_keys], dtype=np.int32)[ev_codes]
        rj_code = np.array([index[k] for k in rj_keys], dtype=np.int32)[rj_codes]

        # Skip what is already committed (the guard; see module doc).
        stored = np.array([-1 if p.offset is None else p.offset for p in parts], dtype=np.int64)
        ev_offset = _offsets(events)
        rj_offset = _offsets(rejected)
        ev_keep = ev_offset > stored[ev_code]
        rj_keep = rj_offset > stored[rj_code]
        skipped = int((~ev_keep).sum() + (~rj_keep).sum())
        if not ev_keep.all():
            events, ev_code, ev_offset = (
                events.filter(ev_keep),
                ev_code[ev_keep],
                ev_offset[ev_keep],
            )
        if not rj_keep.all():
            rejected, rj_code, rj_offset = (
                rejected.filter(rj_keep), rj_code[rj_keep], rj_offset[rj_keep]
            )  # fmt: skip

        new_offsets: dict[int, int] = {}
        for i, part in enumerate(parts):
            top = given.get(part.key, -1)
            for codes, offs in ((ev_code, ev_offset), (rj_code, rj_offset)):
                mine = offs[codes == i]
                if mine.size:
                    top = max(top, int(mine.max()))
            if top > (-1 if part.offset is None else part.offset):
                new_offsets[i] = top
        if not new_offsets:
            return Applied(skipped=skipped)

        # Offset order within each partition: the order everything sequential follows. The
        # events table itself is not reordered (its JSON column is most of its bytes).
        order = np.lexsort((ev_offset, ev_code))
        t_us = _time_us(events["event_time"]) if events.num_rows else np.zeros(0, np.int64)
        code_s, t_s = ev_code[order], t_us[order]

        # Lateness per partition, judged by the clock before each event.
        late_s = np.zeros(len(t_s), dtype=bool)
        late_by_s = np.zeros(len(t_s), dtype=np.int64)
        clocks: dict[int, PartitionClock] = {}
        if len(code_s):
            starts = np.flatnonzero(np.r_[True, code_s[1:] != code_s[:-1]])
            ends = np.r_[starts[1:], len(code_s)]
            for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
                i = int(code_s[lo])
                part = parts[i]
                judged = classify(
                    t_s[lo:hi], part.clock.at(now_us), self.config.narrowest_s,
                    self.config.lateness_us,
                )  # fmt: skip
                late_s[lo:hi] = judged.late
                late_by_s[lo:hi] = judged.late_by_us
                clocks[i] = part.clock.advance(now_us, int(t_s[lo:hi].max()))
        for i in new_offsets:
            clocks.setdefault(i, parts[i].clock.advance(now_us))
        late = np.empty_like(late_s)
        late[order] = late_s
        late_by = np.empty_like(late_by_s)
        late_by[order] = late_by_s

        kpis = self._kpis.compute(
            events, ev_code, t_us, late, order, {i: p.state for i, p in enumerate(parts)}
        )
        pids = np.array([p.pid for p in parts], dtype=np.int64)
        window_rows = self._window_rows(kpis.windows, pids)
        window_rows += self._processing_rows(parts, pids, ev_code, rejected, rj_code, now_us)
        totals = _totals(pids, ev_code, events["event_type"], late, late_by)
        seen = _seen_rows(pids, ev_code, events["event_id"], t_us, ev_offset)

        touched = sorted(set(clocks) | set(new_offsets))
        partition_rows = [
            self._partition_row(parts[i], clocks[i], new_offsets.get(i, parts[i].offset), now_us)
            for i in touched
        ]
        with self.db.transaction() as tx:
            self._fence(tx, [parts[i] for i in touched])
            tx.executemany(
                "INSERT INTO rt_windows (pid, start_s, width_s, kpi, entity, label, value) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pid, start_s, width_s, kpi, entity, "
                "label) DO UPDATE SET value = rt_windows.value + excluded.value",
                window_rows,
            )
            tx.executemany(
                "INSERT INTO rt_totals (pid, event_type, on_time, late, late_sum_us, "
                "late_max_us) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pid, event_type) DO UPDATE "
                "SET on_time = rt_totals.on_time + excluded.on_time, "
                "late = rt_totals.late + excluded.late, "
                "late_sum_us = rt_totals.late_sum_us + excluded.late_sum_us, "
                "late_max_us = CASE WHEN excluded.late_max_us > rt_totals.late_max_us "
                "THEN excluded.late_max_us ELSE rt_totals.late_max_us END",
                totals,
            )
            self._write_state(tx, pids, kpis.changes)
            tx.executemany("INSERT INTO rt_seen (pid, hour, seq, ids) VALUES (?, ?, ?, ?)", seen)
            tx.executemany(
                "INSERT INTO rt_partitions (pid, grp, topic, part, last_offset, watermark_us, "
                "clock_us, wall_us, lateness_us, committed_us) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pid) DO UPDATE SET "
                "last_offset = excluded.last_offset, watermark_us = excluded.watermark_us, "
                "clock_us = excluded.clock_us, wall_us = excluded.wall_us, "
                "lateness_us = excluded.lateness_us, committed_us = excluded.committed_us",
                partition_rows,
            )

        # Committed: now memory follows.
        closed = 0
        for i in touched:
            part = parts[i]
            part.clock = clocks[i]
            if i in new_offsets:
                part.offset = new_offsets[i]
            part.state.install(kpis.changes.get(i, StateChanges()))
        self._open_slots(parts, kpis.windows)
        for i in touched:
            closed += parts[i].open.close(parts[i].clock.clock_us, self.config.lateness_us)
        self._set_dedupe_horizon()
        n_late = int(late.sum())
        late_by_type: dict[str, int] = {}
        if n_late:
            late_types = events["event_type"].filter(pa.array(late)).to_pylist()
            for event_type in late_types:
                late_by_type[event_type] = late_by_type.get(event_type, 0) + 1
        return Applied(
            events=events.num_rows,
            on_time=events.num_rows - n_late,
            late=n_late,
            rejected=rejected.num_rows,
            skipped=skipped,
            windows_closed=closed,
            window_rows=len(window_rows),
            late_by_type=late_by_type,
            late_seconds=(late_by[late] / US).tolist(),
        )

    def _partition_row(
        self, part: _Partition, clock: PartitionClock, offset: int | None, now_us: int
    ) -> tuple:
        return (
            part.pid, self.group, part.key[0], part.key[1], offset, clock.watermark_us,
            clock.clock_us, clock.wall_us, self.config.lateness_us, now_us,
        )  # fmt: skip

    def _fence(self, tx: Tx, parts: list[_Partition]) -> None:
        """Refuse to write a partition whose committed offset moved on behind our back."""
        marks = ", ".join("?" for _ in parts)
        rows = tx.query(
            f"SELECT pid, last_offset FROM rt_partitions WHERE pid IN ({marks})",
            [p.pid for p in parts],
        )
        stored = {int(pid): offset for pid, offset in rows}
        for part in parts:
            theirs = stored.get(part.pid)
            if theirs is not None and (part.offset is None or int(theirs) > part.offset):
                raise PharmaflowError(
                    f"partition {part.key[0]}[{part.key[1]}] of group {self.group} was committed "
                    f"up to offset {theirs} by another worker (this one had "
                    f"{part.offset}); reload it before applying"
                )

    @staticmethod
    def _window_rows(windows: pa.Table, pids: np.ndarray) -> list[tuple]:
        """Upsert rows in primary-key order (partition, start, width): SQLite then walks its
        B-tree forwards instead of jumping about, about three times faster for a batch that
        spans days of event time (a replay)."""
        if windows.num_rows == 0:
            return []
        pid = pids[windows["code"].to_numpy()]
        start = windows["start_s"].to_numpy()
        width = windows["width_s"].to_numpy()
        order = np.lexsort((width, start, pid))
        taken = pa.array(order)
        return list(
            zip(
                pid[order].tolist(),
                start[order].tolist(),
                width[order].tolist(),
                _strings(windows["kpi"].take(taken)),
                _strings(windows["entity"].take(taken)),
                _strings(windows["label"].take(taken)),
                windows["value"].to_numpy()[order].tolist(),
                strict=True,
            )
        )

    def _processing_rows(
        self,
        parts: list[_Partition],
        pids: np.ndarray,
        ev_code: np.ndarray,
        rejected: pa.Table,
        rj_code: np.ndarray,
        now_us: int,
    ) -> list[tuple]:
        """`records` and `quarantined` per topic, in the processing-time window of `now`."""
        n = len(parts)
        records = np.bincount(ev_code, minlength=n) + np.bincount(rj_code, minlength=n)
        quarantined: dict[tuple[int, str], int] = {}
        if rejected.num_rows:
            reasons = pc.fill_null(rejected["reason_code"], "unknown").to_pylist()
            for code, reason in zip(rj_code.tolist(), reasons, strict=True):
                quarantined[(code, reason)] = quarantined.get((code, reason), 0) + 1
        rows: list[tuple] = []
        for width in self.config.windows_s:
            start = window_start(now_us, width)
            for i in np.flatnonzero(records).tolist():
                rows.append((int(pids[i]), start, width, "records", parts[i].key[0], "",
                             int(records[i])))  # fmt: skip
            for (i, reason), count in sorted(quarantined.items()):
                rows.append(
                    (int(pids[i]), start, width, "quarantined", parts[i].key[0], reason, count)
                )
        return rows

    @staticmethod
    def _open_slots(parts: list[_Partition], windows: pa.Table) -> None:
        """Note the (width, start) slots the batch's event-time windows fall in."""
        if windows.num_rows == 0:
            return
        codes = windows["code"].to_numpy().astype(np.int64)
        widths = windows["width_s"].to_numpy().astype(np.int64)
        starts = windows["start_s"].to_numpy()
        pair = codes * (1 << 32) + widths
        for key in np.unique(pair).tolist():
            mine = pair == key
            parts[key >> 32].open.add(key & 0xFFFF_FFFF, np.unique(starts[mine]).tolist())

    @staticmethod
    def _write_state(tx: Tx, pids: np.ndarray, changes: Mapping[int, StateChanges]) -> None:
        orders, shipments, sensors, labs = [], [], [], []
        for code, ch in changes.items():
            pid = int(pids[code])
            orders.extend(
                (pid, k, o.stage, o.entered_us, o.pharmacy_id, o.insurance_status,
                 o.insurance_us, o.last_us)
                for k, o in ch.orders.items()
            )  # fmt: skip
            shipments.extend(
                (pid, k, s.carrier_id, int(s.cold_chain), s.minutes_out_us, s.last_celsius,
                 s.spec_min, s.spec_max, s.last_reading_us, int(s.in_excursion),
                 int(s.delivered), s.last_us)
                for k, s in ch.shipments.items()
            )  # fmt: skip
            sensors.extend(
                (pid, b, sid, s.equipment_id, s.sensor_type, s.consecutive, s.last_value,
                 s.spec_min, s.spec_max, s.last_at_us)
                for (b, sid), s in ch.sensors.items()
            )  # fmt: skip
            labs.extend((pid, b, t, f.test_name, f.at_us) for (b, t), f in ch.lab_failures.items())
        tx.executemany(
            "INSERT INTO rt_orders (pid, order_id, stage, entered_us, pharmacy_id, "
            "insurance_status, insurance_us, last_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (pid, order_id) DO UPDATE SET stage = excluded.stage, "
            "entered_us = excluded.entered_us, pharmacy_id = excluded.pharmacy_id, "
            "insurance_status = excluded.insurance_status, "
            "insurance_us = excluded.insurance_us, last_us = excluded.last_us",
            orders,
        )
        tx.executemany(
            "INSERT INTO rt_shipments (pid, shipment_id, carrier_id, cold_chain, minutes_out_us, "
            "last_celsius, spec_min, spec_max, last_reading_us, in_excursion, delivered, "
            "last_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (pid, shipment_id) DO UPDATE SET carrier_id = excluded.carrier_id, "
            "cold_chain = excluded.cold_chain, minutes_out_us = excluded.minutes_out_us, "
            "last_celsius = excluded.last_celsius, spec_min = excluded.spec_min, "
            "spec_max = excluded.spec_max, last_reading_us = excluded.last_reading_us, "
            "in_excursion = excluded.in_excursion, delivered = excluded.delivered, "
            "last_us = excluded.last_us",
            shipments,
        )
        tx.executemany(
            "INSERT INTO rt_sensors (pid, batch_id, sensor_id, equipment_id, sensor_type, "
            "consecutive, last_value, spec_min, spec_max, last_at_us) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (pid, batch_id, sensor_id) DO UPDATE SET "
            "equipment_id = excluded.equipment_id, sensor_type = excluded.sensor_type, "
            "consecutive = excluded.consecutive, last_value = excluded.last_value, "
            "spec_min = excluded.spec_min, spec_max = excluded.spec_max, "
            "last_at_us = excluded.last_at_us",
            sensors,
        )
        tx.executemany(
            "INSERT INTO rt_lab_failures (pid, batch_id, test_id, test_name, at_us) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (pid, batch_id, test_id) DO UPDATE SET "
            "test_name = excluded.test_name, at_us = excluded.at_us",
            labs,
        )

    # -- time and housekeeping --------------------------------------------------------------

    def tick(self, now: datetime) -> int:
        """Carry every owned partition's clock forward to wall time `now` and commit the
        clocks, so windows of quiet partitions close and waits keep growing with no events.
        Returns how many window slots became final."""
        now_us = to_us(now)
        moved = []
        for part in self._parts.values():
            clock = part.clock.advance(now_us)
            if clock != part.clock:
                moved.append((part, clock))
        if not moved:
            return 0
        with self.db.transaction() as tx:
            tx.executemany(
                "UPDATE rt_partitions SET clock_us = ?, wall_us = ?, lateness_us = ? WHERE pid = ?",
                [(c.clock_us, c.wall_us, self.config.lateness_us, p.pid) for p, c in moved],
            )
        closed = 0
        for part, clock in moved:
            part.clock = clock
            closed += part.open.close(clock.clock_us, self.config.lateness_us)
        self._set_dedupe_horizon()
        return closed

    def compact(self, now: datetime) -> Compacted:
        """Delete, for every owned partition: windows that ended more than the retention before
        its clock (processing-time windows: before `now`), keyed state whose latest event is
        older than that, and seen ids below the dedupe horizon. Memory follows."""
        now_us = to_us(now)
        retention = self.config.retention_us
        windows = keyed = seen = 0
        plans = []
        for part in self._parts.values():
            clock = part.clock.at(now_us)
            plans.append((part, clock))
        with self.db.transaction() as tx:
            for part, clock in plans:
                pid = part.pid
                wall_cut_s = (now_us - retention) // US
                if clock is None:
                    windows += len(tx.query(
                        "DELETE FROM rt_windows WHERE pid = ? AND start_s < ? "
                        f"AND start_s + width_s <= ? AND kpi IN ({_PROC_KPIS_SQL}) RETURNING 1",
                        (pid, wall_cut_s, wall_cut_s),
                    ))  # fmt: skip
                    continue
                cut_us = clock - retention
                cut_s = cut_us // US
                windows += len(tx.query(  # `start_s < ?`: a range of the primary key
                    "DELETE FROM rt_windows WHERE pid = ? AND start_s < ? AND ((kpi IN "
                    f"({_PROC_KPIS_SQL}) AND start_s + width_s <= ?) OR (kpi NOT IN "
                    f"({_PROC_KPIS_SQL}) AND start_s + width_s <= ?)) RETURNING 1",
                    (pid, max(wall_cut_s, cut_s), wall_cut_s, cut_s),
                ))  # fmt: skip
                for table, column in (
                    ("rt_orders", "last_us"),
                    ("rt_shipments", "last_us"),
                    ("rt_sensors", "last_at_us"),
                    ("rt_lab_failures", "at_us"),
                ):
                    keyed += len(tx.query(
                        f"DELETE FROM {table} WHERE pid = ? AND {column} < ? RETURNING 1",
                        (pid, cut_us),
                    ))  # fmt: skip
                horizon = self._horizon_hour(part)
                seen += len(tx.query(
                    "DELETE FROM rt_seen WHERE pid = ? AND hour < ? RETURNING 1", (pid, horizon)
                ))  # fmt: skip
        for part, clock in plans:
            if clock is not None:
                part.state.compact(clock - retention)
        self._set_dedupe_horizon()
        log.debug("realtime compacted windows=%d keyed=%d seen=%d", windows, keyed, seen)
        return Compacted(windows=windows, keyed=keyed, seen=seen)

    def memory(self) -> dict[str, int]:
        """Sizes of the in-process structures (for tests and metrics: they stay bounded)."""
        states = [p.state for p in self._parts.values()]
        return {
            "partitions": len(self._parts),
            "orders": sum(len(s.orders) for s in states),
            "shipments": sum(len(s.shipments) for s in states),
            "sensors": sum(len(s.sensors) for s in states),
            "lab_failures": sum(len(s.lab_failures) for s in states),
            "open_windows": sum(len(p.open) for p in self._parts.values()),
            "dedupe_ids": len(self.dedupe),
            "dedupe_hours": self.dedupe.hours,
        }

    def close(self) -> None:
        self._kpis.close()


def _int(v: object) -> int | None:
    return None if v is None else int(v)  # type: ignore[call-overload]


def _float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def _normalise(table: pa.Table | None, fields: dict[str, pa.DataType]) -> pa.Table:
    """The columns this store reads, typed; an absent table is an empty one."""
    if table is None or table.num_rows == 0:
        return pa.schema(list(fields.items())).empty_table()
    columns = []
    for name, kind in fields.items():
        column = table[name]
        if name == "event_time":
            columns.append(column)  # converted by _time_us (any unit, any zone)
        elif column.type != kind:
            columns.append(pc.cast(column, kind))
        else:
            columns.append(column)
    return pa.Table.from_arrays(columns, names=list(fields))


def _partition_codes(table: pa.Table) -> tuple[list[PartitionKey], np.ndarray]:
    """The distinct (topic, partition) of a table's rows, and each row's index into them."""
    if table.num_rows == 0:
        return [], np.zeros(0, dtype=np.int64)
    topics = pc.dictionary_encode(table["source_uri"].combine_chunks())
    topic_codes = topics.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    parts = pc.fill_null(table["source_partition"], 0).to_numpy().astype(np.int64)
    combined = topic_codes * (1 << 32) + parts
    unique, inverse = np.unique(combined, return_inverse=True)
    names = topics.dictionary.to_pylist()
    keys = [_key(names[int(u >> 32)], int(u & 0xFFFF_FFFF)) for u in unique.tolist()]
    return keys, inverse.astype(np.int64)


def _strings(column: pa.Array | pa.ChunkedArray) -> list[str]:
    """A string column as Python strings, each distinct value made once (the columns repeat a
    few KPI names, entities and labels many times)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    values = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    return values[encoded.indices.to_numpy(zero_copy_only=False)].tolist()


def _offsets(table: pa.Table) -> np.ndarray:
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    return pc.fill_null(table["source_offset"], _INT64_MAX).to_numpy().astype(np.int64)


def _totals(
    pids: np.ndarray,
    codes: np.ndarray,
    types: pa.ChunkedArray,
    late: np.ndarray,
    late_by: np.ndarray,
) -> list[tuple]:
    if not len(codes):
        return []
    table = pa.table(
        {
            "code": pa.array(codes, pa.int32()),
            "event_type": types,
            "on": pa.array((~late).astype(np.int64)),
            "late": pa.array(late.astype(np.int64)),
            "late_by": pa.array(late_by),
        }
    )
    summed = table.group_by(["code", "event_type"]).aggregate(
        [("on", "sum"), ("late", "sum"), ("late_by", "sum"), ("late_by", "max")]
    )
    return list(
        zip(
            pids[summed["code"].to_numpy()].tolist(),
            summed["event_type"].to_pylist(),
            summed["on_sum"].to_pylist(),
            summed["late_sum"].to_pylist(),
            summed["late_by_sum"].to_pylist(),
            summed["late_by_max"].to_pylist(),
            strict=True,
        )
    )


def _seen_rows(
    pids: np.ndarray,
    codes: np.ndarray,
    ids: pa.ChunkedArray,
    t_us: np.ndarray,
    offsets: np.ndarray,
) -> list[tuple]:
    """One row per (partition, event hour) of the batch: the ids joined by newlines, under
    the lowest offset of the group (unique: offsets are committed once)."""
    if not len(codes):
        return []
    hours = np.floor_divide(t_us, HOUR_US)
    order = np.lexsort((hours, codes))
    c, h = codes[order], hours[order]
    starts = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (h[1:] != h[:-1])])
    ids_sorted = ids.combine_chunks().take(pa.array(order))
    lists = pa.ListArray.from_arrays(pa.array(np.r_[starts, len(order)], pa.int32()), ids_sorted)
    joined = pc.binary_join(lists, "\n").to_pylist()
    seqs = np.minimum.reduceat(offsets[order], starts)
    return list(
        zip(pids[c[starts]].tolist(), h[starts].tolist(), seqs.tolist(), joined, strict=True)
    )
