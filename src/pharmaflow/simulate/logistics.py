"""Logistics: shipments (scans, delivery, exceptions, cold-chain loggers) and lot inventory.

Lots move plant -> distribution centre -> pharmacy -> patient, and every hop is a shipment
whose `lot_numbers` name what it carries, which is what makes lot genealogy possible. The
`Inventory` remembers when each lot reached each location, so a pharmacy can only dispense
a lot that a delivered shipment brought there.

The window opens with stock already in place: each distribution centre holds lots made
before the window (no events; the batches are history), and each pharmacy receives a
same-day opening shipment from its DC in the first hours. So every lot a pharmacy dispenses
appears in a shipment in the file, and pharmacies fill nothing before that first delivery.

Whether a shipment arrives late follows a known logistic model (`DelayModel`): its log-odds
are the sum of a carrier, service-level, pickup-weekday, cold-chain, origin-facility and
distance effect. Each shipment's true probability, its draw and the drivers go to the ground
truth (`truth.SHIPMENT_DELAY`), never into the events, so a delay model trained on the
warehouse can be judged against the probability that really generated the data.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from pharmaflow.contracts.reference import Carrier, Facility, Reference
from pharmaflow.simulate.clock import day_floor, iso_utc, weekday, yymmdd
from pharmaflow.simulate.config import DAY_MS, HOUR_MS, MINUTE_MS, SimConfig, Streams, streams
from pharmaflow.simulate.events import EventSink, Series
from pharmaflow.simulate.manufacturing import Release, lot_number, plant_products
from pharmaflow.simulate.truth import SHIPMENT_DELAY, Truth

SPEC_MIN_C = 2.0
SPEC_MAX_C = 8.0
LOGGER_INTERVAL_MS = 15 * MINUTE_MS
EXCURSION_SHARE = 0.03  # of cold-chain shipments
REGION_FALLBACK = {"SOUTHWEST": "SOUTHEAST"}
PICKUP_HOUR_UTC = 22  # carriers collect parcels from pharmacies in the (US) late afternoon

DELAY_DETAILS = (
    "Weather hold at the regional sort hub",
    "Missed linehaul connection; rescheduled on the next departure",
    "Sort hub volume backlog",
    "Vehicle breakdown en route; freight transferred",
    "Delivery attempt failed; recipient not available",
)
DAMAGED_DETAILS = (
    "Outer carton crushed; contents inspected at the hub",
    "Package wet on arrival at the delivery station",
    "Tamper seal broken; package resealed and documented",
)
LOST_DETAILS = (
    "Package not located after the last hub scan; trace opened",
    "No scan for 48 hours; declared lost by the carrier",
)

# The delay model: log-odds of a late delivery = DELAY_INTERCEPT + carrier + service level +
# pickup weekday + cold chain + origin facility + distance effect (DelayModel). The intercept
# keeps the late share near one in ten on the shipped reference data.
DELAY_INTERCEPT = -3.0
# A carrier's effect is the log-odds of its drawn late rate (carrier_late_rates) against this.
CARRIER_REFERENCE_RATE = 0.08
SERVICE_LEVEL_EFFECT = {
    "SAME_DAY": 0.45,  # an 8-hour promise leaves no slack
    "OVERNIGHT": 0.25,
    "TWO_DAY": 0.0,
    "GROUND": -0.35,  # long promises absorb a missed connection
    "FREIGHT": -0.25,
}
# By the pickup's business day (the US day: UTC minus 6 hours), Monday .. Sunday: parcels
# collected late in the week spend the weekend in the network.
WEEKDAY_EFFECT = (-0.35, -0.4, -0.15, 0.2, 0.6, 0.5, 0.05)
COLD_CHAIN_EFFECT = 0.45  # temperature-controlled lanes have fewer, tighter connections
ORIGIN_EFFECT_SD = 0.45  # facilities differ (dock practice, the carriers' local hubs)
DISTANCE_EFFECT_PER_1000_KM = 0.25
# A representative point (about the centre of population) of each US state and DC, degrees
# (latitude, longitude). The distance of a shipment is the great-circle distance between the
# points of its origin's state and its destination's state (the patient's state for an order):
# 0 within a state. gold.ml_shipment_features carries the same figures in SQL.
STATE_POINTS: dict[str, tuple[float, float]] = {
    "AL": (33.0, -86.8), "AK": (61.4, -149.6), "AZ": (33.4, -112.0), "AR": (35.0, -92.4),
    "CA": (35.5, -119.4), "CO": (39.5, -105.2), "CT": (41.5, -72.8), "DE": (39.4, -75.6),
    "DC": (38.9, -77.0), "FL": (27.8, -81.6), "GA": (33.3, -83.9), "HI": (21.3, -157.9),
    "ID": (43.6, -115.4), "IL": (41.3, -88.4), "IN": (40.0, -86.3), "IA": (41.9, -93.1),
    "KS": (38.5, -97.0), "KY": (37.8, -85.3), "LA": (30.7, -91.5), "ME": (44.3, -69.9),
    "MD": (39.1, -76.8), "MA": (42.3, -71.4), "MI": (42.9, -84.2), "MN": (45.2, -93.6),
    "MS": (32.6, -89.6), "MO": (38.4, -92.2), "MT": (46.6, -110.9), "NE": (41.2, -97.3),
    "NV": (36.4, -115.4), "NH": (43.0, -71.5), "NJ": (40.4, -74.4), "NM": (34.6, -106.3),
    "NY": (41.5, -74.6), "NC": (35.6, -79.6), "ND": (47.4, -99.3), "OH": (40.5, -82.7),
    "OK": (35.6, -97.0), "OR": (44.7, -122.5), "PA": (40.5, -77.0), "RI": (41.8, -71.4),
    "SC": (34.0, -81.1), "SD": (43.9, -98.9), "TN": (35.8, -86.4), "TX": (30.9, -97.4),
    "UT": (40.4, -111.9), "VT": (44.1, -72.8), "VA": (38.0, -77.8), "WA": (47.3, -121.6),
    "WV": (38.8, -80.9), "WI": (43.7, -89.0), "WY": (42.6, -107.4),
}  # fmt: skip
EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Shipment:
    """What happened to a shipment, for the flows that depend on it."""

    shipment_id: str
    promised_ms: int
    delivered_ms: int | None  # None when lost
    lost_ms: int | None
    damaged: bool
    excursion: bool


@dataclass(frozen=True)
class _LoggerRun:
    """A cold-chain data logger's trip: what `Shipper.finish` needs to draw its readings."""

    shipment_id: str
    trace: str
    logger_id: str
    start: int
    n: int  # readings
    base: float  # the load's settled temperature
    frequency: float  # of the slow cycle of the cooling, radians per reading
    phase: float
    excursion: tuple[int, int, float] | None  # first reading, readings, peak temperature


