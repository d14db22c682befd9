"""Arrival order and the faults a real feed has: duplicates, late and out-of-order events,
and malformed lines.

Every genuine event gets an arrival time (event time plus a small, per-source latency);
within one key arrivals keep event-time order, so the only same-key reordering in the file
is what this module injects on purpose and counts. Faults never alter a genuine event in
place: a duplicate is an exact copy of a valid line, and a malformed line is an extra,
broken copy with a fresh event id, so the business flow stays complete and coherent and
the counts reconcile: lines == valid unique + duplicates + malformed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from pharmaflow.simulate.config import HOUR_MS, MINUTE_MS, SimConfig, Streams
from pharmaflow.simulate.events import EventTable
from pharmaflow.simulate.writer import text_rows, uuid4_chars

# Mean delivery latency (ms) by source system: sensors stream, carriers batch their EDI.
LATENCY_MS = {"sensors": 300, "datalogger": 2_000, "carrier": 60_000, "pos": 1_500}
DEFAULT_LATENCY_MS = 500
LATE_MIN_MS, LATE_MAX_MS = 2 * HOUR_MS, 72 * HOUR_MS

MALFORMED_KINDS = (
    "bad_json",
    "missing_field",
    "wrong_type",
    "unknown_enum",
    "unknown_event_type",
    "out_of_range",
)
ENUM_FIELDS = {
    "pharmacy.order.placed": "priority",
    "pharmacy.order.insurance_validated": "status",
    "manufacturing.batch.status": "status",
    "manufacturing.sensor.reading": "sensor_type",
    "manufacturing.lab.result": "outcome",
    "manufacturing.deviation.opened": "severity",
    "logistics.shipment.scanned": "status",
    "logistics.shipment.exception": "exception_code",
}
# Values that break a documented range: (field, bad values).
RANGE_BREAKS: dict[str, tuple[tuple[str, tuple[float, ...]], ...]] = {
    "pharmacy.order.placed": (("quantity", (0, -3)), ("days_supply", (0,))),
    "pharmacy.order.filled": (("quantity", (0, -1)),),
    "pharmacy.order.insurance_validated": (("copay_amount", (-5.0,)),),
    "manufacturing.batch.status": (("batch_size_kg", (-1.0, 0.0)),),
    "feedback.survey.submitted": (("rating", (9, 0)), ("nps", (11, -1))),
    "sales.sale.completed": (("quantity", (0, -2)), ("unit_price", (0.0, -9.99))),
}
NUMERIC_FIELDS = (
    "quantity", "value", "celsius", "rating", "nps", "batch_size_kg", "result",
    "copay_amount", "unit_price", "days_supply",
)  # fmt: skip
ENVELOPE_FIELDS = ("event_type", "event_time", "source_system", "key", "payload")
# Payload fields the contracts allow to be absent: dropping one would not break anything.
OPTIONAL_FIELDS = frozenset({
    "destination_facility_id", "facility_id", "actual_yield_kg", "capa_id", "reject_code",
    "comment", "promotion_code",
})  # fmt: skip
NUMBER_WORDS = ("three", "twelve", "forty", "several", "n/a")
ENUM_NONSENSE = ("TELEPORTED", "UNKNOWN_STATE", "MAYBE", "LEVITATED")
TYPE_NONSENSE = ("teleported", "vanished", "levitated")


@dataclass
class FaultPlan:
    """Where every line goes: arrival times for genuine, duplicate and malformed lines."""

    arrival: np.ndarray  # per genuine event
    late: int = 0
    out_of_order: int = 0
    duplicate_of: list[int] = field(default_factory=list)
    duplicate_arrival: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    malformed: list[bytes] = field(default_factory=list)
    malformed_arrival: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # per malformed line: the genuine event (table row) it is a broken copy of
    malformed_source: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    malformed_by_kind: dict[str, int] = field(default_factory=dict)


def plan(
    config: SimConfig,
    table: EventTable,
    render: Callable[[np.ndarray], list[bytes]],
    st: Streams,
) -> FaultPlan:
    """Arrival times for all genuine events plus every injected fault. `render` gives the
    lines of given table rows: only the few that malformed lines copy are rendered here."""
    rng = st.np
    n = len(table)
    if n == 0:
        return FaultPlan(arrival=table.times.copy())
    by_key = np.lexsort((table.times, table.key_codes))  # each key's events in time order
    arrival = _arrival(table, by_key, rng)
    result = FaultPlan(arrival=arrival)

    late = np.zeros(n, bool)
    n_late = round(config.late_rate * n)
    if n_late:
        idx = rng.choice(n, n_late, replace=False)
        late[idx] = True
        arrival[idx] = table.times[idx] + rng.integers(LATE_MIN_MS, LATE_MAX_MS, n_late)
        result.late = n_late

    result.out_of_order = _swap_pairs(config, table, by_key, arrival, late, rng)

    n_dup = round(config.duplicate_rate * n)
    if n_dup:
        dup = np.sort(rng.choice(n, n_dup, replace=False))
        result.duplicate_of = dup.tolist()
        delay = 1_000 + rng.exponential(20 * MINUTE_MS, n_dup).astype(np.int64)
        result.duplicate_arrival = arrival[dup] + delay

    n_bad = round(config.malformed_rate * n)
    if n_bad:
        broken, sources, kinds = _malformed(table, render, text_rows(uuid4_chars(rng, n_bad)), st)
        result.malformed = broken
        result.malformed_source = sources
        result.malformed_arrival = arrival[sources] + rng.integers(0, 10 * MINUTE_MS, n_bad)
        result.malformed_by_kind = dict(sorted(Counter(kinds).items()))
    return result


def _arrival(table: EventTable, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Event time plus latency, then made strictly increasing within each key (`order`
    lists each key's events in time order)."""
    n = len(table)
    mean_of_source = np.array([LATENCY_MS.get(s, DEFAULT_LATENCY_MS) for s in table.sources])
    means = mean_of_source[table.source_codes]
    arrival = table.times + 20 + (rng.exponential(1.0, n) * means).astype(np.int64)
    groups = table.key_codes[order]
    position = np.arange(n, dtype=np.int64)
    base = int(arrival.min())
    span = int(arrival.max()) - base + n + 1
    # Running max per key of (arrival - position), then + position: at least the own
    # latency and at least 1 ms after the key's previous event.
    shifted = arrival[order] - base - position + groups * span
    arrival[order] = np.maximum.accumulate(shifted) - groups * span + position + base
    return arrival


