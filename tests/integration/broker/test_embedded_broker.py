"""The embedded broker as a user drives it: start, topics, a real round trip, status, stop."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer

from pharmaflow.broker.topics import DOMAIN_TOPICS, topic_for
from tests.conftest import env_with_keys

pytestmark = pytest.mark.slow


def cli(data_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "broker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_with_keys(),
    )


@pytest.fixture
def broker(tmp_path):
    started = cli(tmp_path, "start", "--partitions", "3", "--json")
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout.strip().splitlines()[-1])
    try:
        yield tmp_path, info
    finally:
        cli(tmp_path, "stop")  # whatever the test did, the broker it started is stopped


def test_start_creates_topics_and_serves_the_kafka_protocol(broker):
    data_dir, info = broker
    expected = {t for d in DOMAIN_TOPICS.values() for t in (d, f"{d}.dlq")}
    assert set(info["created_topics"]) == expected
    again = cli(data_dir, "start", "--json")  # idempotent: same broker, nothing new
    assert json.loads(again.stdout.strip().splitlines()[-1])["created_topics"] == []

    producer = Producer({"bootstrap.servers": info["bootstrap"]})
    topic = topic_for("sales.sale.completed")
    producer.produce(topic, key=b"SAL-1", value=b'{"event_id": "e1"}')
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": info["bootstrap"],
            "group.id": "t",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "partition.assignment.strategy": "range",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline, message = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b'{"event_id": "e1"}'
        assert message.key() == b"SAL-1"
    finally:
        consumer.close()

    status = cli(data_dir, "status", "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout.strip().splitlines()[-1])["bootstrap"] == info["bootstrap"]


def test_stop_ends_the_process_and_status_says_so(broker):
    data_dir, info = broker
    assert cli(data_dir, "stop").returncode == 0
    assert not _running(info["pid"])
    status = cli(data_dir, "status")
    assert status.returncode == 3 and "not running" in status.stdout
    again = cli(data_dir, "stop")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "pharmaflow: error: no embedded broker is running for this data dir"
    )


def _running(pid: int) -> bool:
    for _ in range(50):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"tansu" not in fh.read():
                    return False
        except OSError:
            return False
        time.sleep(0.1)
    return True