class Inventory:
    """When each lot became available at each location (a lot stays available once there)."""

    def __init__(self) -> None:
        self._arrivals: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)

    def receive(self, location: str, ndc: str, lot: str, at_ms: int) -> None:
        bisect.insort(self._arrivals[(location, ndc)], (at_ms, lot))

    def latest(self, location: str, ndc: str, at_ms: int) -> str | None:
        """The most recently arrived lot of `ndc` at `location` as of `at_ms`, if any."""
        arrivals = self._arrivals.get((location, ndc), [])
        i = bisect.bisect_right(arrivals, (at_ms, "\uffff"))
        return arrivals[i - 1][1] if i else None

    def first_arrival(self, location: str, ndc: str) -> int | None:
        arrivals = self._arrivals.get((location, ndc))
        return arrivals[0][0] if arrivals else None


def carrier_late_rates(config: SimConfig, reference: Reference) -> dict[str, float]:
    """Each carrier's late rate on a reference lane (some carriers are simply worse); its
    log-odds against CARRIER_REFERENCE_RATE is the carrier's effect in the delay model."""
    rnd = streams(config, "carriers").py
    return {c.carrier_id: 0.03 + 0.15 * rnd.random() for c in reference.carriers}


def state_distance_km(origin_state: str | None, destination_state: str | None) -> float | None:
    """Great-circle distance between two states' points (STATE_POINTS); None when either
    state is unknown."""
    a = STATE_POINTS.get(origin_state or "")
    b = STATE_POINTS.get(destination_state or "")
    if a is None or b is None:
        return None
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class DelayEffects:
    """One shipment's drivers and their log-odds contributions in the delay model."""

    carrier: float
    service_level: float
    weekday: float
    cold_chain: float
    origin: float
    distance: float
    pickup_weekday: int  # Monday = 0, of the pickup's business day
    distance_km: float | None

    @property
    def logit(self) -> float:
        return DELAY_INTERCEPT + (
            self.carrier
            + self.service_level
            + self.weekday
            + self.cold_chain
            + self.origin
            + self.distance
        )

    @property
    def probability(self) -> float:
        return 1 / (1 + math.exp(-self.logit))


