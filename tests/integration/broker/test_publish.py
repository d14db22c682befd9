"""`simulate --to kafka://…`: a simulated window published to a real (embedded Tansu) broker and
consumed back — counts per topic, keys, per-key order, Avro, pacing, a broker restart, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer

from pharmaflow.broker.embedded import EmbeddedBroker, free_port
from pharmaflow.broker.topics import DOMAIN_TOPICS, ensure_topics
from pharmaflow.contracts.avro_wire import AvroWire, WireError, is_framed
from pharmaflow.errors import PharmaflowError
from pharmaflow.simulate import SimConfig, SimOutput, generate
from pharmaflow.simulate import publish as publish_module
from pharmaflow.simulate.publish import PublishStats, expected_by_topic, publish
from tests.conftest import FAULTY, env_with_keys

SMALL = SimConfig(
    seed=5,
    days=2,
    scale=0.05,
    duplicate_rate=0.03,
    late_rate=0.04,
    out_of_order_rate=0.04,
    malformed_rate=0.03,
)


@dataclasses.dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    timestamp_ms: int


@pytest.fixture
def broker(tmp_path: Path):
    embedded = EmbeddedBroker(tmp_path / "broker")
    info = embedded.start()
    try:
        yield embedded, info.bootstrap
    finally:
        if embedded.info() is not None:
            embedded.stop()


@pytest.fixture(scope="module")
def faulty() -> SimOutput:
    return generate(FAULTY)


@pytest.fixture(scope="module")
def small() -> SimOutput:
    return generate(SMALL)


def consume_all(bootstrap: str, expected: int, timeout: float = 40.0) -> list[Record]:
    """Every message of the domain topics, until `expected` arrived (and a little longer, to
    catch any extra) or the timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe(sorted(DOMAIN_TOPICS.values()))
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, 0.5)
            for m in batch:
                if m.error() is None:
                    where = (m.topic(), m.partition(), m.offset())
                    records.append(Record(*where, m.key(), m.value(), m.timestamp()[1]))
            if len(records) >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return records


def expected_lines(output: SimOutput) -> tuple[list[bytes], list[bytes], list[str]]:
    values = [output.lines[r] for r in output.rows.tolist()]
    keys = list(map(str.encode, output.keys()))
    topics = [publish_module.topic_for(t) for t in output.event_types()]
    return values, keys, topics


def per_topic(records: list[Record]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r.topic] += 1
    return dict(sorted(counts.items()))


@pytest.mark.slow
def test_a_faulty_window_arrives_complete_keyed_and_in_order(broker, faulty: SimOutput) -> None:
    _, bootstrap = broker
    stats = publish(faulty, bootstrap, partitions=3)
    assert stats.delivered == stats.messages == faulty.stats.lines
    assert stats.failed == 0 and stats.by_topic == expected_by_topic(faulty)
    assert set(stats.topics_created) >= set(DOMAIN_TOPICS.values())

    records = consume_all(bootstrap, stats.messages)
    assert len(records) == faulty.stats.lines
    assert per_topic(records) == expected_by_topic(faulty)

    values, keys, topics = expected_lines(faulty)
    # each key's lines, in output order (duplicates and malformed ones included)
    want: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for value, key, topic in zip(values, keys, topics, strict=True):
        want[(topic, key)].append(value)
    got: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    partitions: dict[tuple[str, bytes], set[int]] = defaultdict(set)
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        got[(r.topic, r.key)].append(r.value)
        partitions[(r.topic, r.key)].add(r.partition)
    assert got.keys() == want.keys()
    for topic_key, lines in want.items():
        assert got[topic_key] == lines, topic_key  # same messages, same order
        assert len(partitions[topic_key]) == 1  # one key, one partition
    # malformed lines (even the undecodable ones) went where their source event went
    malformed = {faulty.lines[r] for r in faulty.rows.tolist() if r >= faulty.stats.valid_unique}
    assert sum(r.value in malformed for r in records) == faulty.stats.malformed


@pytest.mark.slow
def test_avro_publish_round_trip(broker, small: SimOutput) -> None:
    _, bootstrap = broker
    registry = f"mock://publish-{uuid.uuid4().hex}"
    stats = publish(small, bootstrap, fmt="avro", schema_registry=registry, partitions=2)
    assert stats.delivered == small.stats.lines and stats.format == "avro"

    records = consume_all(bootstrap, stats.messages)
    assert len(records) == small.stats.lines
    wire = AvroWire(registry)  # same URL, same process: the same mock registry
    values, keys, topics = expected_lines(small)
    sent = defaultdict(list)
    for value, key, topic in zip(values, keys, topics, strict=True):
        sent[(topic, key)].append(value)
    raw = 0
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        line = sent[(r.topic, r.key)].pop(0)
        if is_framed(r.value):
            decoded = wire.decode(r.value, r.topic)
            original = orjson.loads(line)
            assert decoded["event_id"] == original["event_id"]
            assert decoded["payload"] == _wire_view(original["payload"], decoded["payload"])
        else:
            raw += 1
            assert r.value == line  # sent unchanged
            with pytest.raises((orjson.JSONDecodeError, WireError)):
                wire.encode(orjson.loads(line), r.topic)
    assert raw == stats.raw > 0
    # the simulator's out-of-range lines fit the Avro schema: they travel as Avro
    assert stats.raw < small.stats.malformed


