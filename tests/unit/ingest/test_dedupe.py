import pyarrow as pa

from pharmaflow.ingest.dedupe import DedupeIndex


def test_first_arrival_wins_within_a_batch():
    index = DedupeIndex()
    assert index.admit(pa.array(["a", "b", "a", "c", "b"])).tolist() == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert len(index) == 3


def test_ids_landed_in_earlier_batches_or_runs_are_duplicates():
    index = DedupeIndex([pa.array(["a", "b"])])  # loaded from the lake
    assert len(index) == 2
    assert index.admit(pa.array(["a", "c", "c"])).tolist() == [False, True, False]
    assert index.admit(pa.array(["c", "d"])).tolist() == [False, True]


def test_empty_batch():
    assert DedupeIndex().admit(pa.array([], pa.string())).tolist() == []
