"""The KPIs of one batch: window deltas (additive) and keyed-state updates.

Name, (entity, label) and value of every KPI the speed layer keeps per tumbling window:

| kpi | entity | label | value per event |
|---|---|---|---|
| `events` | '' | event type | 1 (every on-time event) |
| `order_stage_entered` | pharmacy_id | stage | 1 |
| `insurance_decisions` | pharmacy_id | APPROVED / REJECTED / PRIOR_AUTH_REQUIRED | 1 |
| `sensor_readings` | equipment_id | sensor_type | 1 |
| `sensor_out_of_spec` | equipment_id | sensor_type | 1 when value < spec_min or > spec_max |
| `coldchain_minutes_out` | shipment_id | '' | minutes out of range (below) |
| `lab_results` | batch_id | PASS / FAIL / CONDITIONAL | 1 |
| `shipments_created` | carrier_id | service_level | 1 |
| `shipment_exceptions` | carrier_id | exception_code | 1 |
| `records` | topic | '' | 1 per valid event or quarantined record (processing time) |
| `quarantined` | topic | reason_code | 1 per quarantined record (processing time) |

Stage is the last segment of the order event type. Order events other than `placed`, and
shipment exceptions, take their pharmacy or carrier from the keyed state of the order or
shipment at that point of the stream ('unknown' when its `placed`/`created` event was not seen
first). The rejection rate is `insurance_decisions` REJECTED over all decisions.

Values are integers so that adding deltas is exact whatever the batching (a restart sums the
same numbers in another grouping): `coldchain_minutes_out` is kept in microseconds and scaled
to minutes when read (`KPI_SCALE`). Cold-chain minutes: each out-of-range temperature reading
counts the time since that shipment's previous reading (the loggers read every 15 minutes), in
the window of the reading; a shipment's first reading counts 0, as does a reading older than
the shipment's latest (arriving out of order), which also leaves the shipment's state as it is.

Keyed state follows the stream in offset order, late events included (a late `delivered` still
ends an order's wait; late events only stay out of windows):

- orders: stage (forward only: placed < insurance_validated < filled < shipped < delivered |
  cancelled, the first terminal stage wins), the event time it entered the stage, pharmacy,
  latest insurance status. A newer event of the stage the order is in (APPROVED after
  PRIOR_AUTH_REQUIRED) restarts its wait. Delivered and cancelled orders are kept as
  tombstones (never listed as waiting) so an older event arriving after them cannot bring the
  order back; they go with compaction like any untouched state.
- shipments: carrier and cold chain from `created`, delivered flag, minutes out of range,
  latest reading (in excursion when it is out of range).
- sensors per (batch_id, sensor_id): equipment, type, consecutive out-of-spec readings up to the
  latest reading, its value and spec. A reading older than the sensor's latest is counted in
  its window but does not change the run.
- lab failures per (batch_id, test_id): test name and event time of the FAIL result.

Nothing here reads `payload.patient`: only the fields named above are extracted, so no patient
identifier or key can reach the store through this module.

Hot path: the payload fields are extracted in one DuckDB `json_transform` over the batch's
Arrow column; counting KPIs and sensor runs are vectorised (Arrow, numpy); only orders,
shipments and lab failures loop over their rows, which are a small share of a stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pharmaflow.realtime.windows import US, window_starts

UNKNOWN = "unknown"
PROCESSING_TIME_KPIS = frozenset({"records", "quarantined"})
KPI_SCALE = {"coldchain_minutes_out": 60 * US}  # stored integer / scale = value read
KPIS = (
    "events",
    "order_stage_entered",
    "insurance_decisions",
    "sensor_readings",
    "sensor_out_of_spec",
    "coldchain_minutes_out",
    "lab_results",
    "shipments_created",
    "shipment_exceptions",
    "records",
    "quarantined",
)

ORDER_STAGE = {
    f"pharmacy.order.{stage}": stage
    for stage in ("placed", "insurance_validated", "filled", "shipped", "delivered", "cancelled")
}
STAGE_RANK = {
    "placed": 0,
    "insurance_validated": 1,
    "filled": 2,
    "shipped": 3,
    "delivered": 4,
    "cancelled": 4,
}
TERMINAL_STAGES = frozenset({"delivered", "cancelled"})

SENSOR_READING = "manufacturing.sensor.reading"
LAB_RESULT = "manufacturing.lab.result"
SHIPMENT_CREATED = "logistics.shipment.created"
SHIPMENT_DELIVERED = "logistics.shipment.delivered"
SHIPMENT_EXCEPTION = "logistics.shipment.exception"
TEMPERATURE_READING = "logistics.temperature.reading"
SHIPMENT_TYPES = (SHIPMENT_CREATED, SHIPMENT_DELIVERED, SHIPMENT_EXCEPTION, TEMPERATURE_READING)
_SHIPMENT_KIND = {t: i for i, t in enumerate(SHIPMENT_TYPES)}
FIELD_TYPES = frozenset({*ORDER_STAGE, *SHIPMENT_TYPES, SENSOR_READING, LAB_RESULT})

# The payload fields read (and only these: never `patient`).
_STRING_FIELDS = (
    "order_id", "pharmacy_id", "status", "shipment_id", "carrier_id", "service_level",
    "exception_code", "batch_id", "sensor_id", "equipment_id", "sensor_type", "test_id",
    "test_name", "outcome",
)  # fmt: skip
_NUMBER_FIELDS = ("celsius", "value", "spec_min", "spec_max")
_TRANSFORM = (
    '{"payload": {'
    + ", ".join(f'"{f}": "VARCHAR"' for f in _STRING_FIELDS)
    + ", "
    + ", ".join(f'"{f}": "DOUBLE"' for f in _NUMBER_FIELDS)
    + ', "cold_chain": "BOOLEAN"}}'
)

DELTA_SCHEMA = pa.schema(
    [
        pa.field("code", pa.int32()),
        pa.field("kpi", pa.string()),
        pa.field("entity", pa.string()),
        pa.field("label", pa.string()),
        pa.field("t_us", pa.int64()),
        pa.field("value", pa.int64()),
    ]
)
WINDOW_SCHEMA = pa.schema(
    [
        pa.field("code", pa.int32()),
        pa.field("start_s", pa.int64()),
        pa.field("width_s", pa.int32()),
        pa.field("kpi", pa.string()),
        pa.field("entity", pa.string()),
        pa.field("label", pa.string()),
        pa.field("value", pa.int64()),
    ]
)


@dataclass(slots=True)
class Order:
    stage: str
    entered_us: int
    pharmacy_id: str
    insurance_status: str | None
    insurance_us: int | None
    last_us: int

    def clone(self) -> Order:
        return Order(
            self.stage, self.entered_us, self.pharmacy_id, self.insurance_status,
            self.insurance_us, self.last_us,
        )  # fmt: skip


@dataclass(slots=True)
class Shipment:
    carrier_id: str  # '' until its created event is seen
    cold_chain: bool
    minutes_out_us: int
    last_celsius: float | None
    spec_min: float | None
    spec_max: float | None
    last_reading_us: int | None
    in_excursion: bool
    delivered: bool
    last_us: int

    def clone(self) -> Shipment:
        return Shipment(
            self.carrier_id, self.cold_chain, self.minutes_out_us, self.last_celsius,
            self.spec_min, self.spec_max, self.last_reading_us, self.in_excursion,
            self.delivered, self.last_us,
        )  # fmt: skip


@dataclass(slots=True)
class Sensor:
    equipment_id: str
    sensor_type: str
    consecutive: int
    last_value: float | None
    spec_min: float | None
    spec_max: float | None
    last_at_us: int


@dataclass(slots=True)
class LabFailure:
    test_name: str
    at_us: int


@dataclass
class KeyedState:
    """One partition's keyed state (a partition's keys never appear in another partition)."""

    orders: dict[str, Order] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    sensors: dict[tuple[str, str], Sensor] = field(default_factory=dict)
    lab_failures: dict[tuple[str, str], LabFailure] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.orders) + len(self.shipments) + len(self.sensors) + len(self.lab_failures)

    def install(self, changes: StateChanges) -> None:
        """Take a committed batch's new versions of the records it touched."""
        self.orders.update(changes.orders)
        self.shipments.update(changes.shipments)
        self.sensors.update(changes.sensors)
        self.lab_failures.update(changes.lab_failures)

    def compact(self, cutoff_us: int) -> int:
        """Drop every record whose latest event time is before `cutoff_us`; how many."""
        dropped = 0
        for table, last in (
            (self.orders, lambda r: r.last_us),
            (self.shipments, lambda r: r.last_us),
            (self.sensors, lambda r: r.last_at_us),
            (self.lab_failures, lambda r: r.at_us),
        ):
            stale = [k for k, r in table.items() if last(r) < cutoff_us]
            for k in stale:
                del table[k]
            dropped += len(stale)
        return dropped


