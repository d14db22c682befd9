"""Rules over a `Snapshot` → the incidents active right now (key → incident).

A pure function of (rules, snapshot, now): no store, no clock, no network, so every rule is
tested with hand-built snapshots. What an incident says is built here, field by field, from
the snapshot's typed ids and numbers — never from an event payload — which is how alert texts
carry ids only and no patient identifier can reach a notification.

Incident keys are `<rule id>:<entity>` (e.g. `coldchain_excursion:SHP-123`), stable across
evaluations so the incident store can tell a new incident from one still firing.

Time references: order/shipment/sensor state is judged as the store computed it (the stream
clock); event-time windows (`shipment_exceptions`) are read up to the last window boundary at
or before the stream clock, and processing-time windows (`records`/`quarantined`) up to the
last boundary at or before `now`, so a rate is computed over complete windows and does not
flap at every boundary as a half-filled window would.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pharmaflow.realtime.alerts.rules import (
    AlertRules,
    CarrierRule,
    ColdChainRule,
    ExternalRule,
    LabFailureRule,
    OrderStuckRule,
    QuarantineRule,
    Rule,
    SensorRule,
)
from pharmaflow.realtime.snapshot import Snapshot, WindowValue

Scalar = str | int | float | bool | None
ALL = "*"  # the entity of a `for_each: all` rate rule

# The only KPIs the rate rules read (everything else in the snapshot is skipped in one pass).
_RATE_KPIS = ("records", "quarantined", "shipments_created", "shipment_exceptions")


@dataclass(frozen=True)
class Incident:
    """One active incident. `summary`: one human line (ids and numbers only); `details`:
    flat scalars, the documented fields of its kind (docs/alerts.md)."""

    rule_id: str
    key: str
    severity: str
    summary: str
    details: dict[str, Scalar] = field(default_factory=dict)


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a `Z` (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def _epoch(value: datetime) -> float:
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


def _num(value: float | None, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def _spec(low: float | None, high: float | None) -> str:
    return f"{_num(low)} to {_num(high)}"


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _hours(hours: float) -> str:
    return f"{hours:g} h"


# ---- per kind ---------------------------------------------------------------------------


def _coldchain(rule: ColdChainRule, snap: Snapshot, now: datetime) -> Iterable[Incident]:
    t = rule.thresholds
    for s in snap.shipments:
        if s.delivered and not t.include_delivered:
            continue
        over = (
            t.minutes_out_of_range is not None and s.minutes_out_of_range > t.minutes_out_of_range
        )
        if not ((t.in_excursion and s.in_excursion) or over):
            continue
        carrier = f" (carrier {s.carrier_id})" if s.carrier_id else ""
        reading = (
            f"last reading {_num(s.last_celsius)} °C "
            f"{'outside' if s.in_excursion else 'within'} {_spec(s.spec_min, s.spec_max)} °C"
        )
        yield Incident(
            rule.id,
            f"{rule.id}:{s.shipment_id}",
            rule.severity,
            f"Cold-chain excursion on shipment {s.shipment_id}{carrier}: "
            f"{s.minutes_out_of_range:.0f} min out of range, {reading}",
            {
                "shipment_id": s.shipment_id,
                "carrier_id": s.carrier_id,
                "minutes_out_of_range": _round(s.minutes_out_of_range, 1),
                "in_excursion": s.in_excursion,
                "last_celsius": _round(s.last_celsius),
                "spec_min": _round(s.spec_min),
                "spec_max": _round(s.spec_max),
                "last_reading_at": iso(s.last_reading_at),
                "delivered": s.delivered,
            },
        )


def _sensor(rule: SensorRule, snap: Snapshot, now: datetime) -> Iterable[Incident]:
    n = rule.thresholds.consecutive_readings
    for s in snap.sensors:
        if s.consecutive_out_of_spec < n:
            continue
        yield Incident(
            rule.id,
            f"{rule.id}:{s.batch_id}/{s.sensor_id}",
            rule.severity,
            f"Sensor {s.sensor_id} ({s.sensor_type}) on equipment {s.equipment_id}, batch "
            f"{s.batch_id}: {s.consecutive_out_of_spec} consecutive readings out of spec "
            f"(last {_num(s.last_value, 2)}, spec {_spec(s.spec_min, s.spec_max)})",
            {
                "batch_id": s.batch_id,
                "equipment_id": s.equipment_id,
                "sensor_id": s.sensor_id,
                "sensor_type": s.sensor_type,
                "consecutive_out_of_spec": s.consecutive_out_of_spec,
                "last_value": _round(s.last_value, 3),
                "spec_min": _round(s.spec_min, 3),
                "spec_max": _round(s.spec_max, 3),
                "last_at": iso(s.last_at),
            },
        )


def _order_stuck(rule: OrderStuckRule, snap: Snapshot, now: datetime) -> Iterable[Incident]:
    limits = {stage: hours * 3600 for stage, hours in rule.thresholds.hours.items()}
    for o in snap.orders:
        limit = limits.get(o.stage)  # type: ignore[call-overload]
        if limit is None or o.waiting_s <= limit:
            continue
        hours = rule.thresholds.hours[o.stage]  # type: ignore[index]
        insurance = f", insurance {o.insurance_status}" if o.insurance_status else ""
        yield Incident(
            rule.id,
            f"{rule.id}:{o.order_id}",
            rule.severity,
            f"Order {o.order_id} (pharmacy {o.pharmacy_id}{insurance}) stuck in {o.stage} "
            f"for {o.waiting_s / 3600:.1f} h (threshold {_hours(hours)})",
            {
                "order_id": o.order_id,
                "pharmacy_id": o.pharmacy_id,
                "stage": o.stage,
                "entered_at": iso(o.entered_at),
                "waiting_hours": round(o.waiting_s / 3600, 2),
                "threshold_hours": hours,
                "insurance_status": o.insurance_status,
            },
        )


def _lab_failure(rule: LabFailureRule, snap: Snapshot, now: datetime) -> Iterable[Incident]:
    within = rule.thresholds.within
    ref = snap.clock or now
    since = None if within is None else _epoch(ref) - within.total_seconds()
    by_batch: dict[str, list] = defaultdict(list)
    for f in snap.lab_failures:
        if since is None or _epoch(f.at) >= since:
            by_batch[f.batch_id].append(f)
    for batch_id in sorted(by_batch):
        failures = sorted(by_batch[batch_id], key=lambda f: (_epoch(f.at), f.test_id))
        shown = ", ".join(f"{f.test_id} {f.test_name}" for f in failures[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        count = f"{len(failures)} failed test{'s' if len(failures) != 1 else ''}"
        yield Incident(
            rule.id,
            f"{rule.id}:{batch_id}",
            rule.severity,
            f"Lab failure on batch {batch_id}: {count} ({shown}{more})",
            {
                "batch_id": batch_id,
                "failed_tests": len(failures),
                "test_ids": ", ".join(f.test_id for f in failures),
                "test_names": ", ".join(dict.fromkeys(f.test_name for f in failures)),
                "first_failed_at": iso(failures[0].at),
                "last_failed_at": iso(failures[-1].at),
            },
        )


@dataclass
class _Sums:
    """Per (kpi, width): entity → value summed over the windows of one lookback range."""

    windows: dict[tuple[str, int], list[WindowValue]]

    def over(
        self, kpi: str, width: int, n: int, ref: datetime
    ) -> tuple[dict[str, float], datetime, datetime]:
        boundary = math.floor(_epoch(ref) / width) * width
        lo, hi = boundary - n * width, boundary
        sums: dict[str, float] = defaultdict(float)
        for w in self.windows.get((kpi, width), ()):
            if lo <= _epoch(w.start) < hi:
                sums[w.entity] += w.value
        return sums, datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)


def _rate(
    rule: QuarantineRule | CarrierRule,
    sums: _Sums,
    ref: datetime | None,
    kpis: tuple[str, str],
    minimum: int,
    nouns: tuple[str, str, str],
    entity_field: str,
) -> Iterable[Incident]:
    if ref is None:
        return
    t = rule.thresholds
    width = int(t.width.total_seconds())
    bad, start, end = sums.over(kpis[0], width, t.windows, ref)
    total, _, _ = sums.over(kpis[1], width, t.windows, ref)
    if rule.for_each == "all":
        bad = {ALL: sum(bad.values())} if bad else {}
        total = {ALL: sum(total.values())} if total else {}
    what, bad_noun, total_noun = nouns
    for entity in sorted(bad):
        numerator, denominator = bad[entity], total.get(entity, 0.0)
        if denominator < minimum or numerator <= 0:
            continue
        percent = 100 * numerator / denominator
        if percent <= t.percent:
            continue
        label = "all" if entity == ALL else entity
        yield Incident(
            rule.id,
            f"{rule.id}:{entity}",
            rule.severity,
            f"{what} {label}: {percent:.1f}% ({numerator:.0f} {bad_noun} of {denominator:.0f} "
            f"{total_noun}) over {_duration(end - start)} to {end:%Y-%m-%d %H:%M} UTC "
            f"(threshold {t.percent:g}%)",
            {
                entity_field: entity,
                bad_noun: int(numerator),
                total_noun: int(denominator),
                "rate_percent": round(percent, 2),
                "threshold_percent": t.percent,
                "window_start": iso(start),
                "window_end": iso(end),
                "width_s": width,
            },
        )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# ---- all rules --------------------------------------------------------------------------

_KEYED: dict[type, Callable[..., Iterable[Incident]]] = {
    ColdChainRule: _coldchain,
    SensorRule: _sensor,
    OrderStuckRule: _order_stuck,
    LabFailureRule: _lab_failure,
}


def evaluate_rules(rules: AlertRules, snapshot: Snapshot, now: datetime) -> dict[str, Incident]:
    """Every enabled rule over `snapshot`: the active incidents by key (file order of rules,
    then a stable order within a rule)."""
    active: dict[str, Incident] = {}
    sums: _Sums | None = None
    for rule in rules.rules:
        incidents: Iterable[Incident]
        if isinstance(rule, ExternalRule):
            continue  # raised by the ML drift check or the scheduler, not read from a snapshot
        if isinstance(rule, QuarantineRule | CarrierRule):
            if sums is None:
                sums = _group_windows(snapshot)
            incidents = _rate_rule(rule, sums, snapshot, now)
        else:
            incidents = _KEYED[type(rule)](rule, snapshot, now)
        for incident in incidents:
            active[incident.key] = incident
    return active


def _rate_rule(
    rule: QuarantineRule | CarrierRule, sums: _Sums, snapshot: Snapshot, now: datetime
) -> Iterable[Incident]:
    if isinstance(rule, QuarantineRule):
        return _rate(
            rule,
            sums,
            now,  # `records`/`quarantined` are processing-time windows
            ("quarantined", "records"),
            rule.thresholds.min_records,
            ("Quarantine rate on topic", "quarantined", "records"),
            "topic",
        )
    return _rate(
        rule,
        sums,
        snapshot.clock,  # event-time windows
        ("shipment_exceptions", "shipments_created"),
        rule.thresholds.min_shipments,
        ("Shipment exception rate of carrier", "exceptions", "shipments"),
        "carrier_id",
    )


def _group_windows(snapshot: Snapshot) -> _Sums:
    grouped: dict[tuple[str, int], list[WindowValue]] = defaultdict(list)
    for w in snapshot.windows:
        if w.kpi in _RATE_KPIS:
            grouped[(w.kpi, w.width_s)].append(w)
    return _Sums(grouped)


__all__ = ["ALL", "Incident", "Rule", "evaluate_rules", "iso"]
