"""The state store on SQLite: windows and lateness end to end, wall-clock time, exactly once
across restarts and failed commits, concurrent workers and readers, compaction, and no PHI."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.config import RealtimeConfig
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.reader import StateReader, stuck_orders, waiting_by_stage
from pharmaflow.realtime.schema import TABLES
from pharmaflow.realtime.store import RealtimeDedupe, StateStore
from tests.factories import PATIENT
from tests.phi_scan import leaks, record_phi_values
from tests.realtime_events import (
    CONFIG,
    ORDER,
    SALE,
    Feed,
    apply,
    at,
    batch,
    dump,
    event,
    mixed_events,
    rejected,
    view,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "realtime" / "state.db")
    yield database
    database.close()


def counts(db: Database, kpi: str = "events", width: int = 60) -> dict[tuple, float]:
    return {
        (w.start, w.entity, w.label): w.value
        for w in StateReader(db, CONFIG).windows(kpi=kpi, width_s=width)
    }


# -- windows and lateness against a hand-built sequence ----------------------------------


def test_hand_built_sequence_early_results_lateness_and_finality(db: Database):
    store = StateStore(db, "g", CONFIG)
    reader = StateReader(db, CONFIG)
    feed = Feed()
    wall = at(0)
    first = feed.place(
        [
            event(SALE, at(0, seconds=10)),
            event(SALE, at(0, seconds=50)),
            event(SALE, at(1, seconds=30)),
            event(SALE, at(4)),
        ]
    )
    applied = apply(store, first, wall)
    assert (applied.on_time, applied.late) == (4, 0)
    # early results: readable while the windows are open
    assert counts(db) == {(at(0), "", SALE): 2, (at(1), "", SALE): 1, (at(4), "", SALE): 1}
    assert counts(db, width=300) == {(at(0), "", SALE): 4}
    assert not any(w.final for w in reader.windows())

    second = feed.place(
        [
            event(SALE, at(90)),  # 11:30: the clock moves to 11:30
            event(SALE, at(20)),  # 10:20: final at 11:21 <= 11:30 -> late, by 70 minutes
            event(SALE, at(40)),  # 10:40: final at 11:41 > 11:30 -> late but allowed: counted
        ]
    )
    applied = apply(store, second, wall + timedelta(minutes=1))
    assert (applied.on_time, applied.late, applied.late_by_type) == (2, 1, {SALE: 1})
    assert applied.late_seconds == [70 * 60.0]
    assert counts(db)[(at(40), "", SALE)] == 1
    assert (at(20), "", SALE) not in counts(db)

    snap = reader.snapshot(wall)
    assert snap.totals == {SALE: (6, 1)}  # on time + late == the 7 events
    assert [(c.event_type, c.count, c.max_late_s) for c in snap.late] == [(SALE, 1, 4200.0)]
    assert sum(w.value for w in snap.windows if w.kpi == "events" and w.width_s == 60) == 6
    assert sum(w.value for w in snap.windows if w.kpi == "events" and w.width_s == 300) == 6
    assert snap.clock == at(90)

    # 40 minutes of wall time with no events: the clock reaches 12:10
    assert store.tick(wall + timedelta(minutes=41)) > 0
    final = {(w.width_s, w.start): w.final for w in reader.windows(kpi="events")}
    assert final == {
        (60, at(0)): True,
        (60, at(1)): True,
        (60, at(4)): True,
        (60, at(40)): True,
        (60, at(90)): False,  # 11:30 is final at 12:31
        (300, at(0)): True,
        (300, at(40)): True,
        (300, at(90)): False,
    }


def test_processing_time_counts_records_and_quarantined_per_topic(db: Database):
    store = StateStore(db, "g", CONFIG)
    events, _ = batch(Feed().place([event(SALE, at(0)), event(SALE, at(1))]))
    bad = rejected([("pharma.sales", 0, 2, None, "malformed_json"),
                    ("pharma.sales", 0, 3, SALE, "out_of_range")])  # fmt: skip
    applied = store.apply(events, bad, {("pharma.sales", 0): 3}, at(7, seconds=30))
    assert applied.rejected == 2
    assert counts(db, "records") == {(at(7), "pharma.sales", ""): 4}
    assert counts(db, "quarantined") == {
        (at(7), "pharma.sales", "malformed_json"): 1,
        (at(7), "pharma.sales", "out_of_range"): 1,
    }
    assert StateReader(db, CONFIG).committed_offsets("g") == {("pharma.sales", 0): 3}


# -- conservation, as a property ------------------------------------------------------------


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([SALE, "logistics.shipment.scanned", ORDER + "placed"]),
            st.integers(min_value=-240, max_value=240),  # minutes around T0
            st.integers(min_value=0, max_value=2),  # partition
        ),
        min_size=1,
        max_size=50,
    ),
    st.lists(st.integers(min_value=1, max_value=50), max_size=5),
    st.lists(st.integers(min_value=0, max_value=90), min_size=6, max_size=6),
)
def test_on_time_plus_late_is_every_event_and_late_events_are_in_no_window(spec, cuts, wall_steps):
    feed = Feed()
    placed = []
    for i, (kind, minute, partition) in enumerate(spec):
        e = event(kind, at(minute), key=f"K-{i}", status="IN_TRANSIT")
        placed += feed.place([e], partition=partition)
    bounds = sorted({min(c, len(placed)) for c in cuts} | {0, len(placed)})
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(Path(tmp) / "state.db")
        store = StateStore(database, "g", CONFIG)
        wall = at(0)
        late_seen: dict[str, int] = {}
        for step, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            wall += timedelta(minutes=wall_steps[step % len(wall_steps)])
            applied = apply(store, placed[lo:hi], wall)
            assert applied.on_time + applied.late == hi - lo
            for t, n in applied.late_by_type.items():
                late_seen[t] = late_seen.get(t, 0) + n
            store.tick(wall + timedelta(minutes=1))
        snap = StateReader(database, CONFIG).snapshot(wall)
        database.close()
    expected: dict[str, int] = {}
    for kind, _m, _p in spec:
        expected[kind] = expected.get(kind, 0) + 1
    assert {t: on + late for t, (on, late) in snap.totals.items()} == expected
    assert {t: late for t, (_on, late) in snap.totals.items() if late} == late_seen
    for width in CONFIG.windows_s:
        windowed: dict[str, float] = {}
        for w in snap.windows:
            if w.kpi == "events" and w.width_s == width:
                windowed[w.label] = windowed.get(w.label, 0) + w.value
        assert windowed == {t: on for t, (on, _late) in snap.totals.items() if on}


# -- wall-clock time ----------------------------------------------------------------------


def test_a_quiet_partition_closes_its_windows_and_flags_a_stuck_order(db: Database):
    store = StateStore(db, "g", CONFIG)
    reader = StateReader(db, CONFIG)
    feed = Feed()
    wall = at(0)
    events = [
        event(ORDER + "placed", at(0), key="O-1"),
        event(ORDER + "placed", at(1), key="O-2"),
        event(ORDER + "insurance_validated", at(2), key="O-2"),
    ]
    apply(store, feed.place(events), wall)
    snap = reader.snapshot(wall)
    assert [o.order_id for o in snap.orders] == ["O-1", "O-2"]
    assert stuck_orders(snap, CONFIG) == []
    assert not any(w.final for w in snap.windows if w.kpi == "order_stage_entered")

    # no event arrives; three hours of wall time pass (placed may wait 2 h)
    closed = store.tick(wall + timedelta(hours=3))
    assert closed == 3 + 1  # 10:00, 10:01, 10:02 and the 10:00-10:05 window
    snap = reader.snapshot(wall + timedelta(hours=3))
    assert snap.clock == at(2) + timedelta(hours=3)
    assert [o.order_id for o in stuck_orders(snap, CONFIG)] == ["O-1"]
    assert stuck_orders(snap, CONFIG)[0].waiting_s == (3 * 60 + 2) * 60
    assert waiting_by_stage(snap, CONFIG) == {"insurance_validated": (1, 0), "placed": (1, 1)}
    assert all(w.final for w in snap.windows if w.kpi == "order_stage_entered")

    delivered = [event(ORDER + s, at(200), key="O-1") for s in ("filled", "delivered")]
    apply(store, feed.place(delivered), wall)
    assert [o.order_id for o in reader.snapshot(wall).orders] == ["O-2"]


def test_the_reader_does_not_extrapolate_the_clock(db: Database):
    store = StateStore(db, "g", CONFIG)
    apply(store, Feed().place([event(ORDER + "placed", at(0), key="O-1")]), at(0))
    later = StateReader(db, CONFIG).snapshot(at(600))  # the writer has not ticked
    assert later.clock == at(0) and stuck_orders(later, CONFIG) == []


# -- exactly once: restarts, failed commits, re-applied batches --------------------------


def placed_stream(n: int = 240, seed: int = 1) -> list[tuple]:
    feed = Feed()
    events = mixed_events(n, seed)
    return feed.place(events[0::2], partition=0) + feed.place(events[1::2], partition=1)


def run_batches(store: StateStore, records: list[tuple], size: int, wall: datetime) -> None:
    for lo in range(0, len(records), size):
        apply(store, records[lo : lo + size], wall)


def test_a_restart_continues_exactly(tmp_path: Path):
    records = placed_stream()
    wall = at(400)
    whole = Database(tmp_path / "whole.db")
    run_batches(StateStore(whole, "g", CONFIG), records, 37, wall)

    halves = Database(tmp_path / "halves.db")
    first = StateStore(halves, "g", CONFIG)
    run_batches(first, records[:131], 37, wall)
    committed = first.offsets()
    del first  # a crash after a commit: memory is gone
    second = StateStore(halves, "g", CONFIG)
    partitions = sorted({(t, p) for _e, t, p, _o in records})
    assert second.load(partitions) == committed
    run_batches(second, records[131:], 50, wall)  # cut differently, too
    assert dump(halves) == dump(whole)
    assert view(halves) == view(whole)
    restarted = StateStore(halves, "g", CONFIG)
    restarted.load(partitions)
    again = StateStore(whole, "g", CONFIG)
    again.load(partitions)
    assert restarted.memory() == again.memory()
    for key in partitions:
        assert restarted._parts[key].state == again._parts[key].state
    whole.close()
    halves.close()


def test_an_exception_inside_the_transaction_leaves_database_and_memory_as_they_were(
    tmp_path: Path,
):
    records = placed_stream(120)
    clean = Database(tmp_path / "clean.db")
    run_batches(StateStore(clean, "g", CONFIG), records, 60, at(300))

    db = Database(tmp_path / "state.db")
    store = StateStore(db, "g", CONFIG)
    apply(store, records[:60], at(300))
    before, memory = dump(db), store.memory()
    states = {k: p.state for k, p in store._parts.items()}
    snapshot_of_states = {k: repr(s) for k, s in states.items()}
    with sqlite3.connect(db.url) as raw:  # the last write of the transaction fails
        for op in ("INSERT", "UPDATE"):
            raw.execute(
                f"CREATE TRIGGER fail_{op.lower()} BEFORE {op} ON rt_partitions "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
            )
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        apply(store, records[60:], at(300))
    with sqlite3.connect(db.url) as raw:
        raw.execute("DROP TRIGGER fail_insert")
        raw.execute("DROP TRIGGER fail_update")
    assert dump(db) == before
    assert store.memory() == memory
    assert {k: repr(p.state) for k, p in store._parts.items()} == snapshot_of_states
    apply(store, records[60:], at(300))  # the same store carries on
    assert dump(db) == dump(clean)
    db.close()
    clean.close()


def test_a_batch_at_or_below_the_committed_offsets_is_a_no_op(db: Database):
    records = placed_stream(80)
    store = StateStore(db, "g", CONFIG)
    apply(store, records[:50], at(100))
    before = dump(db)
    again = apply(store, records[:50], at(100))
    assert (again.events, again.skipped) == (0, 50)
    assert dump(db) == before
    # an overlapping batch: only the records above the committed offsets count
    overlap = apply(store, records[30:], at(100))
    assert (overlap.events, overlap.skipped) == (len(records) - 50, 20)
    fresh = Database(Path(db.url).with_name("fresh.db"))
    apply(StateStore(fresh, "g", CONFIG), records, at(100))
    assert dump(db) == dump(fresh)
    fresh.close()


def test_a_partition_committed_by_another_worker_is_refused_until_reloaded(db: Database):
    records = Feed().place(mixed_events(40))  # one partition per topic, topics interleaved
    partitions = sorted({(t, p) for _e, t, p, _o in records})
    mine = StateStore(db, "g", CONFIG)
    theirs = StateStore(db, "g", CONFIG)
    mine.load(partitions)
    theirs.load(partitions)
    apply(theirs, records[:20], at(100))
    with pytest.raises(PharmaflowError, match="committed up to offset"):
        apply(mine, records[20:], at(100))
    mine.load(partitions)
    assert apply(mine, records[20:], at(100)).events == 20


# -- workers and readers in other processes ------------------------------------------------


def _worker(path: str, partition: int, batches: int) -> None:
    """One worker owning pharma.sales[partition] (and its own events)."""
    db = Database(path)
    store = StateStore(db, "g", CONFIG)
    feed = Feed()
    for b in range(batches):
        events = [event(SALE, at(b + i / 100), key=f"S-{partition}-{b}-{i}") for i in range(50)]
        apply(store, feed.place(events, partition=partition), at(b))
    db.close()


def test_two_workers_write_one_file_concurrently_and_readers_merge_them(tmp_path: Path):
    path = str(tmp_path / "shared.db")  # created by whichever worker comes first
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(path, p, 30)) for p in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    alone = str(tmp_path / "alone.db")
    _worker(alone, 0, 30)
    _worker(alone, 1, 30)  # the same events, one after the other, in one file
    shared, single = Database(path), Database(alone)
    assert view(shared) == view(single)
    assert view(shared)["totals"] == {SALE: (3000, 0)}
    assert StateReader(shared, CONFIG).committed_offsets("g") == {
        ("pharma.sales", 0): 1499,
        ("pharma.sales", 1): 1499,
    }
    shared.close()
    single.close()


def test_a_reader_in_another_process_never_sees_half_a_batch(tmp_path: Path):
    path = str(tmp_path / "live.db")
    reader = StateReader(Database(path), CONFIG)
    ctx = mp.get_context("spawn")
    writer = ctx.Process(target=_worker, args=(path, 0, 40))
    writer.start()
    seen = []
    while writer.is_alive():
        snap = reader.snapshot()
        on_time = snap.totals.get(SALE, (0, 0))[0]
        windowed = sum(w.value for w in snap.windows if w.kpi == "events" and w.width_s == 60)
        assert on_time % 50 == 0  # whole batches only
        assert windowed == on_time  # windows and totals of the same commits
        seen.append(on_time)
        time.sleep(0.005)
    writer.join()
    assert writer.exitcode == 0
    assert seen == sorted(seen)
    assert reader.snapshot().totals[SALE] == (2000, 0)
    assert any(0 < n < 2000 for n in seen), "the reader never overlapped the writer"


# -- bounded state ----------------------------------------------------------------------------


def test_compaction_keeps_memory_and_the_database_bounded(db: Database):
    config = RealtimeConfig(allowed_lateness_s=600, retention_s=1800, dedupe_ttl_hours=1)
    store = StateStore(db, "g", config)
    feed = Feed()
    sizes = []
    for step in range(60):  # 60 x 10 minutes of event time, new keys all along
        base = step * 10.0
        events = []
        for i in range(20):
            k = f"{step}-{i}"
            events += [
                event(ORDER + "placed", at(base + i * 0.5), key=f"O-{k}"),
                event("manufacturing.sensor.reading", at(base + i * 0.5), key=f"B-{k}"),
                event("logistics.temperature.reading", at(base + i * 0.5), key=f"SH-{k}"),
                event("manufacturing.lab.result", at(base + i * 0.5), key=f"B-{k}",
                      outcome="FAIL"),
                event(SALE, at(base + i * 0.5), key=f"S-{k}"),
            ]  # fmt: skip
        table, offsets = batch(feed.place(events))
        mask, gen = store.dedupe.admit(table["event_id"], table["event_time"])
        assert mask.all()
        store.apply(table, None, offsets, at(base))
        store.dedupe.release(gen)
        store.compact(at(base))
        sizes.append(store.memory())
    late = sizes[30:]
    for name in ("orders", "shipments", "sensors", "lab_failures", "open_windows"):
        assert max(s[name] for s in late) <= 80, name  # 30 min of keys: 3 steps x 20 (+1)
    # ids: the dedupe horizon (1 h) behind the clock, plus the current hour: 600 ids an hour
    assert max(s["dedupe_ids"] for s in late) <= (config.dedupe_horizon_hours + 1) * 600
    with db.reading() as tx:
        rows = {t: tx.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}
    assert rows["rt_orders"] <= 80 and rows["rt_sensors"] <= 80
    assert rows["rt_seen"] <= 4 * 2 * 12  # 4 partitions x hours a batch spans x 2 h of batches
    # windows: 30 min of 1-min and 5-min windows, 5 KPIs or so, one partition per topic
    assert rows["rt_windows"] <= 12 * 40 * 2


# -- dedupe -----------------------------------------------------------------------------------


def test_dedupe_admits_first_arrivals_and_can_be_rolled_back():
    dedupe = RealtimeDedupe()
    times = pa.array([at(0).replace(tzinfo=None)] * 5, pa.timestamp("us"))
    mask, gen = dedupe.admit(pa.array(["a", "b", "a", "c", "b"]), times)
    assert mask.tolist() == [True, True, False, True, False]
    dedupe.rollback(gen)  # the batch was not committed
    mask, gen = dedupe.admit(pa.array(["a", "d"]), times[:2])
    assert mask.tolist() == [True, True]
    dedupe.release(gen)
    assert dedupe.admit(pa.array(["a", "e"]), times[:2])[0].tolist() == [False, True]


def test_admitted_ids_survive_a_restart(db: Database):
    store = StateStore(db, "g", CONFIG)
    table, offsets = batch(Feed().place([event(SALE, at(i)) for i in range(5)]))
    mask, gen = store.dedupe.admit(table["event_id"], table["event_time"])
    store.apply(table.filter(pa.array(mask)), None, offsets, at(10))
    store.dedupe.release(gen)
    restarted = StateStore(db, "g", CONFIG)
    restarted.load([("pharma.sales", 0)])
    again, _ = restarted.dedupe.admit(table["event_id"], table["event_time"])
    assert not again.any()
    restarted.forget([("pharma.sales", 0)])
    assert len(restarted.dedupe) == 0 and restarted.partitions == []


# -- no patient identifier in the store -------------------------------------------------------


def test_the_store_holds_no_patient_identifier_or_key(db: Database):
    """Even when the events still carry a full patient record (protection gone wrong), the
    store copies nothing of `payload.patient`."""
    patient = {**PATIENT, "patient_key": "pk_4f1e0b9a77c2d3e5"}
    events = [event(ORDER + "placed", at(i), key=f"O-{i}", patient=patient) for i in range(5)] + [
        event(ORDER + "filled", at(10), key="O-1"),
        event(ORDER + "cancelled", at(11), key="O-2"),
    ]
    store = StateStore(db, "g", CONFIG)
    apply(store, Feed().place(events), at(20))
    store.tick(at(400))
    values, names = record_phi_values([PATIENT])
    values.add(patient["patient_key"])
    strings = [
        pa.array([str(v) for row in rows for v in row if isinstance(v, str)], pa.string())
        for rows in dump(db).values()
    ]
    assert leaks(strings, values, names) == []
    db.close()
    raw = b"".join(p.read_bytes() for p in Path(db.url).parent.glob("state.db*"))
    assert not [v for v in values if v.encode() in raw]
    assert not [n for n in names if n.encode() in raw]
    assert len(StateReader(Database(db.url), CONFIG).snapshot().orders) == 4


def test_an_empty_batch_commits_its_offsets(db: Database):
    store = StateStore(db, "g", CONFIG)
    applied = store.apply(None, None, {("pharma.sales", 3): 41}, at(0))
    assert applied.events == 0
    assert StateReader(db, CONFIG).committed_offsets("g") == {("pharma.sales", 3): 41}
    assert store.apply(None, None, {("pharma.sales", 3): 41}, at(0)).events == 0


def test_time_columns_in_other_units_and_null_partitions(db: Database):
    table, _ = batch(Feed(topic="/data/in.jsonl").place([event(SALE, at(1)), event(SALE, at(2))]))
    table = table.set_column(
        table.schema.get_field_index("event_time"),
        "event_time",
        table["event_time"].cast(pa.timestamp("ms", "UTC")),
    ).set_column(
        table.schema.get_field_index("source_partition"),
        "source_partition",
        pa.array([None, None], pa.int32()),
    )
    StateStore(db, "g", CONFIG).apply(table, None, {("/data/in.jsonl", None): 1}, at(3))
    assert counts(db) == {(at(1), "", SALE): 1, (at(2), "", SALE): 1}
    assert StateReader(db, CONFIG).committed_offsets("g") == {("/data/in.jsonl", 0): 1}
    assert np.isclose(sum(counts(db, width=300).values()), 2)