def _wire_view(original: dict[str, Any], decoded: dict[str, Any]) -> dict[str, Any]:
    """`original` with its values in the decoded form where they differ only in notation."""
    out = {}
    for name, value in original.items():
        if isinstance(value, str) and name.endswith("_time"):
            out[name] = decoded[name]  # instants are checked in the avro_wire unit tests
        elif isinstance(value, int | float) and not isinstance(value, bool):
            assert value == pytest.approx(decoded[name])
            out[name] = decoded[name]
        elif isinstance(value, dict):
            out[name] = _wire_view(value, decoded[name])
        else:
            out[name] = value
    return out


def _first(output: SimOutput, n: int, arrival_ms: np.ndarray | None = None) -> SimOutput:
    """The first `n` output lines as an output of their own."""
    return dataclasses.replace(
        output,
        rows=output.rows[:n],
        arrival_ms=output.arrival_ms[:n] if arrival_ms is None else arrival_ms,
        sources=output.sources[:n],
    )


@pytest.mark.slow
def test_rate_caps_messages_per_second(broker, small: SimOutput) -> None:
    _, bootstrap = broker
    n, rate = 3_000, 2_000.0
    began = time.monotonic()
    stats = publish(_first(small, n), bootstrap, rate=rate)
    elapsed = time.monotonic() - began
    assert stats.delivered == n
    assert elapsed >= n / rate * 0.8
    assert elapsed < n / rate * 2 + 10  # paced, not stalled


