import pyarrow as pa

from pharmaflow.ingest.dedupe import DedupeIndex


def test_first_arrival_wins_within_a_batch():
    index = DedupeIndex()
    first = index.first_arrivals(pa.array(["a", "b", "a", "c", "b"]))
    assert first.tolist() == [True, True, False, True, False]


def test_ids_seen_in_earlier_batches_or_runs_are_duplicates():
    index = DedupeIndex([pa.array(["a", "b"])])  # loaded from the lake
    assert len(index) == 2
    assert index.first_arrivals(pa.array(["a", "c", "c"])).tolist() == [False, True, False]
    index.add(pa.array(["c"]))
    assert index.first_arrivals(pa.array(["c", "d"])).tolist() == [False, True]


def test_empty_batch():
    assert DedupeIndex().first_arrivals(pa.array([], pa.string())).tolist() == []