@dataclass(frozen=True)
class DelayModel:
    """The true chance of a late delivery: a logistic model whose per-carrier and per-origin
    effects are drawn once per seed (the rest are the module constants). Unknown carriers,
    origins, service levels and states add nothing."""

    carrier_effect: dict[str, float]
    origin_effect: dict[str, float]
    state_of: dict[str, str]  # facility_id -> state

    @classmethod
    def build(
        cls, config: SimConfig, reference: Reference, late_rates: dict[str, float]
    ) -> DelayModel:
        # Its own stream: drawing the origin effects shifts no other domain's numbers.
        draws = streams(config, "shipment-delay").np.normal(
            0.0, ORIGIN_EFFECT_SD, len(reference.facilities)
        )
        return cls(
            carrier_effect={
                c: _logit(rate) - _logit(CARRIER_REFERENCE_RATE) for c, rate in late_rates.items()
            },
            origin_effect={
                f.facility_id: float(d) for f, d in zip(reference.facilities, draws, strict=True)
            },
            state_of={f.facility_id: f.state for f in reference.facilities},
        )

    def effects(
        self,
        *,
        carrier_id: str,
        service_level: str,
        pickup_ms: int,
        cold_chain: bool,
        origin: str,
        destination_state: str | None,
    ) -> DelayEffects:
        pickup_weekday = weekday(pickup_ms - 6 * HOUR_MS)
        distance_km = state_distance_km(self.state_of.get(origin), destination_state)
        return DelayEffects(
            carrier=self.carrier_effect.get(carrier_id, 0.0),
            service_level=SERVICE_LEVEL_EFFECT.get(service_level, 0.0),
            weekday=WEEKDAY_EFFECT[pickup_weekday],
            cold_chain=COLD_CHAIN_EFFECT if cold_chain else 0.0,
            origin=self.origin_effect.get(origin, 0.0),
            distance=DISTANCE_EFFECT_PER_1000_KM * (distance_km or 0.0) / 1000,
            pickup_weekday=pickup_weekday,
            distance_km=distance_km,
        )


@dataclass
class _DelayTruth:
    """The rows of truth.SHIPMENT_DELAY one Shipper collects, added as one block at the end."""

    columns: dict[str, list[object]] = field(default_factory=lambda: defaultdict(list))

    def append(self, **row: object) -> None:
        for name, value in row.items():
            self.columns[name].append(value)