@pytest.mark.slow
def test_live_sends_each_line_when_the_clock_reaches_its_arrival(broker, small: SimOutput) -> None:
    _, bootstrap = broker
    n = 600
    now_ms = int(time.time() * 1000)
    # the first half is already due; the rest arrives 1.5 s and 2.5 s from now
    arrival = np.concatenate(
        [
            np.full(n // 2, now_ms - 60_000, np.int64),
            np.full(n // 4, now_ms + 1_500, np.int64),
            np.full(n - n // 2 - n // 4, now_ms + 2_500, np.int64),
        ]
    )
    subset = _first(small, n, arrival)
    stats = publish(subset, bootstrap, live=True)
    assert stats.delivered == n
    records = consume_all(bootstrap, n)
    assert len(records) == n
    values, keys, _ = expected_lines(subset)
    arrival_of = defaultdict(list)
    for value, key, at in zip(values, keys, arrival.tolist(), strict=True):
        arrival_of[(key, value)].append(at)
    for r in records:  # the message timestamp is when the producer sent it
        assert r.timestamp_ms >= min(arrival_of[(r.key, r.value)]) - 50, "sent before due"
    sent_at = sorted(r.timestamp_ms for r in records)
    assert sent_at[n // 2 - 1] < now_ms + 1_000  # the due half went at once
    assert sent_at[-1] >= now_ms + 2_450


@pytest.mark.slow
def test_a_broker_crash_mid_publish_loses_nothing(tmp_path: Path, small: SimOutput) -> None:
    """librdkafka retries while the broker is down (message.timeout.ms): every message is
    delivered once the broker is back. (Tansu keeps data in memory, so the broker itself
    forgets what it had before the crash: the producer's side is what is tested.)"""
    embedded = EmbeddedBroker(tmp_path / "broker")
    port = free_port()
    info = embedded.start(port=port)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["stats"] = publish(small, info.bootstrap, rate=1_000.0)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    publisher = threading.Thread(target=run)
    try:
        publisher.start()
        time.sleep(1.0)
        # A crash, not a stop: on SIGTERM Tansu waits for its clients to disconnect.
        os.kill(info.pid, signal.SIGKILL)
        os.waitpid(info.pid, 0)
        down_at = time.monotonic()
        time.sleep(2.0)
        embedded.start(port=port)
        ensure_topics(info.bootstrap)
        publisher.join(60)
    finally:
        if embedded.info() is not None:
            embedded.stop()
    assert not publisher.is_alive()
    assert "error" not in outcome, outcome.get("error")
    stats: PublishStats = outcome["stats"]
    assert stats.delivered == stats.messages == small.stats.lines and stats.failed == 0
    assert time.monotonic() - down_at >= 2.0


@pytest.mark.slow
def test_a_broker_that_stays_down_makes_publish_fail_after_the_timeout(
    tmp_path: Path, small: SimOutput
) -> None:
    embedded = EmbeddedBroker(tmp_path / "broker")
    info = embedded.start()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            publish(small, info.bootstrap, rate=2_000.0, message_timeout_ms=3_000)
        except Exception as exc:  # what is asserted
            outcome["error"] = exc

    publisher = threading.Thread(target=run)
    publisher.start()
    time.sleep(1.0)
    os.kill(info.pid, signal.SIGKILL)
    os.waitpid(info.pid, 0)
    began = time.monotonic()
    publisher.join(60)
    assert not publisher.is_alive()
    assert time.monotonic() - began < 20  # the timeout, not a hang
    error = outcome.get("error")
    assert isinstance(error, publish_module.PublishError), error
    stats = error.stats
    assert stats.failed > 0 and stats.delivered + stats.failed == stats.messages
    assert f"of {small.stats.lines:,} messages were not delivered" in str(error)
    assert "\n" not in str(error)


@pytest.mark.slow
def test_an_unreachable_broker_is_a_one_line_error(small, monkeypatch) -> None:
    monkeypatch.setattr(publish_module, "CONNECT_TIMEOUT_S", 2.0)
    with pytest.raises(PharmaflowError) as info:
        publish(_first(small, 10), f"127.0.0.1:{free_port()}")
    assert "cannot reach Kafka at 127.0.0.1:" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_undelivered_messages_make_publish_fail(broker, small: SimOutput) -> None:
    """A message that cannot be sent (over 1 MB, librdkafka's message.max.bytes) is counted as
    failed, the others still go, and publish raises with one line."""
    _, bootstrap = broker
    subset = _first(small, 30)
    rows = subset.rows.tolist()
    lines = [small.lines[r] * (3_000 if i % 3 == 0 else 1) for i, r in enumerate(rows)]
    huge = dataclasses.replace(subset, lines=lines, rows=np.arange(len(rows), dtype=np.int64))
    with pytest.raises(publish_module.PublishError) as info:
        publish(huge, bootstrap, message_timeout_ms=10_000)
    assert info.value.stats.failed == 10 and info.value.stats.delivered == 20
    assert "10 of 30 messages were not delivered" in str(info.value)
    assert "MSG_SIZE_TOO_LARGE" in str(info.value)
    assert "\n" not in str(info.value)


# -- the CLI --------------------------------------------------------------------------------


def cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = env_with_keys(**env)
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "simulate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--to", "127.0.0.1:9092"], "--to must be a kafka://HOST:PORT"),
        (["--to", "http://127.0.0.1:9092"], "--to must be a kafka://HOST:PORT"),
        (["--to", "kafka://"], "KAFKA_BOOTSTRAP_SERVERS is not set"),
        (["--to", "kafka://broker"], "'broker' is not HOST:PORT"),
        (["--to", "kafka://broker:99999"], "is not HOST:PORT"),
        (["--to", "kafka://a:1,b"], "'b' is not HOST:PORT"),
        (["--to", "kafka://h:1", "--out", "x.jsonl"], "--to and --out are mutually exclusive"),
        (["--to", "kafka://h:1", "--rate", "0"], "--rate must be a positive"),
        (["--to", "kafka://h:1", "--format", "xml"], "--format must be one of json, avro"),
        (["--to", "kafka://h:1", "--format", "avro"], "needs a schema registry"),
        (["--to", "kafka://h:1", "--live", "--start", "2026-01-01"], "--live starts the window"),
        (["--to", "kafka://h:1", "--partitions", "0"], "--partitions"),
        (["--rate", "10"], "--rate only apply with --to"),
        (["--live", "--format", "avro"], "--live, --format only apply with --to"),
    ],
)
def test_bad_publish_arguments_get_one_line(tmp_path: Path, args, expected) -> None:
    result = cli(tmp_path, *args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pharmaflow: error:") and expected in lines[0], lines[0]
    assert not (tmp_path / "input").exists()  # nothing simulated or written


@pytest.mark.slow
def test_cli_publishes_and_reports_per_topic(broker, tmp_path: Path) -> None:
    _, bootstrap = broker
    host_only = cli(tmp_path, "--to", "kafka://", "--days", "2", "--scale", "0.05", "--json",
                    KAFKA_BOOTSTRAP_SERVERS=bootstrap)  # fmt: skip
    assert host_only.returncode == 0, host_only.stderr
    summary = json.loads(host_only.stdout.strip().splitlines()[-1])
    assert summary["to"] == f"kafka://{bootstrap}"
    assert summary["publish"]["delivered"] == summary["lines"] > 0
    assert summary["publish"]["failed"] == 0
    assert sum(summary["publish"]["by_topic"].values()) == summary["lines"]

    avro = cli(tmp_path, "--to", f"kafka://{bootstrap}", "--days", "2", "--scale", "0.05",
               "--format", "avro", SCHEMA_REGISTRY_URL="mock://cli")  # fmt: skip
    assert avro.returncode == 0, avro.stderr
    assert "pharma.manufacturing" in avro.stdout and "sent raw" in avro.stdout
    assert "events/s" in avro.stdout
    assert not (tmp_path / "input").exists()  # Kafka instead of the file, not as well
