"""Several ingests into one lake at once, as real processes: each event id lands once.

Every test starts its writers together, with small batches and a pause between writing a
batch's parts and committing it (`PHARMAFLOW_TEST_COMMIT_PAUSE`), so their batches are in flight
at the same time; each asserts that the runs did overlap in time and that every run landed
some of the shared events, so none can pass by one run simply finishing first.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition

from pharmaflow.lake.layout import LakeLayout, part_batch_id
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import SimOutput, generate
from tests.conftest import env_with_keys
from tests.kafka import embedded_broker, kafka_url, manifests, produce, result_of, wait_for

# ~30k lines, with duplicates and malformed lines in the input itself.
CONFIG = SimConfig(seed=23, days=4, scale=0.2, duplicate_rate=0.02, malformed_rate=0.01)
BATCH = "1500"
PAUSE = "0.05"


@pytest.fixture(scope="module")
def output() -> SimOutput:
    return generate(CONFIG)


def write_lines(path: Path, output: SimOutput, start: int, end: int) -> Path:
    with open(path, "wb") as fh:
        for row in output.rows[start:end].tolist():
            fh.write(output.lines[row] + b"\n")
    return path


def ingest(data_dir: Path, source: str, *extra: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "ingest",
        "--source", source, "--json", "--batch-size", BATCH, *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_keys(PHARMAFLOW_INGEST_WORKERS="0", PHARMAFLOW_TEST_COMMIT_PAUSE=PAUSE),
    )


def results(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    try:
        return [result_of(p, timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def committed_parts(data_dir: Path, directory: Path) -> list[Path]:
    """Every part under `directory` whose batch is committed: what the lake's readers read
    (so a stray part of a committed batch would count too)."""
    committed = set(LakeLayout(data_dir / "lake").committed_manifests())
    return [p for p in directory.rglob("part-*.parquet") if part_batch_id(p.name) in committed]


def ids_in(paths: list[Path]) -> list[str]:
    return [i for p in paths for i in pq.read_table(p, columns=["event_id"])[0].to_pylist()]


def assert_each_event_once(data_dir: Path, runs: list[dict[str, Any]], expected: int) -> None:
    bronze = ids_in(committed_parts(data_dir, data_dir / "lake" / "bronze"))
    assert len(bronze) == len(set(bronze)) == expected
    patients = ids_in(committed_parts(data_dir, data_dir / "vault" / "patients"))
    assert patients and len(patients) == len(set(patients))
    assert set(patients) <= set(bronze)
    for run in runs:
        assert run["conserved"], run
        assert run["landed"] > 0, runs  # every writer landed some: they raced for the events
    assert sum(run["landed"] for run in runs) == expected
    # The manifests agree with the runs, and with what bronze holds.
    counted = manifests(data_dir)
    assert sum(m["counts"]["landed"] for m in counted) == expected
    for m in counted:
        c = m["counts"]
        assert c["records"] == c["blank"] + c["landed"] + c["duplicates"] + c["quarantined"]


def assert_overlapped(data_dir: Path, prefixes: tuple[str, str]) -> None:
    """The two runs' commits interleave in time (each committed before the other's last)."""
    times: dict[str, list[datetime]] = {p: [] for p in prefixes}
    for m in manifests(data_dir):
        for prefix in prefixes:
            if m["source_uri"].startswith(prefix) or m["batch_id"].startswith(prefix):
                times[prefix].append(datetime.fromisoformat(m["committed_at"]))
    a, b = (sorted(times[p]) for p in prefixes)
    assert a and b and a[0] < b[-1] and b[0] < a[-1], "the runs did not overlap"


def assert_group_at_end(bootstrap: str, group: str) -> None:
    """The group has committed, for every partition, an offset at or past its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        topics = consumer.list_topics(timeout=20).topics
        partitions = [
            TopicPartition(name, p)
            for name, topic in topics.items()
            if not name.endswith(".dlq") and not name.startswith("_")
            for p in topic.partitions
        ]
        assert partitions
        for tp in consumer.committed(partitions, timeout=20):
            _low, high = consumer.get_watermark_offsets(tp, timeout=20)
            assert tp.offset >= high, (tp, high)  # nothing left unacknowledged
    finally:
        consumer.close()


def test_two_file_ingests_of_overlapping_files_land_each_event_once(tmp_path, output):
    n = len(output)
    x = write_lines(tmp_path / "x.jsonl", output, 0, 2 * n // 3)
    y = write_lines(tmp_path / "y.jsonl", output, n // 3, n)  # other batch boundaries too
    data = tmp_path / "data"
    runs = results([ingest(data, str(x)), ingest(data, str(y))])
    assert_each_event_once(data, runs, output.stats.valid_unique)
    assert_overlapped(data, (str(x.resolve()), str(y.resolve())))


def test_the_same_file_ingested_by_two_processes_at_once_lands_once(tmp_path, output):
    path = write_lines(tmp_path / "all.jsonl", output, 0, len(output))
    data = tmp_path / "data"
    runs = results([ingest(data, str(path)), ingest(data, str(path))])
    assert_each_event_once(data, runs, output.stats.valid_unique)
    # The same lines make the same batches: each committed once, by one of the two; the other
    # counts it replayed (or, where it had landed those events itself, as duplicates).
    committed = manifests(data)
    assert len({m["batch_id"] for m in committed}) == len(committed)
    assert all(r["replayed"] > 0 for r in runs), runs
    assert sum(r["input"] for r in runs) == 2 * len(output)
    # Each batch's parts are the committer's: no part was written over by the other run.
    for m in committed:
        for rel in m["files"]:
            if "/bronze/" in f"/{rel}":
                table = pq.read_table(data / rel, columns=["batch_id"])
                assert set(table["batch_id"].to_pylist()) == {m["batch_id"]}
    # A third run finds everything committed.
    again = results([ingest(data, str(path))])[0]
    assert again["replayed"] == again["input"] == len(output) and again["landed"] == 0


@pytest.mark.slow
def test_a_file_ingest_and_a_kafka_ingest_of_the_same_events_land_each_once(tmp_path, output):
    path = write_lines(tmp_path / "all.jsonl", output, 0, len(output))
    data = tmp_path / "data"
    with embedded_broker(tmp_path / "broker") as broker:
        produce(broker.bootstrap, output)
        url = kafka_url(broker.bootstrap, "concurrent")
        stream = ingest(data, url, "--worker-slot", "0", "--idle-exit", "8")
        try:
            # The file ingest starts once the stream worker has joined and committed a batch.
            def started() -> bool:
                assert stream.poll() is None, stream.communicate()[1][-3000:]
                return any(m["source"] == "kafka" for m in manifests(data))

            wait_for(started, 60, "a kafka batch")
            files = ingest(data, str(path))
        except BaseException:
            stream.kill()
            stream.wait()
            raise
        runs = results([stream, files])
        assert_each_event_once(data, runs, output.stats.valid_unique)
        assert_overlapped(data, ("kafka", str(path.resolve())))
        assert runs[0]["dead_lettered"] == runs[0]["quarantined"] > 0
        # The stream acknowledged every record it read, those landed by the file ingest too.
        assert_group_at_end(broker.bootstrap, "concurrent")
