"""Helpers for tests against a real Kafka-compatible broker (Tansu, started per test)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from confluent_kafka import Consumer, Message, Producer

from pharmaflow.broker.embedded import BrokerInfo, EmbeddedBroker
from pharmaflow.broker.topics import DOMAIN_TOPICS, dead_letter_topic, ensure_topics, topic_for
from pharmaflow.lake.files import TMP_PREFIX
from pharmaflow.simulate.simulator import SimOutput
from tests.conftest import env_with_keys

GROUP_OPTIONS = "session_timeout_ms=6000&max_wait_ms=300"


@contextmanager
def embedded_broker(state_dir: Path, partitions: int = 3) -> Iterator[BrokerInfo]:
    broker = EmbeddedBroker(state_dir)
    info = broker.start()
    try:
        ensure_topics(info.bootstrap, partitions=partitions)
        yield info
    finally:
        if broker.info() is not None:
            broker.stop()


def produce(bootstrap: str, output: SimOutput, start: int = 0, end: int | None = None) -> int:
    """Send output lines [start, end) to their domain topics, keyed; wait for delivery."""
    end = len(output) if end is None else end
    types = output.event_types()[start:end]
    keys = output.keys()[start:end]
    rows = output.rows[start:end].tolist()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for row, event_type, key in zip(rows, types, keys, strict=True):
        producer.produce(topic_for(event_type), key=key.encode(), value=output.lines[row])
        producer.poll(0)
    assert producer.flush(60) == 0
    return end - start


def kafka_url(bootstrap: str, group: str = "test") -> str:
    return f"kafka://{bootstrap}?group={group}&{GROUP_OPTIONS}"


def start_worker(
    data_dir: Path,
    url: str,
    slot: int | None = 0,
    idle_exit: float | None = 4.0,
    *extra: str,
    command_name: str = "ingest",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """One worker process (`slot`), or with `slot=None` the command as users run it: a
    supervisor that starts one worker and restarts it if it crashes. `command_name`:
    `ingest`, or `realtime` for the speed layer; `env`: extra settings."""
    command = [
        sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), command_name,
        "--source", url, "--json", "--batch-size", "20000",
    ]  # fmt: skip
    if slot is not None:
        command += ["--worker-slot", str(slot)]
    command += extra
    if idle_exit is not None:
        command += ["--idle-exit", str(idle_exit)]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_keys(PHARMAFLOW_INGEST_WORKERS="0", **(env or {})),
    )


def result_of(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return orjson.loads(out.strip().splitlines()[-1])


def manifests(data_dir: Path) -> list[dict[str, Any]]:
    directory = data_dir / "lake" / "_manifests"
    committed = (p for p in directory.glob("*.json") if not p.name.startswith(TMP_PREFIX))
    return [orjson.loads(p.read_bytes()) for p in sorted(committed)]


def committed_rows(data_dir: Path) -> dict[str, Any]:
    """What the lake holds, reading only parts that committed manifests list."""
    bronze_ids: list[str] = []
    bronze_types: Counter[str] = Counter()
    quarantined: list[tuple[str, str, int, int]] = []  # topic, topic id, partition, offset
    for manifest in manifests(data_dir):
        topic_ids = {topic: topic_id for topic, topic_id, *_ in manifest.get("offsets", [])}
        for rel in manifest["files"]:
            path = data_dir / rel
            if "/bronze/" in f"/{rel}":
                table = pq.read_table(path, columns=["event_id", "event_type"])
                bronze_ids.extend(table["event_id"].to_pylist())
                bronze_types.update(table["event_type"].to_pylist())
            elif "/quarantine/" in f"/{rel}":
                table = pq.read_table(
                    path, columns=["source_uri", "source_partition", "source_offset"]
                )
                quarantined.extend(
                    (uri, topic_ids.get(uri, ""), partition, offset)
                    for uri, partition, offset in zip(
                        table["source_uri"].to_pylist(),
                        table["source_partition"].to_pylist(),
                        table["source_offset"].to_pylist(),
                        strict=True,
                    )
                )
    return {"ids": bronze_ids, "types": bronze_types, "quarantined": quarantined}


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def read_topics(
    bootstrap: str, topics: list[str], expected: int, timeout: float = 30
) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "partition.assignment.strategy": "range",
        }
    )
    consumer.subscribe(topics)
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(10_000, 0.5) if m.error() is None)
        # and nothing more than expected
        got.extend(m for m in consumer.consume(10_000, 1.0) if m.error() is None)
    finally:
        consumer.close()
    return got


DLQ_TOPICS = [dead_letter_topic(t) for t in DOMAIN_TOPICS.values()]
