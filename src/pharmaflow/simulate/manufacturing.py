"""Manufacturing: batches on plant equipment, their sensor streams, QC results and deviations.

Each piece of equipment runs one batch at a time (QUEUED -> IN_PROGRESS -> COMPLETED /
FAILED / ON_HOLD). While it runs, four sensors report every minute; on some batches one of
them drifts out of specification, and those batches fail or go on hold more often, get
worse lab results and open deviations. QA releases a lot for distribution only when the
batch COMPLETED and no lab result FAILED; the releases are what logistics ships.

Outcomes are as rare as in a plant that runs well (right first time above 90 %): one to two
percent of batches each drift, fail, go on hold, or get an out-of-specification or a
guard-band lab result. Each outcome goes to a quota of the window's batches (its share of
them, rounded up or down at random, so exact on average) picked at random, rather than to
each batch by an independent draw: the demo's week of about 90 batches then shows every
outcome, at least once whenever its share comes to one batch or more, instead of none of
some by luck, and the pass rate it reports stays near its target.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from random import Random

import numpy as np

from pharmaflow.contracts.reference import Equipment, Facility, Product, Reference
from pharmaflow.simulate.clock import day_floor, yymmdd
from pharmaflow.simulate.config import DAY_MS, HOUR_MS, MINUTE_MS, SimConfig, Streams, streams
from pharmaflow.simulate.events import EventSink, Series

BATCHES_PER_DAY = 12  # across all equipment, at scale 1
READING_INTERVAL_MS = MINUTE_MS
# Shares of batches (see the module docstring). "Steady": no sensor drifted.
DRIFT_SHARE = 0.015  # one sensor drifts out of specification during the run
DRIFT_STATUS = (0.35, 0.30)  # chance a drifting batch ends FAILED, ON_HOLD (else COMPLETED)
FAILED_SHARE = 0.012  # of steady batches
ON_HOLD_SHARE = 0.015  # of steady batches
LAB_OOS_SHARE = 0.012  # of steady completed batches: one out-of-specification lab result
LAB_CONDITIONAL_SHARE = 0.012  # ... one result in the guard band (accepted on QA review)
DOCUMENTATION_SHARE = 0.02  # chance of an incomplete batch record entry (a minor deviation)
LAB_DELAY_HOURS = (2, 36)  # QC results come this long after the run ends
# Per lab test of a troubled batch (drifted, failed or on hold): (FAIL, CONDITIONAL).
TROUBLED_LAB = (0.12, 0.05)
STERILE_EQUIPMENT = frozenset({"BIOREACTOR", "FILL_FINISH", "LYOPHILIZER", "CHROMATOGRAPHY"})


@dataclass(frozen=True)
class Release:
    """A lot QA released for distribution, and when."""

    lot_number: str
    ndc: str
    site_id: str
    released_ms: int


@dataclass(frozen=True)
class SensorSpec:
    unit: str
    spec_min: float
    spec_max: float
    mean: float
    sd: float


def _profile(*specs: tuple[str, float, float, float, float]) -> dict[str, SensorSpec]:
    kinds = ("TEMPERATURE", "HUMIDITY", "PRESSURE", "VIBRATION")
    return {kind: SensorSpec(*spec) for kind, spec in zip(kinds, specs, strict=True)}


# Per equipment type: unit, spec min/max, normal operating mean and noise, per sensor type.
SENSOR_PROFILES: dict[str, dict[str, SensorSpec]] = {
    "BIOREACTOR": _profile(
        ("C", 36.0, 38.0, 37.0, 0.15), ("%RH", 30, 60, 45, 2.0),
        ("kPa", 101, 111, 105.5, 0.8), ("mm/s", 0, 4.5, 1.6, 0.3),
    ),
    "FILL_FINISH": _profile(
        ("C", 18, 24, 21, 0.4), ("%RH", 30, 55, 42, 2.0),
        ("Pa", 10, 30, 18, 1.5), ("mm/s", 0, 7.1, 2.5, 0.4),
    ),
    "LYOPHILIZER": _profile(
        ("C", -50, -30, -40, 1.0), ("%RH", 0, 10, 3, 0.6),
        ("Pa", 5, 30, 13, 1.5), ("mm/s", 0, 4.5, 1.2, 0.2),
    ),
    "GRANULATOR": _profile(
        ("C", 20, 35, 27, 0.8), ("%RH", 20, 50, 35, 2.0),
        ("kPa", 95, 105, 100, 0.6), ("mm/s", 0, 11, 4, 0.6),
    ),
    "TABLET_PRESS": _profile(
        ("C", 18, 27, 22, 0.5), ("%RH", 20, 45, 33, 2.0),
        ("MPa", 100, 200, 150, 6.0), ("mm/s", 0, 11, 5, 0.7),
    ),
    "COATER": _profile(
        ("C", 40, 50, 45, 0.6), ("%RH", 10, 40, 25, 2.0),
        ("Pa", -200, -50, -120, 10.0), ("mm/s", 0, 7.1, 2.2, 0.3),
    ),
    "CHROMATOGRAPHY": _profile(
        ("C", 2, 8, 5, 0.3), ("%RH", 30, 60, 45, 2.0),
        ("bar", 0.5, 3.0, 1.8, 0.1), ("mm/s", 0, 4.5, 1.0, 0.2),
    ),
}  # fmt: skip
DEFAULT_PROFILE = _profile(
    ("C", 15, 30, 22, 0.5), ("%RH", 20, 60, 40, 2.0), ("kPa", 95, 110, 101, 0.8),
    ("mm/s", 0, 7.1, 2.0, 0.3),
)  # fmt: skip
SENSOR_TAGS = {"TEMPERATURE": "TT01", "HUMIDITY": "RH01", "PRESSURE": "PT01", "VIBRATION": "VT01"}


@dataclass(frozen=True)
class LabTest:
    name: str
    unit: str
    spec_min: float
    spec_max: float
    one_sided: bool = False  # only an upper limit matters (the minimum is a physical zero)


INJECTABLE_PANEL = (
    LabTest("Assay", "% label claim", 95.0, 105.0),
    LabTest("Purity (SEC-HPLC)", "% monomer", 97.0, 100.0),
    LabTest("Bacterial endotoxin", "EU/mL", 0.0, 0.5, one_sided=True),
    LabTest("Bioburden", "CFU/10 mL", 0.0, 10.0, one_sided=True),
    LabTest("pH", "pH", 5.8, 6.6),
    LabTest("Osmolality", "mOsm/kg", 270.0, 330.0),
)
ORAL_PANEL = (
    LabTest("Assay", "% label claim", 95.0, 105.0),
    LabTest("Dissolution (30 min)", "% dissolved", 80.0, 110.0),
    LabTest("Content uniformity", "acceptance value", 0.0, 15.0, one_sided=True),
    LabTest("Water content (KF)", "% w/w", 0.0, 3.0, one_sided=True),
    LabTest("Related substances", "% total impurities", 0.0, 1.0, one_sided=True),
    LabTest("Disintegration", "min", 0.0, 15.0, one_sided=True),
)

DEVIATION_CAUSES: dict[str, tuple[tuple[str, str], ...]] = {
    "EQUIPMENT": (
        ("worn agitator seal", "seal replaced and equipment requalified"),
        ("controller firmware fault", "firmware restored and alarm limits verified"),
        ("sensor calibration drift", "sensor recalibrated and loop check passed"),
    ),
    "ENVIRONMENTAL": (
        ("HVAC damper stuck partly closed", "damper repaired and room requalified"),
        ("chilled water supply interruption", "supply restored and alarm escalation updated"),
    ),
    "PROCESS": (
        ("incorrect hold time entered at setup", "setup checklist revised and operators retrained"),
        ("raw material charged out of sequence", "batch record step order clarified"),
    ),
    "DOCUMENTATION": (
        ("second-person verification not recorded", "entry completed and verified by QA"),
        ("logbook entry missing for cleaning step", "logbook corrected and reviewed"),
    ),
    "LAB_OOS": (
        ("analyst pipetting error in sample preparation", "retest passed; analyst retrained"),
        ("confirmed out-of-specification result", "lot rejected and root cause under CAPA"),
    ),
}


@dataclass
class _Batch:
    batch_id: str
    lot_number: str
    plant: Facility
    equipment: Equipment
    product: Product
    operator_id: str
    trace: str
    queued: int
    started: int
    final: int
    status: str
    size_kg: float
    yield_fraction: float
    drift: str | None = None  # sensor type that drifts out of spec on this batch
    lab_finding: str | None = None  # a steady batch's one FAIL or CONDITIONAL lab result
    out_of_spec_ms: int | None = None
    lab_failed: list[tuple[str, float, str, float, float, int]] = field(default_factory=list)


def plant_products(reference: Reference) -> dict[str, tuple[Product, ...]]:
    """What each plant makes: cold-chain injectables where there is sterile or biologics
    equipment, everything else at the other plants (or anywhere, if no plant fits)."""
    sterile = {
        p.facility_id
        for p in reference.plants
        if any(e.equipment_type in STERILE_EQUIPMENT for e in reference.equipment_at(p.facility_id))
    }
    cold = reference.cold_chain_products
    ambient = tuple(p for p in reference.products if not p.cold_chain)
    made: dict[str, tuple[Product, ...]] = {}
    for plant in reference.plants:
        mine = cold if plant.facility_id in sterile else ambient
        made[plant.facility_id] = mine or reference.products
    return made


def lot_number(day_ms: int, plant_no: int, seq: int) -> str:
    """Lot numbers encode the production day and plant, as printed on a carton."""
    return f"L{yymmdd(day_ms)}-{plant_no}-{seq:02d}"


def run(config: SimConfig, reference: Reference, sink: EventSink) -> list[Release]:
    """Emit every manufacturing event of the window; return the lots released in it."""
    st = streams(config, "manufacturing")
    batches = _schedule(config, reference, st)
    releases: list[Release] = []
    deviation_numbers = count(1)
    for b in batches:
        _emit_status(b, sink)
        _emit_sensors(b, st, sink)
        lab_times = _emit_lab(b, st, sink)
        _emit_deviations(b, st, sink, deviation_numbers)
        if b.status == "COMPLETED" and not b.lab_failed and lab_times:
            released = max(lab_times) + int(st.py.uniform(2, 10) * HOUR_MS)
            if released < config.end_ms:
                releases.append(Release(b.lot_number, b.product.ndc, b.plant.facility_id, released))
    return releases


def _schedule(config: SimConfig, reference: Reference, st: Streams) -> list[_Batch]:
    """Back-to-back runs on every piece of equipment, then ids in queue order per plant."""
    rnd = st.py
    made = plant_products(reference)
    plants = {p.facility_id: (i + 1, p) for i, p in enumerate(reference.plants)}
    equipment = [e for e in reference.equipment if e.site_id in plants]
    if not equipment:
        return []
    per_equipment_day = BATCHES_PER_DAY * config.scale / len(equipment)
    cycle_ms = DAY_MS / per_equipment_day
    runs: list[tuple[int, int, int, Equipment]] = []
    for eq in equipment:
        cursor = config.start_ms + int(rnd.uniform(0, cycle_ms))
        while cursor < config.end_ms:
            queued = cursor
            started = queued + int(rnd.uniform(0.5, 2.5) * HOUR_MS)
            run_ms = int(min(max(rnd.gauss(6, 1), 3), 9) * HOUR_MS)
            run_ms = min(run_ms, int(cycle_ms / 2))
            final = started + max(run_ms, 30 * MINUTE_MS)
            runs.append((queued, started, final, eq))
            idle_mean = max(cycle_ms - (final - queued) - 1.5 * HOUR_MS, HOUR_MS)
            cursor = final + int(rnd.uniform(1, 2) * HOUR_MS + rnd.expovariate(1 / idle_mean))
    runs.sort(key=lambda r: (r[3].site_id, r[0], r[3].equipment_id))
    seq_of_day: dict[tuple[str, int], int] = defaultdict(int)
    seen = [final + LAB_DELAY_HOURS[1] * HOUR_MS <= config.end_ms for _, _, final, _ in runs]
    outcomes = _outcomes(seen, rnd)
    batches: list[_Batch] = []
    for (queued, started, final, eq), (drift, status, lab_finding) in zip(
        runs, outcomes, strict=True
    ):
        plant_no, plant = plants[eq.site_id]
        day = day_floor(queued)
        seq_of_day[(eq.site_id, day)] += 1
        seq = seq_of_day[(eq.site_id, day)]
        batches.append(
            _Batch(
                batch_id=f"BT-{eq.site_id.replace('-', '')}-{yymmdd(queued)}-{seq:02d}",
                lot_number=lot_number(day, plant_no, seq),
                plant=plant,
                equipment=eq,
                product=rnd.choice(made[eq.site_id]),
                operator_id=f"OP-{plant_no}{rnd.randint(1, 18):02d}",
                trace=f"{rnd.getrandbits(128):032x}",
                queued=queued,
                started=started,
                final=final,
                status=status,
                size_kg=round(max(eq.capacity_kg * rnd.uniform(0.6, 1.0), 0.1), 1),
                yield_fraction=rnd.uniform(0.82, 1.03),
                drift=drift,
                lab_finding=lab_finding,
            )
        )
    return batches


# From this many batches in a window, every outcome happens at least once: a short run (a test,
# a day of a small plant) still shows each failure mode, at the price of a lower pass rate than
# a plant's week, where the shares above decide.
EVERY_OUTCOME_FROM = 5


def _quota(n: int, share: float, rnd: Random, at_least: int = 0) -> int:
    """`n * share`, rounded up or down at random so that it is exact on average (but never
    below `at_least`, nor above `n`)."""
    whole, fraction = divmod(n * share, 1.0)
    return min(n, max(at_least, int(whole) + (rnd.random() < fraction)))


def _outcomes(seen: list[bool], rnd: Random) -> list[tuple[str | None, str, str | None]]:
    """(drifting sensor, final status, lab finding) per batch: each outcome's quota of the
    batches, taken from one random permutation so the outcomes do not overlap. The batches
    whose results all fall inside the window (`seen`) come first in it, so a quota of one
    goes to a batch whose outcome the window shows, not to one still running at its end."""
    n = len(seen)
    floor = 1 if n >= EVERY_OUTCOME_FROM else 0
    order = [i for i in range(n) if seen[i]]
    tail = [i for i in range(n) if not seen[i]]
    rnd.shuffle(order)
    rnd.shuffle(tail)
    order += tail
    drift: list[str | None] = [None] * n
    status = ["COMPLETED"] * n
    finding: list[str | None] = [None] * n
    drifting = _quota(n, DRIFT_SHARE, rnd, floor)
    for i in order[:drifting]:
        drift[i] = rnd.choice(list(SENSOR_TAGS))
        u = rnd.random()
        failed, on_hold = DRIFT_STATUS
        status[i] = "FAILED" if u < failed else "ON_HOLD" if u < failed + on_hold else "COMPLETED"
    steady = order[drifting:]
    quotas = (
        ("FAILED", _quota(len(steady), FAILED_SHARE, rnd, floor)),
        ("ON_HOLD", _quota(len(steady), ON_HOLD_SHARE, rnd, floor)),
    )
    taken = 0
    for name, quota in quotas:
        for i in steady[taken : taken + quota]:
            status[i] = name
        taken += quota
    good = steady[taken:]
    taken = 0
    for name, share in (("FAIL", LAB_OOS_SHARE), ("CONDITIONAL", LAB_CONDITIONAL_SHARE)):
        quota = _quota(len(good), share, rnd, floor)
        for i in good[taken : taken + quota]:
            finding[i] = name
        taken += quota
    return list(zip(drift, status, finding, strict=True))


def _emit_status(b: _Batch, sink: EventSink) -> None:
    for status, at in (("QUEUED", b.queued), ("IN_PROGRESS", b.started), (b.status, b.final)):
        payload: dict[str, object] = {
            "batch_id": b.batch_id,
            "lot_number": b.lot_number,
            "ndc": b.product.ndc,
            "site_id": b.plant.facility_id,
            "equipment_id": b.equipment.equipment_id,
            "operator_id": b.operator_id,
            "status": status,
            "batch_size_kg": b.size_kg,
        }
        if status == "COMPLETED":
            # Rounded to grams, so the ratio to the batch size stays inside 0.80-1.05.
            payload["actual_yield_kg"] = round(b.size_kg * b.yield_fraction, 3)
        sink.emit("manufacturing.batch.status", "mes", at, b.batch_id, payload, b.trace)


def _emit_sensors(b: _Batch, st: Streams, sink: EventSink) -> None:
    """Minute-by-minute readings of four sensors, drawn in bulk; one may drift out of spec."""
    rng = st.np
    # Leave room for the per-sensor stagger (up to 24 s) before the run ends.
    n = int((b.final - b.started - 30_000) // READING_INTERVAL_MS)
    if n <= 0:
        return
    profile = SENSOR_PROFILES.get(b.equipment.equipment_type, DEFAULT_PROFILE)
    base_times = b.started + READING_INTERVAL_MS * np.arange(1, n + 1, dtype=np.int64)
    phase = np.linspace(0.0, 2 * np.pi * rng.uniform(1, 3), n)
    for k, (kind, spec) in enumerate(profile.items()):
        times = base_times + k * 7_000 + rng.integers(0, 3_000, n)
        span = spec.spec_max - spec.spec_min
        values = spec.mean + spec.sd * (0.6 * np.sin(phase + k) + 0.8 * rng.standard_normal(n))
        values = np.clip(values, spec.spec_min + 0.02 * span, spec.spec_max - 0.02 * span)
        if kind == b.drift:
            start = int(n * rng.uniform(0.3, 0.7))
            up = rng.random() < 0.7
            target = spec.spec_max + 0.25 * span if up else spec.spec_min - 0.25 * span
            ramp = np.clip((np.arange(n) - start) / max(n - start, 1), 0.0, None)
            values = np.round(values + ramp * (target - spec.mean), 3)
            outside = np.flatnonzero((values > spec.spec_max) | (values < spec.spec_min))
            if outside.size:
                b.out_of_spec_ms = int(times[outside[0]])
        fixed = {
            "sensor_id": f"{b.equipment.equipment_id}-{SENSOR_TAGS[kind]}",
            "batch_id": b.batch_id,
            "equipment_id": b.equipment.equipment_id,
            "sensor_type": kind,
            "value": 0.0,
            "unit": spec.unit,
            "spec_min": float(spec.spec_min),
            "spec_max": float(spec.spec_max),
        }
        series = Series(fixed, "value", np.round(values, 3))
        sink.emit_many(
            "manufacturing.sensor.reading", "sensors", times, b.batch_id, series, b.trace
        )


def _lab_outcomes(b: _Batch, rnd: Random, tests: int) -> list[str]:
    """FAIL / CONDITIONAL / PASS per test. A troubled batch (drift, failed, on hold) fails
    tests independently and often; a steady one has at most its one finding (`_outcomes`),
    in a test picked at random."""
    if b.drift is not None or b.status != "COMPLETED":
        p_fail, p_conditional = TROUBLED_LAB
        outcomes = []
        for _ in range(tests):
            u = rnd.random()
            outcomes.append(
                "FAIL" if u < p_fail else "CONDITIONAL" if u < p_fail + p_conditional else "PASS"
            )
        return outcomes
    outcomes = ["PASS"] * tests
    if b.lab_finding is not None:
        outcomes[rnd.randrange(tests)] = b.lab_finding
    return outcomes


def _emit_lab(b: _Batch, st: Streams, sink: EventSink) -> list[int]:
    """QC results after the run; troubled batches (drift, failed, on hold) fail more often."""
    rnd = st.py
    panel = INJECTABLE_PANEL if b.product.dosage_form == "INJECTION" else ORAL_PANEL
    times = sorted(b.final + int(rnd.uniform(*LAB_DELAY_HOURS) * HOUR_MS) for _ in panel)
    analyst = f"QC-{b.plant.facility_id.replace('-', '')}-{rnd.randint(1, 9):02d}"
    outcomes = _lab_outcomes(b, rnd, len(panel))
    for k, (test, at, outcome) in enumerate(zip(panel, times, outcomes, strict=True)):
        span = test.spec_max - test.spec_min
        if outcome == "FAIL":
            above = test.one_sided or rnd.random() < 0.5
            margin = span * rnd.uniform(0.05, 0.3)
            result = test.spec_max + margin if above else test.spec_min - margin
        elif outcome == "CONDITIONAL":
            # Inside the limits but in the guard band at the edge: accepted pending review.
            near_top = test.one_sided or rnd.random() < 0.5
            edge = span * rnd.uniform(0.02, 0.08)
            result = test.spec_max - edge if near_top else test.spec_min + edge
        else:
            low, high = (0.05, 0.7) if test.one_sided else (0.15, 0.85)
            result = test.spec_min + span * rnd.uniform(low, high)
        result = round(result, 3)
        if outcome == "FAIL":
            b.lab_failed.append((test.name, result, test.unit, test.spec_min, test.spec_max, at))
        payload = {
            "test_id": f"{b.batch_id}-T{k + 1:02d}",
            "batch_id": b.batch_id,
            "test_name": test.name,
            "result": result,
            "unit": test.unit,
            "spec_min": test.spec_min,
            "spec_max": test.spec_max,
            "outcome": outcome,
            "analyst_id": analyst,
        }
        sink.emit("manufacturing.lab.result", "lims", at, b.batch_id, payload, b.trace)
    return times


def _emit_deviations(b: _Batch, st: Streams, sink: EventSink, numbers: Iterator[int]) -> None:
    """Open a deviation for each thing that went wrong; close it days later, often with CAPA."""
    rnd = st.py
    eq = b.equipment.equipment_id
    found: list[tuple[int, str, str, str]] = []  # opened at, severity, category, description
    if b.drift and b.out_of_spec_ms is not None:
        spec = SENSOR_PROFILES.get(b.equipment.equipment_type, DEFAULT_PROFILE)[b.drift]
        found.append(
            (
                b.out_of_spec_ms + int(rnd.uniform(10, 90) * MINUTE_MS),
                rnd.choice(("MINOR", "MAJOR")),
                rnd.choice(("EQUIPMENT", "ENVIRONMENTAL")),
                f"{b.drift.capitalize()} on {eq} drifted outside the {spec.spec_min:g} to "
                f"{spec.spec_max:g} {spec.unit} range during the run",
            )
        )
    if b.status == "FAILED":
        found.append(
            (
                b.final + int(rnd.uniform(0.2, 4) * HOUR_MS),
                "CRITICAL" if rnd.random() < 0.4 else "MAJOR",
                rnd.choice(("PROCESS", "EQUIPMENT")),
                f"Batch failed on {eq}; run stopped and product segregated for investigation",
            )
        )
    elif b.status == "ON_HOLD":
        found.append(
            (
                b.final + int(rnd.uniform(0.1, 2) * HOUR_MS),
                "MAJOR" if rnd.random() < 0.6 else "MINOR",
                "PROCESS",
                f"Batch placed on hold after the run on {eq} pending quality review",
            )
        )
    if b.lab_failed:
        name, result, unit, lo, hi, at = b.lab_failed[0]
        found.append(
            (
                at + int(rnd.uniform(0.5, 6) * HOUR_MS),
                "MAJOR",
                "LAB_OOS",
                f"Out-of-specification result for {name}: {result:g} {unit} against a "
                f"specification of {lo:g} to {hi:g}",
            )
        )
    if not found and rnd.random() < DOCUMENTATION_SHARE:
        found.append(
            (
                b.started + int(rnd.uniform(0, 1) * (b.final - b.started)),
                "MINOR",
                "DOCUMENTATION",
                f"Batch record for the run on {eq} has an incomplete entry",
            )
        )
    for opened, severity, category, description in found:
        number = next(numbers)
        deviation_id = f"DEV-{yymmdd(opened)[:2]}-{number:05d}"
        sink.emit(
            "manufacturing.deviation.opened",
            "qms",
            opened,
            b.batch_id,
            {
                "deviation_id": deviation_id,
                "batch_id": b.batch_id,
                "severity": severity,
                "category": category,
                "description": description,
            },
            b.trace,
        )
        days = {"MINOR": (1, 5), "MAJOR": (2, 10), "CRITICAL": (5, 14)}[severity]
        closed = opened + int(rnd.uniform(*days) * DAY_MS)
        cause, action = rnd.choice(DEVIATION_CAUSES[category])
        payload = {"deviation_id": deviation_id, "batch_id": b.batch_id}
        if rnd.random() < (0.15 if severity == "MINOR" else 0.7):
            payload["capa_id"] = f"CAPA-{yymmdd(closed)[:2]}-{number:05d}"
        payload["resolution"] = f"Root cause: {cause}; {action}."
        sink.emit("manufacturing.deviation.closed", "qms", closed, b.batch_id, payload, b.trace)
