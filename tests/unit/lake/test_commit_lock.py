"""The lake-wide commit journal and the shared file-writer lock."""

import numpy as np
import pyarrow as pa

from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.event_index import EventIndex, LandedElsewhere
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.lake.writers import SharedWriterLock


def test_a_writer_sees_the_ids_another_committed_since_it_looked(tmp_path):
    layout = LakeLayout(tmp_path / "lake")
    mine, theirs = CommitLog(layout, []), CommitLog(layout, [])
    index = EventIndex(layout)
    elsewhere = LandedElsewhere(mine, index, tmp_path)
    hours = np.array([500_000, 500_000 + 48])
    files = index.write("other~1", pa.array(["e1", "e2"]), hours)
    theirs.commit("other~1", {"files": [str(p.relative_to(tmp_path)) for p in files]})
    mine.commit("mine~1", {"files": []})
    first_day = elsewhere.poll([files[0].parent.name.removeprefix("date=")], locked=True)
    assert first_day["event_id"].to_pylist() == ["e1"]
    assert mine.is_committed("other~1")  # its parts now count for look-ups in the lake
    second_day = elsewhere.poll([files[1].parent.name.removeprefix("date=")], locked=True)
    assert second_day["event_id"].to_pylist() == ["e2"]
    assert elsewhere.poll(["2026-01-01"], locked=True).num_rows == 0


def test_file_ingests_share_the_file_writer_and_only_the_first_is_alone(tmp_path):
    with SharedWriterLock(tmp_path) as first:
        assert first.alone
        first.share()
        with SharedWriterLock(tmp_path) as second:
            assert not second.alone


def test_a_later_writer_of_a_batch_removes_what_a_dead_writer_of_it_left(tmp_path):
    from datetime import datetime

    layout = LakeLayout(tmp_path / "lake")
    vault = tmp_path / "vault" / "patients"
    log = CommitLog(layout, [vault, layout.event_ids])
    batch, first, later = "abc123", datetime(2026, 11, 1, 9), datetime(2026, 11, 1, 14)
    assert log.begin(batch, first) == []  # the first writer notes its hour, then dies
    left = [
        layout.bronze_part("sale", first, batch),
        layout.bronze_part("order_placed", first, batch),
        layout.quarantine_part(first, batch),
        layout.event_ids_part("2026-10-30", batch),
        vault / f"part-{batch}.parquet",
        layout.bronze_part("sale", first, batch).with_name(f".tmp-77-part-{batch}.parquet"),
    ]
    others = [layout.bronze_part("sale", first, "other"), vault / "part-other.parquet"]
    for path in left + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert sorted(log.begin(batch, later)) == sorted(left)
    assert not any(p.exists() for p in left) and all(p.exists() for p in others)
    assert layout.claim_note(batch).read_text() == later.isoformat()
    log.end(batch)
    assert not layout.claim_note(batch).exists()
