"""`simulate()`: one coherent, deterministic window of events across all five domains.

The domains run in dependency order, each on its own random stream: manufacturing releases
lots, distribution moves them to DCs and pharmacies, orders dispense what has arrived and
ship it to patients, patients answer surveys; sales run alongside. Only then are ids,
timestamps, arrival order and faults decided over the whole stream. `generate()` stops there
and returns the lines in arrival order (`SimOutput`), so the same window can be written to a
file (`simulate()`) or published to Kafka (`pharmaflow.simulate.publish`).
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import date
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from pharmaflow.contracts.reference import load_reference
from pharmaflow.simulate import (
    faults,
    feedback,
    logistics,
    manufacturing,
    names,
    pharmacy,
    sales,
)
from pharmaflow.simulate.config import SimConfig, streams
from pharmaflow.simulate.events import EventSink, EventTable
from pharmaflow.simulate.people import build_pool
from pharmaflow.simulate.writer import render_lines, stamp_chars, uuid4_chars, write_lines

# Producers that sometimes stamp times in a local zone instead of UTC (same instant).
OFFSET_SHARE = 0.02
OFFSETS_MIN = (-300, -360, -420, -480, 60, 330)
RESTRICTED_ZIP3 = frozenset(zip3 for zip3, _, _ in names.RESTRICTED_ZIP3)


@dataclass(frozen=True)
class PhiStats:
    """How much PHI the file carries (counts only; `patient_pool` gives the values)."""

    patients_in_pool: int
    patients_with_orders: int
    patients_over_89: int  # of those with orders, aged 90+ at the window start
    patients_restricted_zip3: int  # of those with orders, in a Safe Harbor "000" ZIP area
    comments_with_name: int
    comments_with_phone: int
    comments_with_email: int


@dataclass(frozen=True)
class SimStats:
    """What was written. Invariant: lines == valid_unique + duplicates + malformed."""

    lines: int
    by_type: dict[str, int]  # valid unique events per event type
    valid_unique: int
    duplicates: int
    malformed: int
    malformed_by_kind: dict[str, int]
    late: int
    out_of_order: int  # swapped same-key pairs
    seconds: float
    phi: PhiStats

    @property
    def events_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, for `--json` output and run summaries."""
        return {**asdict(self), "events_per_second": round(self.events_per_second)}


@dataclass(frozen=True)
class SimOutput:
    """The simulated window in arrival order, before it is written anywhere.

    Output line i is `lines[rows[i]]`; it arrives at `arrival_ms[i]` (non-decreasing) and comes
    from the genuine event `sources[i]` (a table row): itself, the event a duplicate copies, or
    the event a malformed line is a broken copy of. Routing uses the source, so even a line that
    is not JSON goes to its source event's topic with its key.
    """

    lines: list[bytes]  # genuine events in table order, then the malformed lines
    rows: np.ndarray  # int64 per output line: index into `lines`
    arrival_ms: np.ndarray  # int64 per output line: epoch ms it arrives at
    sources: np.ndarray  # int64 per output line: row of its genuine source event
    table: EventTable
    stats: SimStats

    def __len__(self) -> int:
        return len(self.rows)

    def event_types(self) -> list[str]:
        """Per output line, the event type of its source event."""
        types = np.asarray(self.table.types, dtype=object)
        return types[self.table.type_codes[self.sources]].tolist()

    def keys(self) -> list[str]:
        """Per output line, the envelope `key` (partition key) of its source event."""
        keys: list[str] = []
        for block in self.table.blocks:
            if isinstance(block.keys, str):
                keys.extend(repeat(block.keys, len(block)))
            else:
                keys.extend(block.keys)
        return [keys[s] for s in self.sources.tolist()]


def simulate(
    config: SimConfig,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
) -> SimStats:
    """Write the simulated window to `out` as JSONL (atomically) and describe it."""
    with _gc_paused():
        began = time.perf_counter()
        output = _generate(config, began)
        write_lines(Path(out), output.rows, output.lines, progress)
        return replace(output.stats, seconds=time.perf_counter() - began)


def generate(config: SimConfig) -> SimOutput:
    """The simulated window in arrival order (what `simulate` writes), kept in memory."""
    with _gc_paused():
        return _generate(config, time.perf_counter())


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The run keeps ~10^6 small dicts alive and the cyclic collector would rescan them again
    and again (about doubling the run time); they form no cycles, so pause it meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _generate(config: SimConfig, began: float) -> SimOutput:
    reference = load_reference(config.reference_dir)
    sink = EventSink(config.start_ms, config.end_ms)
    patients, homes = build_pool(config, reference)

    releases = manufacturing.run(config, reference, sink)
    inventory = logistics.Inventory()
    late_rates = logistics.carrier_late_rates(config, reference)
    logistics.distribute(config, reference, sink, releases, inventory, late_rates)
    orders = pharmacy.run(config, reference, sink, patients, homes, inventory, late_rates)
    survey = feedback.run(config, sink, orders.delivered)
    sales.run(config, reference, sink)
    table = sink.table()
    n = len(table)

    # Ids and clock notation depend only on the genuine events, so a run with faults holds
    # exactly the lines of the same run without them, plus the injected ones.
    st = streams(config, "envelope")
    tz = table.tz_minutes.copy()
    shifted = (st.np.random(n) < OFFSET_SHARE) & (tz == 0)
    tz[shifted] = st.np.choice(OFFSETS_MIN, int(shifted.sum()))
    lines = render_lines(table, uuid4_chars(st.np, n), stamp_chars(table.times, tz))

    plan = faults.plan(config, table, lines, streams(config, "faults"))
    arrival = np.concatenate([plan.arrival, plan.duplicate_arrival, plan.malformed_arrival])
    # Each output line is a genuine event's line (also for its duplicates) or a malformed
    # one, which follow the genuine ones in `lines`.
    rows = np.concatenate(
        [
            np.arange(n, dtype=np.int64),
            np.asarray(plan.duplicate_of, dtype=np.int64),
            n + np.arange(len(plan.malformed), dtype=np.int64),
        ]
    )
    sources = np.concatenate([rows[: n + len(plan.duplicate_of)], plan.malformed_source])
    order = np.argsort(arrival, kind="stable")

    type_counts = Counter(table.type_codes.tolist())
    by_type = {table.types[code]: count for code, count in sorted(type_counts.items())}
    ordering = [patients[i] for i in sorted(orders.patients_ordering)]
    stats = SimStats(
        lines=len(rows),
        by_type=dict(sorted(by_type.items())),
        valid_unique=n,
        duplicates=len(plan.duplicate_of),
        malformed=len(plan.malformed),
        malformed_by_kind=plan.malformed_by_kind,
        late=plan.late,
        out_of_order=plan.out_of_order,
        seconds=time.perf_counter() - began,
        phi=PhiStats(
            patients_in_pool=len(patients),
            patients_with_orders=len(ordering),
            patients_over_89=sum(_age(p.date_of_birth, config.start) >= 90 for p in ordering),
            patients_restricted_zip3=sum(p.address.zip[:3] in RESTRICTED_ZIP3 for p in ordering),
            comments_with_name=survey.comments_with_name,
            comments_with_phone=survey.comments_with_phone,
            comments_with_email=survey.comments_with_email,
        ),
    )
    return SimOutput(
        lines=lines + plan.malformed,
        rows=rows[order],
        arrival_ms=arrival[order],
        sources=sources[order],
        table=table,
        stats=stats,
    )


def _age(date_of_birth: str, on: date) -> int:
    born = date.fromisoformat(date_of_birth)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
