"""`simulate()`: one coherent, deterministic window of events across all five domains.

The domains run in dependency order, each on its own random stream: manufacturing releases
lots, distribution moves them to DCs and pharmacies, orders dispense what has arrived and
ship it to patients, patients answer surveys; sales run alongside. Only then are ids,
timestamps, arrival order and faults decided over the whole stream. `simulate()` then renders
and writes the lines chunk by chunk in arrival order (only a chunk's lines exist at once);
`generate()` renders them all and returns them in arrival order (`SimOutput`), for publishing
to Kafka (`pharmaflow.simulate.publish`). Both give the same lines for the same seed.

Memory: the business events of the whole window are held (compact columns, readings as
numbers, about 0.4 KB per event) because arrival order and faults are decided over the
whole window; rendered lines are not. So a file run needs about 0.4 KB per event plus a
bounded chunk, and the CLI refuses up front a window whose estimate exceeds the memory
available (`estimate_bytes`) rather than be killed part-way.
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
from pharmaflow.simulate.truth import Truth
from pharmaflow.simulate.writer import (
    CHUNK_LINES,
    LineRenderer,
    stamp_chars,
    uuid4_chars,
    write_chunks,
)

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
    truth: Truth  # ground truth beside the events (simulate/truth.py)

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


# Measured on the default reference data (7-day windows): about 20k events a day that do not
# grow with scale (sensor streams of the fixed equipment) plus 30k per unit of scale
# (342k events at scale 1, 1.20M at 5, 4.13M at 20); and the bytes held per event while a
# window is planned and written to a file (436 measured), or kept whole for publishing.
EVENTS_PER_DAY = 20_000
EVENTS_PER_SCALE_DAY = 30_000
FILE_BYTES_PER_EVENT = 480
MEMORY_BYTES_PER_EVENT = 1_000
BASE_BYTES = 200 * 2**20


def estimate_bytes(config: SimConfig, *, in_memory: bool = False) -> int:
    """Peak memory a run of `config` needs (a file run, or `generate` if `in_memory`): the
    whole window's events are planned at once, so it grows with scale x days; checked
    before a run so an oversized one is refused at once rather than killed part-way."""
    per_event = MEMORY_BYTES_PER_EVENT if in_memory else FILE_BYTES_PER_EVENT
    events = config.days * (EVENTS_PER_DAY + EVENTS_PER_SCALE_DAY * config.scale)
    return BASE_BYTES + int(events * per_event)


def simulate(
    config: SimConfig,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
    truth_dir: Path | None = None,
) -> SimStats:
    """Write the simulated window to `out` as JSONL (atomically) and describe it. Lines are
    rendered and written one chunk at a time, in arrival order. With `truth_dir`, the ground
    truth goes there (simulate/truth.py)."""
    with _gc_paused():
        began = time.perf_counter()
        window = _plan(config, began)
        write_chunks(Path(out), window.chunks(CHUNK_LINES), len(window.rows), progress)
        if truth_dir is not None:
            window.truth.write(Path(truth_dir), config.model_dump(mode="json"))
        return replace(window.stats, seconds=time.perf_counter() - began)


def generate(config: SimConfig) -> SimOutput:
    """The simulated window in arrival order (what `simulate` writes), kept in memory."""
    with _gc_paused():
        window = _plan(config, time.perf_counter())
        lines = window.renderer.render(np.arange(window.genuine, dtype=np.int64))
        return SimOutput(
            lines=lines + window.malformed,
            rows=window.rows,
            arrival_ms=window.arrival_ms,
            sources=window.sources,
            table=window.table,
            stats=window.stats,
            truth=window.truth,
        )


@dataclass(frozen=True)
class _Window:
    """A planned window: which line goes where, with the genuine lines not yet rendered.
    Row r of `rows` below `genuine` is a table row; from `genuine` on, a malformed line."""

    renderer: LineRenderer
    malformed: list[bytes]
    genuine: int
    rows: np.ndarray
    arrival_ms: np.ndarray
    sources: np.ndarray
    table: EventTable
    stats: SimStats
    truth: Truth

    def chunks(self, size: int) -> Iterator[list[bytes]]:
        """The output lines in arrival order, `size` at a time, each chunk rendered when
        it is asked for."""
        n = self.genuine
        for begin in range(0, len(self.rows), size):
            rows = self.rows[begin : begin + size]
            genuine = rows < n
            lines: list[bytes] = [b""] * len(rows)
            rendered = self.renderer.render(rows[genuine])
            for at, line in zip(np.flatnonzero(genuine).tolist(), rendered, strict=True):
                lines[at] = line
            for at in np.flatnonzero(~genuine).tolist():
                lines[at] = self.malformed[int(rows[at]) - n]
            yield lines


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


def _plan(config: SimConfig, began: float) -> _Window:
    reference = load_reference(config.reference_dir)
    sink = EventSink(config.start_ms, config.end_ms)
    truth = Truth()
    patients, homes = build_pool(config, reference)

    releases = manufacturing.run(config, reference, sink)
    inventory = logistics.Inventory()
    late_rates = logistics.carrier_late_rates(config, reference)
    logistics.distribute(config, reference, sink, releases, inventory, late_rates, truth)
    orders = pharmacy.run(config, reference, sink, patients, homes, inventory, late_rates, truth)
    survey = feedback.run(config, sink, orders.delivered, truth)
    sales.run(config, reference, sink, truth)
    table = sink.table()
    n = len(table)

    # Ids and clock notation depend only on the genuine events, so a run with faults holds
    # exactly the lines of the same run without them, plus the injected ones.
    st = streams(config, "envelope")
    tz = table.tz_minutes.copy()
    shifted = (st.np.random(n) < OFFSET_SHARE) & (tz == 0)
    tz[shifted] = st.np.choice(OFFSETS_MIN, int(shifted.sum()))
    renderer = LineRenderer(table, uuid4_chars(st.np, n), stamp_chars(table.times, tz))

    plan = faults.plan(config, table, renderer.render, streams(config, "faults"))
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
    return _Window(
        renderer=renderer,
        malformed=plan.malformed,
        genuine=n,
        rows=rows[order],
        arrival_ms=arrival[order],
        sources=sources[order],
        table=table,
        stats=stats,
        truth=truth,
    )


def _age(date_of_birth: str, on: date) -> int:
    born = date.fromisoformat(date_of_birth)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