@dataclass
class StateChanges:
    """The new versions of the records a batch touched in one partition (staged: installed
    into the `KeyedState` only once the batch is committed, so a failed commit changes no
    memory)."""

    orders: dict[str, Order] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    sensors: dict[tuple[str, str], Sensor] = field(default_factory=dict)
    lab_failures: dict[tuple[str, str], LabFailure] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.orders) + len(self.shipments) + len(self.sensors) + len(self.lab_failures)


@dataclass
class BatchKpis:
    windows: pa.Table  # WINDOW_SCHEMA, one row per (partition code, window, kpi, entity, label)
    changes: dict[int, StateChanges]


class _Deltas:
    """Window deltas collected from several places, as Arrow chunks."""

    def __init__(self) -> None:
        self.chunks: list[pa.Table] = []

    def add(
        self,
        code: Any,
        kpi: str,
        entity: Any,
        label: Any,
        t_us: Any,
        value: Any = 1,
    ) -> None:
        n = len(t_us)
        if n == 0:
            return

        def col(v: Any, kind: pa.DataType) -> pa.Array:
            if isinstance(v, pa.ChunkedArray):
                v = v.combine_chunks()
            if isinstance(v, pa.Array):
                return v.cast(kind)
            if isinstance(v, str | int):
                return pa.array(np.full(n, v) if isinstance(v, int) else [v] * n, kind)
            return pa.array(v, kind)

        self.chunks.append(
            pa.Table.from_arrays(
                [
                    col(code, pa.int32()),
                    col(kpi, pa.string()),
                    pc.fill_null(col(entity, pa.string()), UNKNOWN),
                    pc.fill_null(col(label, pa.string()), UNKNOWN),
                    col(t_us, pa.int64()),
                    col(value, pa.int64()),
                ],
                schema=DELTA_SCHEMA,
            )
        )

    def windows(self, widths: tuple[int, ...]) -> pa.Table:
        if not self.chunks:
            return WINDOW_SCHEMA.empty_table()
        deltas = pa.concat_tables(self.chunks)
        times = deltas["t_us"].to_numpy()
        out = []
        for width in widths:
            keyed = pa.table(
                {
                    "code": deltas["code"],
                    "start_s": window_starts(times, width),
                    "kpi": deltas["kpi"],
                    "entity": deltas["entity"],
                    "label": deltas["label"],
                    "value": deltas["value"],
                }
            )
            summed = keyed.group_by(["code", "start_s", "kpi", "entity", "label"]).aggregate(
                [("value", "sum")]
            )
            out.append(
                pa.Table.from_arrays(
                    [
                        summed["code"],
                        summed["start_s"],
                        pa.array(np.full(summed.num_rows, width, dtype=np.int32)),
                        summed["kpi"],
                        summed["entity"],
                        summed["label"],
                        summed["value_sum"],
                    ],
                    schema=WINDOW_SCHEMA,
                )
            )
        return pa.concat_tables(out)


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes (int per row) and the dictionary of a string column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return indices.astype(np.int64), encoded.dictionary.to_pylist()


