from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from pharmaflow.ingest.dedupe import DedupeIndex, event_hours
from pharmaflow.lake.event_index import EventIndex
from pharmaflow.lake.layout import LakeLayout

T0 = datetime(2026, 11, 2, 10)


def times(*hours_after: float) -> pa.Array:
    return pa.array([T0 + timedelta(hours=h) for h in hours_after], pa.timestamp("us"))


def admit(index: DedupeIndex, ids: list[str], hours: list[float]) -> list[bool]:
    mask, gen = index.admit(pa.array(ids, pa.string()), times(*hours))
    index.release(gen)
    return mask.tolist()


def test_first_arrival_wins_within_a_batch():
    index = DedupeIndex()
    assert admit(index, ["a", "b", "a", "c", "b"], [0] * 5) == [True, True, False, True, False]
    assert len(index) == 3


def test_ids_of_earlier_batches_are_duplicates():
    index = DedupeIndex()
    admit(index, ["a", "b"], [0, 0])
    assert admit(index, ["a", "c", "c"], [0, 1, 1]) == [False, True, False]
    assert admit(index, ["c", "d"], [1, 1]) == [False, True]


def test_empty_batch():
    assert admit(DedupeIndex(), [], []) == []


def test_memory_keeps_only_the_event_time_window():
    index = DedupeIndex(ttl_hours=24)
    admit(index, [f"old{i}" for i in range(100)], [0] * 100)
    admit(index, ["new"], [30])  # the watermark moves 30 h on: hour 0 leaves memory
    assert len(index) == 1


def test_an_hour_stays_until_every_batch_that_added_to_it_is_committed():
    index = DedupeIndex(ttl_hours=24)
    first, gen1 = index.admit(pa.array(["x"]), times(0))
    second, gen2 = index.admit(pa.array(["y"]), times(30))  # moves the horizon past hour 0
    index.release(gen1)  # gen1 committed, but hour 0 was last added to by gen1: may go now
    assert first.tolist() == [True] and second.tolist() == [True]
    assert len(index) == 1
    late, _gen3 = index.admit(pa.array(["z", "z"]), times(1, 1))  # late: below the horizon
    assert late.tolist() == [True, False]
    index.release(gen2)  # gen3 not committed yet: "z" must stay in memory
    assert index.admit(pa.array(["z"]), times(1))[0].tolist() == [False]


def _land(layout: LakeLayout, batch: str, ids: list[str], hours: list[float]) -> None:
    EventIndex(layout).write(batch, pa.array(ids), event_hours(times(*hours)))


def test_old_events_are_checked_against_the_lake_index(tmp_path):
    layout = LakeLayout(tmp_path)
    _land(layout, "b1", ["a", "b"], [0, 0])
    _land(layout, "b2", ["c"], [100])
    _land(layout, "b3", ["uncommitted"], [0])
    committed = frozenset({"b1", "b2"})
    index = DedupeIndex(EventIndex(layout), committed.__contains__, ttl_hours=24)
    assert len(index) == 1  # only the recent date is loaded: "c"
    got = admit(index, ["a", "c", "uncommitted", "fresh", "fresh"], [0, 100, 0, 0, 0])
    assert got == [False, False, True, True, False]
    assert index.late_lookups == 4  # rows older than the window, not already in memory


def test_load_takes_in_other_writers_commits(tmp_path):
    layout = LakeLayout(tmp_path)
    committed = {"b1"}
    _land(layout, "b1", ["a"], [0])
    index = DedupeIndex(EventIndex(layout), committed.__contains__)
    _land(layout, "b2", ["b"], [1])
    committed.add("b2")
    assert index.load() == 1
    assert admit(index, ["a", "b", "c"], [0, 1, 1]) == [False, False, True]


def test_index_parts_are_per_event_date(tmp_path):
    layout = LakeLayout(tmp_path)
    hours = event_hours(times(0, 20, 48))
    paths = EventIndex(layout).write("b1", pa.array(["a", "b", "c"]), hours)
    dates = [p.parent.name for p in paths]
    assert dates == ["date=2026-11-02", "date=2026-11-03", "date=2026-11-04"]
    assert np.array_equal(hours, np.sort(hours))
