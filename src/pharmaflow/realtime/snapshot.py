"""What readers of the speed layer see: one consistent view of its state at a moment.

This is the contract between the speed layer's store (which builds it, `StateReader.snapshot`)
and everything that reads live state: alert rules, `pharmaflow kpis live`, the API and the
dashboards. Plain frozen dataclasses, so a rule or a route can be tested with a hand-built
snapshot, and no reader depends on how the store lays out its tables.

Times are timezone-aware UTC datetimes. The stream `clock` is event time driven by the data
and carried forward by wall-clock time while a partition is quiet (see `realtime/windows.py`),
so a stuck order is flagged even when no further event arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class WindowValue:
    """One KPI value of one tumbling window, merged over the partitions that hold it.
    `entity`/`label`: the KPI's dimensions ('' where it has none), see `realtime/kpis.py`.
    `final`: the window is closed (watermark past its end plus the allowed lateness)."""

    kpi: str
    width_s: int
    start: datetime
    entity: str
    label: str
    value: float
    final: bool

    @property
    def end(self) -> datetime:
        from datetime import timedelta

        return self.start + timedelta(seconds=self.width_s)


@dataclass(frozen=True)
class OrderWaiting:
    """An order not yet delivered or cancelled: the stage it last entered and for how long
    (stream clock minus the event time it entered the stage)."""

    order_id: str
    pharmacy_id: str
    stage: str  # placed | insurance_validated | filled | shipped
    entered_at: datetime
    waiting_s: float
    insurance_status: str | None = None  # APPROVED | REJECTED | PRIOR_AUTH_REQUIRED


@dataclass(frozen=True)
class ShipmentState:
    """A shipment's cold-chain state from its temperature readings."""

    shipment_id: str
    carrier_id: str  # '' when its `created` event was not seen
    cold_chain: bool
    minutes_out_of_range: float
    in_excursion: bool  # its latest reading is outside spec
    last_celsius: float | None
    spec_min: float | None
    spec_max: float | None
    last_reading_at: datetime | None
    delivered: bool = False


@dataclass(frozen=True)
class SensorState:
    """One sensor of one batch: consecutive out-of-spec readings up to its latest reading."""

    batch_id: str
    equipment_id: str
    sensor_id: str
    sensor_type: str
    consecutive_out_of_spec: int
    last_value: float | None
    spec_min: float | None
    spec_max: float | None
    last_at: datetime | None


@dataclass(frozen=True)
class LabFailure:
    batch_id: str
    test_id: str
    test_name: str
    at: datetime


@dataclass(frozen=True)
class LateCount:
    """Events that arrived after their window was final: counted, left to the batch layer."""

    event_type: str
    count: int
    max_late_s: float
    total_late_s: float


@dataclass(frozen=True)
class Snapshot:
    clock: datetime | None  # the stream clock (latest over partitions); None: no data yet
    taken_at: datetime  # wall-clock time of the read
    windows: list[WindowValue] = field(default_factory=list)
    orders: list[OrderWaiting] = field(default_factory=list)
    shipments: list[ShipmentState] = field(default_factory=list)
    sensors: list[SensorState] = field(default_factory=list)
    lab_failures: list[LabFailure] = field(default_factory=list)
    late: list[LateCount] = field(default_factory=list)
    # per event type: (on time, late); on_time + late == every valid, deduplicated event
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)
