import subprocess
import sys

import pyarrow as pa
import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.files import write_parquet_atomic
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.lake.writers import WriterLock, batch_id, is_live, writer_of


def _part(layout: LakeLayout, batch: str):
    path = layout.quarantine / "date=2026-11-02" / "hour=10" / f"part-{batch}.parquet"
    write_parquet_atomic(pa.table({"x": [1]}), path)
    return path


def test_a_writer_id_is_held_by_one_run_at_a_time(tmp_path):
    with WriterLock(tmp_path, "kafka-h-0"):
        assert is_live(tmp_path, "kafka-h-0")
        with (
            pytest.raises(PharmaflowError, match="already writing"),
            WriterLock(tmp_path, "kafka-h-0"),
        ):
            pass
    assert not is_live(tmp_path, "kafka-h-0")
    assert writer_of(batch_id("kafka-h-0", "x")) == "kafka-h-0"
    assert writer_of("3f2a9c") == "files"


def test_recovery_spares_the_uncommitted_parts_of_a_live_writer(tmp_path):
    layout = LakeLayout(tmp_path)
    live_part = _part(layout, batch_id("kafka-h-1", "b1"))
    dead_part = _part(layout, batch_id("kafka-h-2", "b1"))
    own_part = _part(layout, batch_id("kafka-h-0", "b1"))
    holder = subprocess.Popen(  # another process holds kafka-h-1, as a running worker would
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from pharmaflow.lake.writers import "
         "WriterLock\nwith WriterLock(Path(sys.argv[1]), 'kafka-h-1'):\n print('held', "
         "flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with WriterLock(tmp_path, "kafka-h-0"):
            removed = CommitLog(layout, []).recover("kafka-h-0")
    finally:
        holder.kill()
        holder.wait()
    assert set(removed) == {dead_part, own_part}
    assert live_part.exists()


def test_manifests_bookmark_the_highest_offset_per_topic_incarnation(tmp_path):
    layout = LakeLayout(tmp_path)
    log = CommitLog(layout, [])
    log.commit("k~1", {"offsets": [["t", "id-1", 0, 0, 99], ["t", "id-1", 1, 0, 10]]})
    log.commit("k~2", {"offsets": [["t", "id-1", 0, 100, 180]]})
    log.commit("k~3", {"offsets": [["t", "id-2", 0, 0, 5]]})  # the topic, created again
    expected = {("t", "id-1", 0): 180, ("t", "id-1", 1): 10, ("t", "id-2", 0): 5}
    assert log.landed_offsets() == expected
    assert CommitLog(layout, []).landed_offsets() == expected  # read back from the manifests


def test_a_manifest_caught_before_its_rename_commits_nothing_and_is_swept(tmp_path):
    """kill -9 between writing a manifest's temporary file and renaming it: the batch is not
    committed, its offsets are no bookmark, and recovery removes the temporary file."""
    layout = LakeLayout(tmp_path)
    batch = batch_id("kafka-h-0", "b1")
    part = _part(layout, batch)
    layout.manifests.mkdir(parents=True)
    temp = layout.manifests / f".tmp-4242-{batch}.json"
    temp.write_bytes(b'{"offsets": [["t", "id-1", 0, 0, 99]], "files": []}')
    log = CommitLog(layout, [])
    assert not log.is_committed(batch) and log.landed_offsets() == {}
    with WriterLock(tmp_path, "kafka-h-0"):
        assert set(log.recover("kafka-h-0")) == {part, temp}
