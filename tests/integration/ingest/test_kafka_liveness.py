"""A Kafka worker never hangs silently: a group left without a leader is repaired, a worker
with no partitions says so, `--idle-exit` holds with no partitions and with no broker, and
credentials never reach the log or stderr.

The orphaned group is the issue's reproduction reduced to its cause: on Tansu 0.6 a member
that leaves a forming group (a worker stopping while others were killed during a join) stays
the group's leader, and every later member waited for it, for minutes and without a word.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer

from pharmaflow.broker.embedded import BrokerInfo
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import generate
from tests.kafka import (
    GROUP_OPTIONS,
    committed_rows,
    embedded_broker,
    kafka_url,
    produce,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.slow

PASSWORD = "pw-Zq81-never-printed"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    with embedded_broker(tmp_path_factory.mktemp("broker"), partitions=3) as info:
        yield info


def orphan_group(bootstrap: str, group: str) -> None:
    """Leave `group` forming with a leader that has left: A leads, B joins (the group forms
    again, A still its leader), A leaves before re-joining, then B leaves too."""
    assigned: list[str] = []

    def member(name: str) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": name,
                "session.timeout.ms": 6000,
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(["pharma.sales"], on_assign=lambda _c, p: assigned.append(name))
        return consumer

    leader = member("A")
    deadline = time.monotonic() + 30
    while "A" not in assigned:
        assert time.monotonic() < deadline, "the first member never got partitions"
        leader.poll(0.2)
    follower = member("B")
    for _ in range(3):
        follower.poll(0.2)  # B's JoinGroup is in: the group is forming, led by A
    leader.close()
    follower.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_a_group_orphaned_by_a_leaving_leader_is_repaired_and_lands_everything(
    tmp_path: Path, broker: BrokerInfo
) -> None:
    output = generate(SimConfig(seed=5, days=1, scale=0.01))
    produce(broker.bootstrap, output)
    orphan_group(broker.bootstrap, "orphaned")
    data_dir = tmp_path / "data"
    started = time.monotonic()
    worker = start_worker(data_dir, kafka_url(broker.bootstrap, "orphaned"), 0, None)
    try:
        wait_for(
            lambda: len(committed_rows(data_dir)["ids"]) == output.stats.valid_unique,
            75,
            "the worker to get partitions and land every event",
        )
        took = time.monotonic() - started
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, err[-3000:]
    assert orjson.loads(out.strip().splitlines()[-1])["conserved"]
    assert lines(err, "no partitions assigned for"), "the wait was not reported on stderr"
    assert took < 75


def test_idle_exit_holds_while_no_partitions_come(tmp_path: Path, broker: BrokerInfo) -> None:
    """A bounded run in the orphaned group stops at --idle-exit (after the join allowance of
    three session timeouts), having said why."""
    orphan_group(broker.bootstrap, "orphaned-idle")
    data_dir = tmp_path / "data"
    url = kafka_url(broker.bootstrap, "orphaned-idle")
    started = time.monotonic()
    out, err = start_worker(data_dir, url, 0, 4.0).communicate(timeout=60)
    assert time.monotonic() - started < 35
    result = orjson.loads(out.strip().splitlines()[-1])
    assert result["input"] == 0 and result["conserved"]
    assert lines(err, "no partitions assigned for 18s in group orphaned-idle")
    assert lines(err, "no records and no partitions for 4.0s in group orphaned-idle")


def test_an_unreachable_broker_is_one_line_and_ends_at_idle_exit(tmp_path: Path) -> None:
    url = f"kafka://127.0.0.1:{free_port()}?group=nobody&{GROUP_OPTIONS}"
    started = time.monotonic()
    worker = start_worker(tmp_path / "data", url, None, 3.0)  # supervised, as users run it
    out, err = worker.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert worker.returncode == 1, (out, err)
    assert "Traceback" not in err
    said = lines(err, "cannot reach Kafka at 127.0.0.1:")
    assert said and all("retrying" in line or "--idle-exit" in line for line in said)
    errors = lines(err, "pharmaflow: error:")
    assert len(errors) == 1 and "nothing read in 3s (--idle-exit)" in errors[0], err
    assert not lines(err, "FAIL"), "librdkafka's own lines belong in the log, not stderr"


@pytest.mark.parametrize(
    "url, message",
    [
        ("kafka://127.0.0.1:99999?group=g", "bad port '99999'"),
        (f"kafka://svc:{PASSWORD}@127.0.0.1:9092?group=g", "PHARMAFLOW_KAFKA_PASSWORD"),
    ],
)
def test_bad_urls_are_refused_in_one_line(tmp_path: Path, url: str, message: str) -> None:
    worker = start_worker(tmp_path / "data", url, None, 3.0)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode != 0
    assert message in err and len(err.strip().splitlines()) == 1, err
    logs = tmp_path / "data" / "logs"
    written = "".join(p.read_text() for p in logs.glob("*")) if logs.exists() else ""
    assert PASSWORD not in out + err + written


def test_credentials_from_settings_are_used_and_never_printed(
    tmp_path: Path, broker: BrokerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SASL against the embedded broker (which speaks PLAINTEXT): the client fails to
    authenticate, says so, and stops at --idle-exit; the password shows nowhere."""
    monkeypatch.setenv("PHARMAFLOW_KAFKA_USERNAME", "svc")
    monkeypatch.setenv("PHARMAFLOW_KAFKA_PASSWORD", PASSWORD)
    data_dir = tmp_path / "data"
    worker = start_worker(data_dir, kafka_url(broker.bootstrap, "sasl"), None, 3.0)
    out, err = worker.communicate(timeout=60)
    log = (data_dir / "logs" / "pharmaflow.log").read_text()
    assert PASSWORD not in out + err + log
    assert "sasl_plaintext://" in log, "the credentials did not reach the client"
    assert worker.returncode == 1 and lines(err, "nothing read in 3s (--idle-exit)")