def _swap_pairs(
    config: SimConfig,
    table: EventTable,
    order: np.ndarray,
    arrival: np.ndarray,
    late: np.ndarray,
    rng: np.random.Generator,
) -> int:
    """Swap the arrivals of consecutive same-key events, so the later one arrives first
    (`order` lists each key's events in time order)."""
    wanted = round(config.out_of_order_rate * len(table))
    if not wanted:
        return 0
    keys, times, is_late = table.key_codes[order], table.times[order], late[order]
    candidates = np.flatnonzero(
        (keys[:-1] == keys[1:]) & (times[:-1] < times[1:]) & ~is_late[:-1] & ~is_late[1:]
    )
    taken: set[int] = set()
    for p in rng.permutation(candidates).tolist():
        if len(taken) == wanted:
            break
        if p - 1 in taken or p + 1 in taken:
            continue
        taken.add(p)
    for p in taken:
        first, second = order[p], order[p + 1]
        arrival[first], arrival[second] = arrival[second], arrival[first]
    return len(taken)


def _malformed(
    table: EventTable,
    render: Callable[[np.ndarray], list[bytes]],
    ids: list[str],
    st: Streams,
) -> tuple[list[bytes], np.ndarray, list[str]]:
    """Broken copies of random genuine events, each broken in one way of a known kind.

    Kinds and sources are drawn first (numpy stream), then each copy is broken (scalar
    stream): the two streams are independent, so this is the same draw as one loop."""
    rng, rnd = st.np, st.py
    code_of = {t: i for i, t in enumerate(table.types)}

    def eligible(types: Iterable[str]) -> np.ndarray:
        codes = [code_of[t] for t in types if t in code_of]
        return np.flatnonzero(np.isin(table.type_codes, codes)) if codes else np.zeros(0, int)

    pools = {kind: np.arange(len(table)) for kind in MALFORMED_KINDS}
    pools["unknown_enum"] = eligible(ENUM_FIELDS)
    pools["out_of_range"] = eligible(RANGE_BREAKS)
    sources: list[int] = []
    kinds: list[str] = []
    for pick in rng.integers(0, len(MALFORMED_KINDS), len(ids)).tolist():
        kind = MALFORMED_KINDS[pick]
        if pools[kind].size == 0:
            kind = "bad_json"
        sources.append(int(pools[kind][rng.integers(0, pools[kind].size)]))
        kinds.append(kind)
    source_rows = np.array(sources, dtype=np.int64)
    broken: list[bytes] = []
    for event_id, kind, line in zip(ids, kinds, render(source_rows), strict=True):
        env = orjson.loads(line)  # a fresh copy, safe to break
        env["event_id"] = event_id
        broken.append(_break(kind, env, rnd))
    return broken, source_rows, kinds


def _break(kind: str, env: dict[str, Any], rnd: random.Random) -> bytes:
    """Break a copied envelope in the way `kind` names (each kind fails one contract rule)."""
    payload = env["payload"]
    event_type = env["event_type"]
    if kind == "bad_json":
        text = orjson.dumps(env)
        return text[: rnd.randint(10, len(text) - 2)]  # a proper prefix is never valid JSON
    if kind == "missing_field":
        if rnd.random() < 0.5:
            del env[rnd.choice(ENVELOPE_FIELDS)]
        else:
            optional = OPTIONAL_FIELDS | (
                {"order_id"} if event_type == "logistics.shipment.created" else set()
            )
            del payload[rnd.choice([f for f in payload if f not in optional])]
    elif kind == "wrong_type":
        numeric = [f for f in NUMERIC_FIELDS if f in payload]
        if numeric and rnd.random() < 0.7:
            payload[rnd.choice(numeric)] = rnd.choice(NUMBER_WORDS)
        else:
            env["event_time"] = rnd.randint(1_700_000_000_000, 1_900_000_000_000)
    elif kind == "unknown_enum":
        payload[ENUM_FIELDS[event_type]] = rnd.choice(ENUM_NONSENSE)
    elif kind == "unknown_event_type":
        env["event_type"] = f"{event_type.rsplit('.', 1)[0]}.{rnd.choice(TYPE_NONSENSE)}"
    else:  # out_of_range
        name, values = rnd.choice(RANGE_BREAKS[event_type])
        payload[name] = rnd.choice(values)
    return orjson.dumps(env)