class KpiExtractor:
    """Turns one batch into window deltas and keyed-state changes. Holds an in-memory DuckDB
    connection for the JSON extraction (one per store)."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        self.widths = tuple(widths)
        self._con = duckdb.connect()

    def close(self) -> None:
        self._con.close()

    def fields(self, events: pa.Table, mask: np.ndarray) -> pa.Table:
        """The payload fields KPIs and state need, one row per event where `mask` is true, in
        row order. DuckDB reads the Arrow columns in place (no copy of the JSON) and keeps
        insertion order; the row number is returned too and checked all the same."""
        view = pa.table(
            {
                "event_json": events["event_json"],
                "wanted": pa.array(mask),
                "i": pa.array(np.arange(len(mask), dtype=np.int64)),
            }
        )
        self._con.register("rt_batch", view)
        try:
            result = self._con.sql(
                f"select i, json_transform(event_json, '{_TRANSFORM}').payload as p "
                "from rt_batch where wanted"
            ).to_arrow_table()
        finally:
            self._con.unregister("rt_batch")
        rows = result["i"].to_numpy()
        if len(rows) > 1 and not (np.diff(rows) > 0).all():  # pragma: no cover - defensive
            result = result.take(pa.array(np.argsort(rows, kind="stable")))
        payload = result["p"].combine_chunks()
        return pa.Table.from_arrays(payload.flatten(), names=[f.name for f in payload.type])

    def compute(
        self,
        events: pa.Table,
        codes: np.ndarray,
        t_us: np.ndarray,
        late: np.ndarray,
        order: np.ndarray,
        states: Mapping[int, KeyedState],
    ) -> BatchKpis:
        """One batch: `events` (columns `event_type`, `event_json`), per row its partition code,
        event time (µs) and lateness, and `order`, the rows in (partition, offset) order (the
        order keyed state follows). `states`: the keyed state of every partition code (read,
        never changed: the changes are returned, staged)."""
        deltas = _Deltas()
        changes = {int(c): StateChanges() for c in np.unique(codes).tolist()}
        if events.num_rows == 0:
            return BatchKpis(WINDOW_SCHEMA.empty_table(), changes)
        on_time = ~late
        if on_time.any():
            mask = pa.array(on_time)
            deltas.add(
                codes[on_time], "events", "", events["event_type"].filter(mask), t_us[on_time]
            )
        type_codes, type_names = _codes(events["event_type"])
        wanted_type = np.array([name in FIELD_TYPES for name in type_names], dtype=bool)
        wanted = wanted_type[type_codes]
        if not wanted.any():
            return BatchKpis(deltas.windows(self.widths), changes)
        fields = self.fields(events, wanted)
        position = np.full(len(wanted), -1, dtype=np.int64)
        position[wanted] = np.arange(int(wanted.sum()))
        rows = order[wanted[order]]  # rows with fields, in (partition, offset) order
        ctx = _Rows(
            fields, position[rows], type_codes[rows], type_names, late[rows], codes[rows],
            t_us[rows],
        )  # fmt: skip
        self._sensors(ctx, deltas, states, changes)
        self._labs(ctx, deltas, states, changes)
        self._shipments_created(ctx, deltas)
        self._orders(ctx, deltas, states, changes)
        self._shipment_events(ctx, deltas, states, changes)
        self._temperatures(ctx, deltas, states, changes)
        return BatchKpis(deltas.windows(self.widths), changes)

    # -- vectorised KPIs --------------------------------------------------------------------

    @staticmethod
    def _shipments_created(ctx: _Rows, deltas: _Deltas) -> None:
        pick = ctx.of(SHIPMENT_CREATED, on_time=True)
        if pick.size:
            f = ctx.take(pick, "carrier_id", "service_level")
            deltas.add(
                ctx.codes[pick], "shipments_created", f["carrier_id"], f["service_level"],
                ctx.t_us[pick],
            )  # fmt: skip

    @staticmethod
    def _labs(
        ctx: _Rows,
        deltas: _Deltas,
        states: Mapping[int, KeyedState],
        changes: dict[int, StateChanges],
    ) -> None:
        pick = ctx.of(LAB_RESULT)
        if not pick.size:
            return
        f = ctx.take(pick, "batch_id", "outcome", "test_id", "test_name")
        on_time = ~ctx.late[pick]
        if on_time.any():
            mask = pa.array(on_time)
            deltas.add(
                ctx.codes[pick][on_time], "lab_results", f["batch_id"].filter(mask),
                f["outcome"].filter(mask), ctx.t_us[pick][on_time],
            )  # fmt: skip
        failed = np.asarray(pc.fill_null(pc.equal(f["outcome"], "FAIL"), False))
        if not failed.any():
            return
        at = pa.array(np.flatnonzero(failed))
        for code, t, batch_id, test_id, name in zip(
            ctx.codes[pick][failed].tolist(), ctx.t_us[pick][failed].tolist(),
            f["batch_id"].take(at).to_pylist(), f["test_id"].take(at).to_pylist(),
            f["test_name"].take(at).to_pylist(), strict=True,
        ):  # fmt: skip
            key = (batch_id or UNKNOWN, test_id or UNKNOWN)
            staged = changes[code].lab_failures
            current = staged.get(key) or states[code].lab_failures.get(key)
            if current is not None and current.at_us > t:
                continue  # an older failure of the same test: the newer one stands
            staged[key] = LabFailure(name or "", t)

    @staticmethod
    def _sensors(
        ctx: _Rows,
        deltas: _Deltas,
        states: Mapping[int, KeyedState],
        changes: dict[int, StateChanges],
    ) -> None:
        pick = ctx.of(SENSOR_READING)
        if not pick.size:
            return
        f = ctx.take(pick, "batch_id", "sensor_id", "equipment_id", "sensor_type")
        value = ctx.number(pick, "value")
        low = ctx.number(pick, "spec_min")
        high = ctx.number(pick, "spec_max")
        out = (value < low) | (value > high)  # NaN (a missing number) compares False
        codes = ctx.codes[pick]
        times = ctx.t_us[pick]
        on_time = ~ctx.late[pick]
        if on_time.any():
            mask = pa.array(on_time)
            equipment = f["equipment_id"].filter(mask)
            kind = f["sensor_type"].filter(mask)
            deltas.add(codes[on_time], "sensor_readings", equipment, kind, times[on_time])
            bad = out[on_time]
            if bad.any():
                bad_mask = pa.array(bad)
                deltas.add(
                    codes[on_time][bad], "sensor_out_of_spec", equipment.filter(bad_mask),
                    kind.filter(bad_mask), times[on_time][bad],
                )  # fmt: skip

        # The run of consecutive out-of-spec readings per (batch, sensor), vectorised over the
        # groups (see `_Groups`); Python touches each sensor once.
        groups = _Groups(codes, f["batch_id"], f["sensor_id"])
        keys = groups.keys(f["batch_id"], f["sensor_id"])
        current = [
            changes[c].sensors.get(k) or states[c].sensors.get(k)
            for c, k in zip(groups.group_codes.tolist(), keys, strict=True)
        ]
        init_t = np.array([_MIN if s is None else s.last_at_us for s in current], np.int64)
        init_run = np.array([0 if s is None else s.consecutive for s in current], np.int64)
        applied = groups.applied(times, init_t)
        if applied.rows.size == 0:
            return
        runs = out[applied.rows]
        index = np.arange(len(runs))
        last_in_spec = np.maximum.reduceat(np.where(runs, -1, index), applied.starts)
        count = applied.ends - applied.starts
        consecutive = np.where(
            last_in_spec >= applied.starts,
            applied.ends - 1 - last_in_spec,
            init_run[applied.groups] + count,
        )
        last = applied.rows[applied.ends - 1]
        last_rows = pa.array(last)
        for g, run, equipment_id, sensor_type, v, lo, hi, t in zip(
            applied.groups.tolist(), consecutive.tolist(),
            f["equipment_id"].take(last_rows).to_pylist(),
            f["sensor_type"].take(last_rows).to_pylist(), value[last].tolist(),
            low[last].tolist(), high[last].tolist(), times[last].tolist(), strict=True,
        ):  # fmt: skip
            code = int(groups.group_codes[g])
            changes[code].sensors[keys[g]] = Sensor(
                equipment_id or UNKNOWN, sensor_type or UNKNOWN, run, _num(v), _num(lo),
                _num(hi), t,
            )  # fmt: skip

    @staticmethod
    def _temperatures(
        ctx: _Rows,
        deltas: _Deltas,
        states: Mapping[int, KeyedState],
        changes: dict[int, StateChanges],
    ) -> None:
        """Cold-chain minutes and the latest reading per shipment, vectorised like sensors.
        Runs after `_shipment_events` (created/delivered staged first): a reading changes
        only the temperature fields, so the two commute."""
        pick = ctx.of(TEMPERATURE_READING)
        if not pick.size:
            return
        shipment_ids = ctx.take(pick, "shipment_id")["shipment_id"]
        celsius = ctx.number(pick, "celsius")
        low = ctx.number(pick, "spec_min")
        high = ctx.number(pick, "spec_max")
        outside = (celsius < low) | (celsius > high)
        codes = ctx.codes[pick]
        times = ctx.t_us[pick]
        late = ctx.late[pick]
        groups = _Groups(codes, shipment_ids)
        keys = [k for (k,) in groups.keys(shipment_ids)]
        current = []
        for c, k in zip(groups.group_codes.tolist(), keys, strict=True):
            staged = changes[c].shipments.get(k)
            if staged is None:
                known = states[c].shipments.get(k)
                staged = known.clone() if known is not None else None
            current.append(staged)
        init_t = np.array(
            [
                _MIN if s is None or s.last_reading_us is None else s.last_reading_us
                for s in current
            ],
            np.int64,
        )
        applied = groups.applied(times, init_t)
        minutes_sum = np.zeros(len(keys), dtype=np.int64)
        last_of = np.full(len(keys), -1, dtype=np.int64)
        if applied.rows.size:
            t = times[applied.rows]
            previous = np.empty(len(t), dtype=np.int64)
            previous[1:] = t[:-1]
            previous[applied.starts] = init_t[applied.groups]
            minutes = np.where(outside[applied.rows] & (previous != _MIN), t - previous, 0)
            minutes_sum[applied.groups] = np.add.reduceat(minutes, applied.starts)
            last_of[applied.groups] = applied.rows[applied.ends - 1]
            counted = (minutes > 0) & ~late[applied.rows]
            if counted.any():
                rows = applied.rows[counted]
                deltas.add(
                    codes[rows], "coldchain_minutes_out", shipment_ids.take(pa.array(rows)), "",
                    times[rows], minutes[counted],
                )  # fmt: skip
        latest = np.maximum.reduceat(times[groups.order], groups.starts)
        for g, (code, key) in enumerate(zip(groups.group_codes.tolist(), keys, strict=True)):
            shipment = current[g]
            newest = int(latest[g])
            if shipment is None:
                shipment = Shipment("", False, 0, None, None, None, None, False, False, newest)
            elif newest > shipment.last_us:
                shipment.last_us = newest
            row = int(last_of[g])
            if row >= 0:
                shipment.minutes_out_us += int(minutes_sum[g])
                shipment.last_celsius = _num(celsius[row])
                shipment.spec_min, shipment.spec_max = _num(low[row]), _num(high[row])
                shipment.last_reading_us = int(times[row])
                shipment.in_excursion = bool(outside[row])
            changes[code].shipments[key] = shipment

    # -- keyed loops (the few events whose meaning depends on the ones before) -------------

    @staticmethod
    def _orders(
        ctx: _Rows,
        deltas: _Deltas,
        states: Mapping[int, KeyedState],
        changes: dict[int, StateChanges],
    ) -> None:
        pick = ctx.of(*ORDER_STAGE)
        if not pick.size:
            return
        f = ctx.take(pick, "order_id", "pharmacy_id", "status")
        stages = [ORDER_STAGE[t] for t in ctx.types[pick].tolist()]
        codes, times = ctx.codes[pick], ctx.t_us[pick]
        pharmacies: list[str] = []  # per event: the pharmacy it counts under
        for code, stage, t, order_id, pharmacy, status in zip(
            codes.tolist(), stages, times.tolist(), f["order_id"].to_pylist(),
            f["pharmacy_id"].to_pylist(), f["status"].to_pylist(), strict=True,
        ):  # fmt: skip
            order_id = order_id or UNKNOWN
            staged = changes[code].orders
            order = staged.get(order_id)
            if order is None:
                known = states[code].orders.get(order_id)
                order = known.clone() if known is not None else None
            if order is None:
                placed_at = (pharmacy or UNKNOWN) if stage == "placed" else UNKNOWN
                order = Order(stage, t, placed_at, None, None, t)
            else:
                if STAGE_RANK[stage] > STAGE_RANK[order.stage]:
                    order.stage, order.entered_us = stage, t
                elif stage == order.stage and stage not in TERMINAL_STAGES and t > order.entered_us:
                    order.entered_us = t  # a newer event of the same stage: the wait restarts
                if stage == "placed" and pharmacy and order.pharmacy_id == UNKNOWN:
                    order.pharmacy_id = pharmacy
                if t > order.last_us:
                    order.last_us = t
            if (
                stage == "insurance_validated"
                and status is not None
                and (order.insurance_us is None or t >= order.insurance_us)
            ):
                order.insurance_status, order.insurance_us = status, t
            staged[order_id] = order
            pharmacies.append((pharmacy or UNKNOWN) if stage == "placed" else order.pharmacy_id)
        on_time = ~ctx.late[pick]
        if not on_time.any():
            return
        entity = pa.array(pharmacies, pa.string())
        mask = pa.array(on_time)
        deltas.add(
            codes[on_time], "order_stage_entered", entity.filter(mask),
            pa.array(stages, pa.string()).filter(mask), times[on_time],
        )  # fmt: skip
        decided = on_time & (ctx.types[pick] == "pharmacy.order.insurance_validated")
        if decided.any():
            mask = pa.array(decided)
            deltas.add(
                codes[decided], "insurance_decisions", entity.filter(mask),
                f["status"].filter(mask), times[decided],
            )  # fmt: skip

    @staticmethod
    def _shipment_events(
        ctx: _Rows,
        deltas: _Deltas,
        states: Mapping[int, KeyedState],
        changes: dict[int, StateChanges],
    ) -> None:
        """created / delivered / exception, in stream order: an exception takes the carrier of
        a `created` seen before it."""
        pick = ctx.of(SHIPMENT_CREATED, SHIPMENT_DELIVERED, SHIPMENT_EXCEPTION)
        if not pick.size:
            return
        f = ctx.take(pick, "shipment_id", "carrier_id", "exception_code", "cold_chain")
        exc: tuple[list[Any], ...] = ([], [], [], [])  # code, carrier, exception code, t
        for code, kind, t, late, shipment_id, carrier, exception_code, cold in zip(
            ctx.codes[pick].tolist(), ctx.types[pick].tolist(), ctx.t_us[pick].tolist(),
            ctx.late[pick].tolist(), f["shipment_id"].to_pylist(), f["carrier_id"].to_pylist(),
            f["exception_code"].to_pylist(), f["cold_chain"].to_pylist(), strict=True,
        ):  # fmt: skip
            shipment_id = shipment_id or UNKNOWN
            staged = changes[code].shipments
            shipment = staged.get(shipment_id)
            if shipment is None:
                known = states[code].shipments.get(shipment_id)
                shipment = known.clone() if known is not None else None
            if kind == SHIPMENT_EXCEPTION:
                if not late:
                    exc[0].append(code)
                    exc[1].append((shipment.carrier_id or UNKNOWN) if shipment else UNKNOWN)
                    exc[2].append(exception_code or UNKNOWN)
                    exc[3].append(t)
                continue
            if shipment is None:
                shipment = Shipment("", False, 0, None, None, None, None, False, False, t)
            elif t > shipment.last_us:
                shipment.last_us = t
            if kind == SHIPMENT_CREATED:
                shipment.carrier_id = carrier or UNKNOWN
                shipment.cold_chain = bool(cold)
            else:
                shipment.delivered = True
            staged[shipment_id] = shipment
        deltas.add(exc[0], "shipment_exceptions", exc[1], exc[2], exc[3])


_MIN = np.iinfo(np.int64).min


def _num(v: Any) -> float | None:
    """A float, None for a missing (NaN) number."""
    if v is None:
        return None
    f = float(v)
    return None if f != f else f


@dataclass(frozen=True)
class _Applied:
    """The rows of `_Groups` that change state, regrouped: `rows` (family positions, by group,
    offset order kept), `starts`/`ends` of each group in `rows`, `groups` (group index)."""

    rows: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    groups: np.ndarray


class _Groups:
    """A family's rows (in offset order) grouped by (partition code, key columns): `order`
    lists the rows group by group, offset order kept within each; `starts`/`ends` bound each
    group in `order`; `group_codes` is each group's partition code."""

    def __init__(self, codes: np.ndarray, *keys: pa.Array) -> None:
        joined = pc.binary_join_element_wise(
            pc.cast(pa.array(codes), pa.string()),
            *(pc.fill_null(k, UNKNOWN) for k in keys),
            "\x1f",
        )
        gid, _ = _codes(joined)
        self.order = np.argsort(gid, kind="stable")
        g = gid[self.order]
        self.starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        self.ends = np.r_[self.starts[1:], len(g)]
        self.group_codes = codes[self.order[self.starts]]

    def keys(self, *columns: pa.Array) -> list[tuple[str, ...]]:
        """Each group's key values (from its first row), 'unknown' for a missing one."""
        firsts = pa.array(self.order[self.starts])
        values = [c.take(firsts).to_pylist() for c in columns]
        return [tuple(v or UNKNOWN for v in row) for row in zip(*values, strict=True)]

    def applied(self, times: np.ndarray, init: np.ndarray) -> _Applied:
        """The rows not older than any earlier row of their group nor than the group's state
        (`init`: its latest time, `_MIN` for none). The usual case — every group already in
        time order — is one vectorised comparison; a group with an out-of-order row takes the
        exact running maximum."""
        t = times[self.order]
        n = len(t)
        previous = np.empty(n, dtype=np.int64)
        previous[1:] = t[:-1]
        previous[self.starts] = init
        keep = t >= previous
        group_of = np.repeat(np.arange(len(self.starts)), self.ends - self.starts)
        if not keep.all():
            for g in np.unique(group_of[~keep]).tolist():
                lo, hi = int(self.starts[g]), int(self.ends[g])
                segment = t[lo:hi]
                before = np.empty(hi - lo, dtype=np.int64)
                before[0] = init[g]
                if hi - lo > 1:
                    np.maximum.accumulate(segment[:-1], out=before[1:])
                    np.maximum(before[1:], init[g], out=before[1:])
                keep[lo:hi] = segment >= before
        kept = np.flatnonzero(keep)
        groups = group_of[kept]
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if kept.size else kept
        ends = np.r_[starts[1:], len(kept)] if kept.size else kept
        return _Applied(self.order[kept], starts, ends, groups[starts] if kept.size else kept)


