import itertools
import random

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.analyse import split_lines
from pharmaflow.ingest.sources import files, open_sources


@pytest.mark.parametrize("seed", range(5))
def test_line_runs_match_a_naive_split_whatever_the_block_size(seed, monkeypatch, tmp_path):
    rng = random.Random(seed)
    for _ in range(60):
        lines = [
            rng.choice([b"", b"x", b"abc", b"\r", b"  ", b'{"a":1}'])
            for _ in range(rng.randint(0, 40))
        ]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        monkeypatch.setattr(files, "_BLOCK", rng.randint(1, 16))
        batch_size = rng.randint(1, 7)
        path = tmp_path / "lines.jsonl"
        path.write_bytes(data)
        source = files.JsonlFileSource(path)
        with open(path, "rb") as fh:
            runs = list(source._blobs(fh, batch_size))
        got = [line for blob, count in runs for line in blob.split(b"\n")]
        expected = data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")
        assert got == (expected if data else [])
        assert all(count == batch_size for _, count in runs[:-1])
        assert all(len(blob.split(b"\n")) == count for blob, count in runs)


def test_blank_lines_are_dropped_but_keep_their_numbers(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a":1}\n\n  \r\n{"a":2}\n')
    (batch,) = open_sources(str(path), None)[0].batches(100)
    records, keep, starts = split_lines(batch.blob)
    assert records == [b'{"a":1}', b'{"a":2}']
    assert batch.kept_offsets(keep).tolist() == [1, 4]
    # each kept record's bytes run to the next kept line (blank lines ride along)
    assert [batch.blob[a:b] for a, b in itertools.pairwise(starts)] == [
        b'{"a":1}\n\n  \r\n',
        b'{"a":2}',
    ]


def test_same_bytes_give_the_same_batch_ids(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"1\n2\n3\n")
    b.write_bytes(b"1\n2\n3\n")
    ids = [[x.batch_id for x in open_sources(str(p), None)[0].batches(2)] for p in (a, b)]
    assert ids[0] == ids[1] and len(set(ids[0])) == 2


def test_csv_header_must_name_the_envelope(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text("sale_id,quantity\nS1,2\n")
    with pytest.raises(PharmaflowError, match="event_type"):
        list(open_sources(str(path), None)[0].batches(10))


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a":1}\n{"a":2}\n')
    (batch,) = open_sources(str(path), None)[0].batches(100)
    assert batch.blob == b'{"a":1}\n{"a":2}' and batch.first_offset == 1
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b'{"a":1}\n{"a":2}\n')
    (same,) = open_sources(str(plain), None)[0].batches(100)
    assert same.batch_id == batch.batch_id  # the same lines are the same batch


def test_a_csv_byte_order_mark_touches_neither_header_nor_first_row(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_bytes(b"\xef\xbb\xbfevent_id,event_type\ne1,sales.sale.completed\n")
    (batch,) = open_sources(str(path), None)[0].batches(10)
    assert batch.columns == ("event_id", "event_type")
    assert batch.blob == b"e1,sales.sale.completed" and batch.first_offset == 2


def test_csv_header_must_not_repeat_a_column(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text("event_id,event_type,quantity,quantity\ne1,sales.sale.completed,1,2\n")
    with pytest.raises(PharmaflowError, match="repeats quantity"):
        list(open_sources(str(path), None)[0].batches(10))
