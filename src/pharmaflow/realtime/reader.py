"""Reading the speed layer's state from any process: one consistent `Snapshot` at a time.

Readers never see half a batch: a batch's windows, keyed state and offsets are committed in
one transaction, and a snapshot is read in one read transaction (SQLite WAL: a reader's view is
fixed at its first read while the writer goes on; PostgreSQL: REPEATABLE READ).

Merging. Rows belong to partitions; a reader sums window values over the partitions (of a
group, or of every group when none is named: normally a store serves one group). A merged
window is FINAL when every partition of the topics it draws on has passed it (clock past its
end plus the allowed lateness; processing-time KPIs: wall time past its end) — stricter than
"every row of it is final", because a partition that lags may still add to a window it holds no
row of yet. Time comes only from what the writers committed (their clocks, moved on by `tick`
while quiet): a reader does not extrapolate, so it never calls final what a writer could still
change, and a stuck order shows once the writer's clock says so.

Keyed state is per partition; with Kafka an order's, shipment's or batch's events share a key
and so a partition, and each id appears once. Waiting time is the order's partition clock minus
the time it entered its stage; `stuck_orders` applies the per-stage thresholds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pharmaflow.realtime.config import RealtimeConfig
from pharmaflow.realtime.db import Database, Tx
from pharmaflow.realtime.kpis import KPI_SCALE, PROCESSING_TIME_KPIS
from pharmaflow.realtime.schema import ensure_schema
from pharmaflow.realtime.snapshot import (
    LabFailure,
    LateCount,
    OrderWaiting,
    SensorState,
    ShipmentState,
    Snapshot,
    WindowValue,
)
from pharmaflow.realtime.windows import US, from_us, to_us

_PROC = ", ".join(f"'{k}'" for k in sorted(PROCESSING_TIME_KPIS))
_EARLIEST_S = -(2**62) // US


class StateReader:
    """Reads what `StateStore`s committed. `group`: one consumer group's rows only (None:
    every group's)."""

    def __init__(
        self, db: Database, config: RealtimeConfig | None = None, group: str | None = None
    ) -> None:
        self.db = db
        self.config = config or RealtimeConfig()
        self.group = group
        ensure_schema(db)

    def _group(self, alias: str = "p") -> tuple[str, list[Any]]:
        if self.group is None:
            return "", []
        return f" AND {alias}.grp = ?", [self.group]

    def snapshot(
        self, now: datetime | None = None, window_since: datetime | None = None
    ) -> Snapshot:
        """Everything readers see, at one moment. `now`: the wall time recorded as `taken_at`
        (default: the current time); `window_since`: only windows starting at or after it
        (None: every retained window, up to the retention's worth)."""
        taken = now or datetime.now(UTC)
        if taken.tzinfo is None:
            taken = taken.replace(tzinfo=UTC)
        where, params = self._group()
        with self.db.reading() as tx:
            clock = self._clock(tx)
            windows = self._windows(tx, None, None, window_since)
            orders = self._orders(tx, None)
            shipments = [
                ShipmentState(
                    shipment_id=r[0],
                    carrier_id=r[1],
                    cold_chain=bool(r[2]),
                    minutes_out_of_range=int(r[3]) / KPI_SCALE["coldchain_minutes_out"],
                    in_excursion=bool(r[4]),
                    last_celsius=_float(r[5]),
                    spec_min=_float(r[6]),
                    spec_max=_float(r[7]),
                    last_reading_at=None if r[8] is None else from_us(r[8]),
                    delivered=bool(r[9]),
                )
                for r in tx.query(
                    "SELECT s.shipment_id, s.carrier_id, s.cold_chain, s.minutes_out_us, "
                    "s.in_excursion, s.last_celsius, s.spec_min, s.spec_max, s.last_reading_us, "
                    "s.delivered FROM rt_shipments s JOIN rt_partitions p ON p.pid = s.pid "
                    f"WHERE 1 = 1{where}",
                    params,
                )
            ]
            sensors = [
                SensorState(
                    batch_id=r[0],
                    equipment_id=r[2],
                    sensor_id=r[1],
                    sensor_type=r[3],
                    consecutive_out_of_spec=int(r[4]),
                    last_value=_float(r[5]),
                    spec_min=_float(r[6]),
                    spec_max=_float(r[7]),
                    last_at=from_us(r[8]),
                )
                for r in tx.query(
                    "SELECT s.batch_id, s.sensor_id, s.equipment_id, s.sensor_type, "
                    "s.consecutive, s.last_value, s.spec_min, s.spec_max, s.last_at_us "
                    "FROM rt_sensors s JOIN rt_partitions p ON p.pid = s.pid "
                    f"WHERE 1 = 1{where}",
                    params,
                )
            ]
            lab_failures = [
                LabFailure(batch_id=b, test_id=t, test_name=n, at=from_us(at))
                for b, t, n, at in tx.query(
                    "SELECT f.batch_id, f.test_id, f.test_name, f.at_us FROM rt_lab_failures f "
                    f"JOIN rt_partitions p ON p.pid = f.pid WHERE 1 = 1{where}",
                    params,
                )
            ]
            totals_rows = tx.query(
                "SELECT t.event_type, SUM(t.on_time), SUM(t.late), SUM(t.late_sum_us), "
                "MAX(t.late_max_us) FROM rt_totals t JOIN rt_partitions p ON p.pid = t.pid "
                f"WHERE 1 = 1{where} GROUP BY t.event_type",
                params,
            )
        late = [
            LateCount(
                event_type=event_type,
                count=int(n_late),
                max_late_s=int(max_us) / US,
                total_late_s=int(sum_us) / US,
            )
            for event_type, _on, n_late, sum_us, max_us in totals_rows
            if int(n_late)
        ]
        return Snapshot(
            clock=clock,
            taken_at=taken,
            windows=windows,
            # ids first; the whole record breaks ties (an id held by two partitions)
            orders=sorted(orders, key=lambda o: (o.order_id, repr(o))),  # as `waiting()`
            shipments=sorted(shipments, key=lambda s: (s.shipment_id, repr(s))),
            sensors=sorted(sensors, key=lambda s: (s.batch_id, s.sensor_id, repr(s))),
            lab_failures=sorted(lab_failures, key=lambda f: (f.batch_id, f.test_id, repr(f))),
            late=sorted(late, key=lambda c: c.event_type),
            totals={str(t): (int(on), int(n)) for t, on, n, _s, _m in sorted(totals_rows)},
        )

    def clock(self) -> datetime | None:
        """The stream clock alone (latest over partitions): what a KPI series needs to know
        how far the live half reaches, without reading the keyed state."""
        with self.db.reading() as tx:
            return self._clock(tx)

    def _clock(self, tx: Tx) -> datetime | None:
        where, params = self._group()
        rows = tx.query(f"SELECT MAX(p.clock_us) FROM rt_partitions p WHERE 1 = 1{where}", params)
        clock = rows[0][0] if rows else None
        return None if clock is None else from_us(clock)

    def waiting(self) -> list[OrderWaiting]:
        """Every order not yet delivered or cancelled, by order id (`Snapshot.orders`)."""
        with self.db.reading() as tx:
            found = self._orders(tx, None)
        return sorted(found, key=lambda o: (o.order_id, repr(o)))

    def order(self, order_id: str) -> OrderWaiting | None:
        """One order's waiting state (None: delivered, cancelled or never seen)."""
        with self.db.reading() as tx:
            found = self._orders(tx, order_id)
        return min(found, key=lambda o: (o.order_id, repr(o))) if found else None

    def _orders(self, tx: Tx, order_id: str | None) -> list[OrderWaiting]:
        where, params = self._group()
        if order_id is not None:
            where += " AND o.order_id = ?"
            params = [*params, order_id]
        return [
            OrderWaiting(
                order_id=oid,
                pharmacy_id=pharmacy_id,
                stage=stage,
                entered_at=from_us(entered),
                waiting_s=max(0, int(clock or entered) - int(entered)) / US,
                insurance_status=status,
            )
            for oid, pharmacy_id, stage, entered, clock, status in tx.query(
                "SELECT o.order_id, o.pharmacy_id, o.stage, o.entered_us, p.clock_us, "
                "o.insurance_status FROM rt_orders o JOIN rt_partitions p ON p.pid = o.pid "
                f"WHERE o.stage NOT IN ('delivered', 'cancelled'){where}",
                params,
            )
        ]

    def windows(
        self, kpi: str | None = None, width_s: int | None = None, since: datetime | None = None
    ) -> list[WindowValue]:
        """Window values merged over partitions, optionally of one KPI, one width, starting at
        or after `since`."""
        with self.db.reading() as tx:
            return self._windows(tx, kpi, width_s, since)

    def committed_offsets(self, group: str) -> dict[tuple[str, int], int]:
        """The last offset committed per (topic, partition) by `group`: resume after it."""
        with self.db.reading() as tx:
            rows = tx.query(
                "SELECT topic, part, last_offset FROM rt_partitions "
                "WHERE grp = ? AND last_offset IS NOT NULL",
                (group,),
            )
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    def _windows(
        self, tx: Tx, kpi: str | None, width_s: int | None, since: datetime | None
    ) -> list[WindowValue]:
        where, params = self._group()
        sql = [
            "SELECT w.kpi, w.width_s, w.start_s, w.entity, w.label, SUM(w.value), MIN(CASE WHEN "
            f"(w.start_s + w.width_s) * {US} + CASE WHEN w.kpi IN ({_PROC}) THEN 0 "
            "ELSE p.lateness_us END <= CASE WHEN w.kpi IN "
            f"({_PROC}) THEN t.wall_us ELSE t.clock_us END THEN 1 ELSE 0 END) "
            "FROM rt_partitions p JOIN (SELECT grp, topic, MIN(clock_us) AS clock_us, "
            "MIN(wall_us) AS wall_us FROM rt_partitions GROUP BY grp, topic) t "
            "ON t.grp = p.grp AND t.topic = p.topic "
            "JOIN rt_windows w ON w.pid = p.pid WHERE w.start_s >= ?"
        ]
        args: list[Any] = [_EARLIEST_S if since is None else to_us(since) // US]
        if kpi is not None:
            sql.append(" AND w.kpi = ?")
            args.append(kpi)
        if width_s is not None:
            sql.append(" AND w.width_s = ?")
            args.append(int(width_s))
        sql.append(where)
        args.extend(params)
        sql.append(" GROUP BY w.kpi, w.width_s, w.start_s, w.entity, w.label")
        values = [
            WindowValue(
                kpi=k,
                width_s=int(w),
                start=from_us(int(s) * US),
                entity=e,
                label=lab,
                value=int(v) / KPI_SCALE.get(k, 1),
                final=bool(int(f)),
            )
            for k, w, s, e, lab, v, f in tx.query("".join(sql), args)
        ]
        return sorted(values, key=lambda v: (v.kpi, v.width_s, v.start, v.entity, v.label))


def stuck_orders(snapshot: Snapshot, config: RealtimeConfig) -> list[OrderWaiting]:
    """Orders waiting in their stage longer than its threshold (`config.stuck_hours`)."""
    stuck = []
    for order in snapshot.orders:
        limit = config.stuck_after_s(order.stage)
        if limit is not None and order.waiting_s > limit:
            stuck.append(order)
    return stuck


def waiting_by_stage(snapshot: Snapshot, config: RealtimeConfig) -> dict[str, tuple[int, int]]:
    """Per stage: (orders waiting in it, of which stuck)."""
    counts: dict[str, list[int]] = {}
    for order in snapshot.orders:
        entry = counts.setdefault(order.stage, [0, 0])
        entry[0] += 1
        limit = config.stuck_after_s(order.stage)
        if limit is not None and order.waiting_s > limit:
            entry[1] += 1
    return {stage: (n, s) for stage, (n, s) in sorted(counts.items())}


def _float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]