class _Rows:
    """The batch's rows that carry payload fields, in (partition, offset) order: their type,
    lateness, partition code and time, and where each one's fields are in `fields`."""

    def __init__(
        self,
        fields: pa.Table,
        position: np.ndarray,
        type_codes: np.ndarray,
        type_names: list[str],
        late: np.ndarray,
        codes: np.ndarray,
        t_us: np.ndarray,
    ) -> None:
        self.fields = fields
        self.position = position
        self.types = np.asarray(type_names, dtype=object)[type_codes]  # event type per row
        self.late = late
        self.codes = codes.astype(np.int64)
        self.t_us = t_us.astype(np.int64)
        self._by_type = {
            type_names[c]: np.flatnonzero(type_codes == c) for c in np.unique(type_codes).tolist()
        }

    def of(self, *types: str, on_time: bool = False) -> np.ndarray:
        """Row positions of these event types, in offset order."""
        parts = [self._by_type[t] for t in types if t in self._by_type]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        rows = np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0]
        return rows[~self.late[rows]] if on_time else rows

    def take(self, rows: np.ndarray, *names: str) -> dict[str, pa.Array]:
        index = pa.array(self.position[rows])
        return {n: self.fields[n].take(index).combine_chunks() for n in names}

    def number(self, rows: np.ndarray, name: str) -> np.ndarray:
        column = self.fields[name].take(pa.array(self.position[rows])).combine_chunks()
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