class Shipper:
    """Turns a shipment decision into its full event trail, with delays and excursions.

    Logger readings are deferred: call `finish()` once after the last `ship()`."""

    def __init__(
        self,
        config: SimConfig,
        reference: Reference,
        sink: EventSink,
        st: Streams,
        prefix: str,
        late_rates: dict[str, float],
        truth: Truth | None = None,
    ) -> None:
        self._reference = reference
        self._sink = sink
        self._rnd = st.py
        self._rng = st.np
        self._prefix = prefix
        self._delay = DelayModel.build(config, reference, late_rates)
        self._truth = truth
        self._delay_truth = _DelayTruth()
        self._seq = 0
        self._loggers: list[_LoggerRun] = []

    def carrier(self, cold_chain: bool, kinds: tuple[str, ...]) -> Carrier:
        """A carrier of one of `kinds` that can carry cold if needed (relaxing kinds if none)."""
        capable = [c for c in self._reference.carriers if c.cold_chain_capable or not cold_chain]
        preferred = [c for c in capable if c.carrier_type in kinds]
        return self._rnd.choice(preferred or capable or list(self._reference.carriers))

    def ship(
        self,
        *,
        created_ms: int,
        origin: str,
        destination: str | None,
        carrier: Carrier,
        service_level: str,
        cold_chain: bool,
        lots: list[str],
        trace: str,
        order_id: str | None = None,
        loss_rate: float = 0.0,
        damage_rate: float = 0.002,
        daily_pickup: bool = False,
        destination_state: str | None = None,
    ) -> Shipment:
        """Emit the shipment's events. `daily_pickup`: parcels wait for the carrier's evening
        collection (as at a pharmacy) instead of being collected soon after creation.
        `destination_state`: where a shipment to a patient goes (a facility's is known)."""
        rnd = self._rnd
        self._seq += 1
        shipment_id = f"{self._prefix}-{yymmdd(created_ms)}-{self._seq:06d}"
        if daily_pickup:
            ready = created_ms + 30 * MINUTE_MS
            slot = day_floor(ready) + PICKUP_HOUR_UTC * HOUR_MS
            pickup = (slot if slot >= ready else slot + DAY_MS) + rnd.randint(0, 60) * MINUTE_MS
        elif service_level == "SAME_DAY":
            pickup = created_ms + int(rnd.uniform(0.25, 1.0) * HOUR_MS)
        else:
            pickup = created_ms + int(rnd.uniform(0.5, 3.0) * HOUR_MS)
        promised = _promised(service_level, created_ms, pickup)
        created: dict[str, object] = {
            "shipment_id": shipment_id,
            "origin_facility_id": origin,
        }
        if destination is not None:
            created["destination_facility_id"] = destination
        if order_id is not None:
            created["order_id"] = order_id
        created.update(
            carrier_id=carrier.carrier_id,
            service_level=service_level,
            promised_delivery_time=iso_utc(promised),
            cold_chain=cold_chain,
            lot_numbers=lots,
        )
        emit = self._sink.emit
        emit("logistics.shipment.created", "wms", created_ms, shipment_id, created, trace)

        if destination is not None:
            destination_state = self._delay.state_of.get(destination)
        effects = self._delay.effects(
            carrier_id=carrier.carrier_id,
            service_level=service_level,
            pickup_ms=pickup,
            cold_chain=cold_chain,
            origin=origin,
            destination_state=destination_state,
        )
        late_p = effects.probability
        late = rnd.random() < late_p
        span_promised = promised - pickup
        if late:
            delivered = promised + int(min(1 + rnd.expovariate(1 / 10), 60) * HOUR_MS)
        else:
            early = rnd.uniform(0, min(4 * HOUR_MS, 0.4 * span_promised))
            delivered = promised - int(early)
        lost = rnd.random() < loss_rate
        damaged = not lost and rnd.random() < damage_rate
        span = delivered - pickup
        if self._truth is not None:
            self._record_delay(
                shipment_id,
                carrier,
                service_level,
                cold_chain,
                origin,
                destination_state,
                effects,
                late,
                lost,
            )

        def scan(at: int, status: str, facility: str | None = None) -> None:
            payload = {"shipment_id": shipment_id, "status": status}
            if facility is not None:
                payload["facility_id"] = facility
            emit("logistics.shipment.scanned", "carrier", at, shipment_id, payload, trace)

        def exception(at: int, code: str, detail: str) -> None:
            payload = {"shipment_id": shipment_id, "exception_code": code, "detail": detail}
            emit("logistics.shipment.exception", "carrier", at, shipment_id, payload, trace)

        scan(pickup, "PICKED_UP", origin)
        scan(pickup + int(span * rnd.uniform(0.05, 0.15)), "IN_TRANSIT")
        hubs = sorted(rnd.uniform(0.2, 0.75) for _ in range(1 + span // DAY_MS))
        if lost:  # the trail goes cold mid-route, well before the carrier gives up
            last_scan = pickup + int(span_promised * hubs[0])
            scan(last_scan, "AT_FACILITY")
            lost_ms = promised + int(rnd.uniform(24, 48) * HOUR_MS)
            exception(lost_ms, "LOST", rnd.choice(LOST_DETAILS))
            logger_end = last_scan + int(rnd.uniform(1, 6) * HOUR_MS)
            excursion = cold_chain and self._plan_logger(shipment_id, trace, pickup, logger_end)
            return Shipment(shipment_id, promised, None, lost_ms, False, excursion)
        for h in hubs:
            scan(pickup + int(span * h), "AT_FACILITY")
        final_leg = int(min(rnd.uniform(1, 4) * HOUR_MS, 0.2 * span))
        scan(delivered - final_leg, "OUT_FOR_DELIVERY")
        if destination is not None:  # a facility scans the freight in at its dock
            scan(delivered - int(final_leg * rnd.uniform(0.1, 0.4)), "AT_FACILITY", destination)
        if late and rnd.random() < 0.85:
            exception(
                pickup + int(span * rnd.uniform(0.4, 0.8)), "DELAY", rnd.choice(DELAY_DETAILS)
            )
        if damaged:
            exception(
                delivered - int(final_leg * rnd.uniform(0.5, 0.9)),
                "DAMAGED",
                rnd.choice(DAMAGED_DETAILS),
            )
        excursion = cold_chain and self._plan_logger(shipment_id, trace, pickup, delivered)
        emit(
            "logistics.shipment.delivered",
            "carrier",
            delivered,
            shipment_id,
            {"shipment_id": shipment_id},
            trace,
        )
        return Shipment(shipment_id, promised, delivered, None, damaged, excursion)

    def _record_delay(
        self,
        shipment_id: str,
        carrier: Carrier,
        service_level: str,
        cold_chain: bool,
        origin: str,
        destination_state: str | None,
        effects: DelayEffects,
        late: bool,
        lost: bool,
    ) -> None:
        self._delay_truth.append(
            shipment_id=shipment_id,
            carrier_id=carrier.carrier_id,
            service_level=service_level,
            cold_chain=cold_chain,
            origin_facility_id=origin,
            origin_state=self._delay.state_of.get(origin),
            destination_state=destination_state,
            distance_km=effects.distance_km,
            pickup_weekday=effects.pickup_weekday,
            intercept=DELAY_INTERCEPT,
            carrier_effect=effects.carrier,
            service_level_effect=effects.service_level,
            weekday_effect=effects.weekday,
            cold_chain_effect=effects.cold_chain,
            origin_effect=effects.origin,
            distance_effect=effects.distance,
            logit=effects.logit,
            late_probability=effects.probability,
            is_late=late,  # the draw; a lost shipment (lost) was never delivered
            lost=lost,
        )

    def _plan_logger(self, shipment_id: str, trace: str, start: int, end: int) -> bool:
        """Plan a data logger reading every 15 minutes in transit (the readings themselves are
        drawn in bulk by `finish`); returns whether the shipment will see an excursion."""
        rnd = self._rnd
        n = int((end - start - 20_000) // LOGGER_INTERVAL_MS)
        if n <= 0:
            return False
        excursion = None
        if n >= 10 and rnd.random() < EXCURSION_SHARE:
            length = rnd.randint(2, 8)
            warm = rnd.random() < 0.75
            peak = rnd.uniform(8.6, 13.0) if warm else rnd.uniform(-1.5, 1.6)
            excursion = (rnd.randint(2, n - length - 2), length, peak)
        self._loggers.append(
            _LoggerRun(
                shipment_id=shipment_id,
                trace=trace,
                logger_id=f"DL-{rnd.randint(100_000, 999_999)}",
                start=start,
                n=n,
                base=min(max(rnd.gauss(5.0, 0.5), 4.0), 6.0),
                frequency=2 * np.pi * rnd.uniform(0.5, 2) / n,
                phase=rnd.random() * 6,
                excursion=excursion,
            )
        )
        return excursion is not None

    def finish(self) -> None:
        """Emit the temperature readings of every planned logger, drawn in one vectorised
        pass (per shipment it would cost more than the rest of the shipment), and the
        TEMP_EXCURSION exception of each excursion, and hand the shipments' delay truth over.
        Call once all shipments are made."""
        if self._truth is not None and self._delay_truth.columns:
            self._truth.add(SHIPMENT_DELAY, **self._delay_truth.columns)
            self._delay_truth = _DelayTruth()
        runs, self._loggers = self._loggers, []
        if not runs:
            return
        rng = self._rng
        counts = np.array([r.n for r in runs])
        offsets = np.cumsum(counts) - counts
        k = np.arange(counts.sum()) - np.repeat(offsets, counts)  # reading number in its run

        def per_reading(values: list[float] | list[int]) -> np.ndarray:
            return np.repeat(np.array(values), counts)

        times = per_reading([r.start for r in runs]) + LOGGER_INTERVAL_MS * (k + 1)
        times += rng.integers(0, 20_000, len(k))
        frequency = per_reading([r.frequency for r in runs])
        wave = 0.6 * np.sin(frequency * k + per_reading([r.phase for r in runs]))
        base = per_reading([r.base for r in runs])
        celsius = np.clip(base + wave + 0.15 * rng.standard_normal(len(k)), 2.3, 7.7)
        for run, offset in zip(runs, offsets.tolist(), strict=True):
            if run.excursion:
                first, length, peak = run.excursion
                # Every shape value is >= sin(pi/3), so the segment leaves 2-8 C for sure.
                shape = np.sin(np.linspace(0, np.pi, length + 2))[1:-1]
                start = offset + first
                celsius[start : start + length] = run.base + (peak - run.base) * shape
        celsius = np.round(celsius, 2)
        for run, offset in zip(runs, offsets.tolist(), strict=True):
            window = slice(offset, offset + run.n)
            if run.excursion:
                self._excursion_exception(run, times[window], celsius[window])
            fixed = {
                "shipment_id": run.shipment_id,
                "logger_id": run.logger_id,
                "celsius": 0.0,
                "spec_min": SPEC_MIN_C,
                "spec_max": SPEC_MAX_C,
            }
            self._sink.emit_many(
                "logistics.temperature.reading",
                "datalogger",
                times[window],
                run.shipment_id,
                Series(fixed, "celsius", celsius[window]),
                run.trace,
            )

    def _excursion_exception(self, run: _LoggerRun, times: np.ndarray, celsius: np.ndarray) -> None:
        """The logger platform flags the excursion minutes after the first bad reading."""
        outside = np.flatnonzero((celsius < SPEC_MIN_C) | (celsius > SPEC_MAX_C))
        if outside.size == 0:  # rounding kept a shallow excursion in spec: nothing to flag
            return
        extreme = celsius[outside[np.argmax(np.abs(celsius[outside] - 5.0))]]
        payload = {
            "shipment_id": run.shipment_id,
            "exception_code": "TEMP_EXCURSION",
            "detail": f"Logger {run.logger_id} read {extreme:.2f} C, outside the "
            f"{SPEC_MIN_C:.1f} to {SPEC_MAX_C:.1f} C range, for about {outside.size * 15} minutes",
        }
        at = int(times[outside[0]]) + int(self._rnd.uniform(1, 12) * MINUTE_MS)
        self._sink.emit(
            "logistics.shipment.exception", "datalogger", at, run.shipment_id, payload, run.trace
        )


def _promised(service_level: str, created: int, pickup: int) -> int:
    """Carrier commitments: a time of day some days after the pickup's business day (a
    pickup shortly after UTC midnight still belongs to the US evening before)."""
    if service_level == "SAME_DAY":
        return created + 8 * HOUR_MS
    business_day = day_floor(pickup - 6 * HOUR_MS)
    days = {"OVERNIGHT": 1, "TWO_DAY": 2, "GROUND": 4, "FREIGHT": 2}[service_level]
    return business_day + days * DAY_MS + (16 if service_level == "OVERNIGHT" else 22) * HOUR_MS


def dc_for(pharmacy: Facility, dcs: tuple[Facility, ...]) -> Facility:
    """The distribution centre serving a pharmacy: same region, else a neighbouring one."""
    for region in (pharmacy.region, REGION_FALLBACK.get(pharmacy.region)):
        for dc in dcs:
            if dc.region == region:
                return dc
    return dcs[0]


def distribute(
    config: SimConfig,
    reference: Reference,
    sink: EventSink,
    releases: list[Release],
    inventory: Inventory,
    late_rates: dict[str, float],
    truth: Truth | None = None,
) -> None:
    """Opening stock, plant -> DC dispatches of released lots, and DC -> pharmacy restocking."""
    st = streams(config, "distribution")
    rnd = st.py
    shipper = Shipper(config, reference, sink, st, "SHB", late_rates, truth)
    dcs = reference.dcs
    if not dcs:
        return
    cold = {p.ndc for p in reference.cold_chain_products}

    # Stock made before the window: two lots per product at every DC.
    made = plant_products(reference)
    plant_no = {p.facility_id: i + 1 for i, p in enumerate(reference.plants)}
    seq: dict[tuple[str, int], int] = defaultdict(int)
    for product in reference.products:
        makers = [site for site, products in made.items() if product in products]
        for _ in range(2):
            site = rnd.choice(makers) if makers else ""
            day = day_floor(config.start_ms) - rnd.randint(10, 45) * DAY_MS
            seq[(site, day)] += 1
            lot = lot_number(day, plant_no.get(site, 0), seq[(site, day)])
            for dc in dcs:
                arrived = config.start_ms - rnd.randint(1, 8) * DAY_MS
                inventory.receive(dc.facility_id, product.ndc, lot, arrived)

    # Each plant dispatches its newly released lots to every DC every evening.
    ndc_of = {r.lot_number: r.ndc for r in releases}
    for plant in reference.plants:
        mine = sorted(
            (r for r in releases if r.site_id == plant.facility_id), key=lambda r: r.released_ms
        )
        previous = config.start_ms
        for d in range(config.days):
            dispatch = config.start_ms + d * DAY_MS + 20 * HOUR_MS + rnd.randint(0, 90) * MINUTE_MS
            ready = [r.lot_number for r in mine if previous <= r.released_ms < dispatch]
            previous = dispatch
            for is_cold in (True, False):
                lots = [lot for lot in ready if (ndc_of[lot] in cold) == is_cold]
                if not lots:
                    continue
                for dc in dcs:
                    shipment = shipper.ship(
                        created_ms=dispatch + rnd.randint(0, 45) * MINUTE_MS,
                        origin=plant.facility_id,
                        destination=dc.facility_id,
                        carrier=shipper.carrier(is_cold, ("SPECIALTY",) if is_cold else ("LTL",)),
                        service_level="OVERNIGHT" if is_cold else "FREIGHT",
                        cold_chain=is_cold,
                        lots=lots,
                        trace=f"{rnd.getrandbits(128):032x}",
                    )
                    if shipment.delivered_ms is not None:
                        for lot in lots:
                            inventory.receive(
                                dc.facility_id, ndc_of[lot], lot, shipment.delivered_ms
                            )

    # Pharmacies: a same-day opening delivery, then an overnight restock every evening, each
    # carrying the newest lot of every product the DC holds at that moment.
    for pharmacy in reference.pharmacies:
        dc = dc_for(pharmacy, dcs)
        departures = [(config.start_ms + rnd.randint(10, 50) * MINUTE_MS, "SAME_DAY")]
        departures += [
            (
                config.start_ms + d * DAY_MS + 21 * HOUR_MS + rnd.randint(0, 90) * MINUTE_MS,
                "OVERNIGHT",
            )
            for d in range(config.days)
        ]
        for created, level in departures:
            for is_cold in (True, False):
                products = [p for p in reference.products if p.cold_chain == is_cold]
                stock = [
                    (p.ndc, inventory.latest(dc.facility_id, p.ndc, created)) for p in products
                ]
                stock = [(ndc, lot) for ndc, lot in stock if lot is not None]
                if not stock:
                    continue
                shipment = shipper.ship(
                    created_ms=created,
                    origin=dc.facility_id,
                    destination=pharmacy.facility_id,
                    carrier=shipper.carrier(is_cold, ("PARCEL", "SPECIALTY")),
                    service_level=level,
                    cold_chain=is_cold,
                    lots=[lot for _, lot in stock],
                    trace=f"{rnd.getrandbits(128):032x}",
                )
                if shipment.delivered_ms is not None:
                    for ndc, lot in stock:
                        inventory.receive(pharmacy.facility_id, ndc, lot, shipment.delivered_ms)
    shipper.finish()
