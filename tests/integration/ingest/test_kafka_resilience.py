"""Crashes, rebalances and a broker outage during a Kafka run: nothing lost, nothing doubled.

Workers run as real processes (`pharmaflow ingest --source kafka://…`) and are killed with
SIGKILL, so no cleanup code of theirs runs; the lake is then read through committed manifests.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from pharmaflow.broker.embedded import EmbeddedBroker
from pharmaflow.broker.topics import ensure_topics
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import generate
from tests.conftest import FAULTY
from tests.kafka import (
    committed_rows,
    embedded_broker,
    kafka_url,
    manifests,
    produce,
    result_of,
    start_worker,
    wait_for,
)

pytestmark = pytest.mark.slow


def assert_exact(data_dir, stats) -> None:
    """Every unique valid event landed once, per type; every invalid one quarantined once."""
    lake = committed_rows(data_dir)
    assert len(lake["ids"]) == len(set(lake["ids"])), "an event landed twice"
    assert dict(lake["types"]) == stats.by_type
    assert len(set(lake["quarantined"])) == len(lake["quarantined"]) == stats.malformed


def writers(data_dir) -> set[str]:
    return {m["batch_id"].split("~")[0] for m in manifests(data_dir)}


def test_two_workers_share_partitions_and_one_takes_over_when_the_other_dies(tmp_path):
    output = generate(FAULTY)
    data_dir = tmp_path / "data"
    half = len(output) // 2
    with embedded_broker(tmp_path / "broker", partitions=4) as broker:
        url = kafka_url(broker.bootstrap, "pair")
        produce(broker.bootstrap, output, 0, half)
        first = start_worker(data_dir, url, 0, None)
        second = start_worker(data_dir, url, 1, 15.0)  # outlives the session timeout
        try:
            wait_for(lambda: len(writers(data_dir)) == 2, 60, "both workers to land batches")
            first.send_signal(signal.SIGKILL)  # leaves without a word: session timeout
            first.wait(10)
            produce(broker.bootstrap, output, half)
            survivor = result_of(second, timeout=120)
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert survivor["conserved"]
    assert_exact(data_dir, output.stats)


def test_kill_9_at_ten_random_points_loses_and_doubles_nothing(tmp_path):
    config = SimConfig(**{**FAULTY.model_dump(), "scale": 1.0})  # ~207k events
    output = generate(config)
    assert len(output) >= 200_000
    data_dir = tmp_path / "data"
    rng = random.Random(20261121)
    with embedded_broker(tmp_path / "broker") as broker:
        url = kafka_url(broker.bootstrap, "crashy")
        produce(broker.bootstrap, output)
        for _ in range(10):
            # Small batches, and a kill soon after the first commit of each life: every kill
            # lands mid-run (while batches are being analysed, written or committed).
            proc = start_worker(data_dir, url, 0, None, "--batch-size", "5000")
            try:
                before = len(manifests(data_dir))
                wait_for(lambda n=before: len(manifests(data_dir)) > n, 60, "a batch to commit")
                time.sleep(rng.uniform(0.0, 0.6))
            finally:
                proc.kill()
                proc.wait()
            assert proc.returncode == -signal.SIGKILL
        landed_before_last_run = len(committed_rows(data_dir)["ids"])
        final = result_of(start_worker(data_dir, url, 0, 4.0), timeout=180)
    assert 0 < landed_before_last_run < output.stats.valid_unique  # the kills were mid-run
    assert final["conserved"]
    assert_exact(data_dir, output.stats)


def test_broker_stopped_and_restarted_mid_run_loses_nothing(tmp_path):
    output = generate(FAULTY)
    data_dir = tmp_path / "data"
    half = len(output) // 2
    broker = EmbeddedBroker(tmp_path / "broker")
    info = broker.start()
    worker = None
    try:
        ensure_topics(info.bootstrap, partitions=3)
        url = kafka_url(info.bootstrap, "outage")
        worker = start_worker(data_dir, url, None, None)  # supervised, as users run it
        produce(info.bootstrap, output, 0, half)
        before = output.stats.malformed  # reach: every record of the first half is in the lake

        def first_half_in() -> bool:
            lake = committed_rows(data_dir)
            return len(lake["ids"]) + len(lake["quarantined"]) > half - before - 2_000

        wait_for(first_half_in, 60, "the first half to land")
        time.sleep(1.0)
        broker.stop()  # memory-only broker: its topics and committed offsets go with it
        time.sleep(4.0)
        assert worker.poll() is None, "the worker must ride out the outage"
        info = broker.start(port=info.port)
        ensure_topics(info.bootstrap, partitions=3)
        produce(info.bootstrap, output, half)
        try:
            wait_for(
                lambda: (
                    sum(committed_rows(data_dir)["types"].values()) == output.stats.valid_unique
                ),
                90,
                "the second half to land",
            )
        except AssertionError:
            worker.kill()
            err = worker.communicate(timeout=30)[1]
            (tmp_path / "worker.stderr").write_text(err)
            raise AssertionError(f"rc={worker.returncode} {err[-4000:]}") from None
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err[-2000:]
        assert "unavailable" in err
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        if broker.info() is not None:
            broker.stop()
    assert_exact(data_dir, output.stats)


def test_the_supervisor_restarts_a_worker_that_crashed(tmp_path):
    """`pharmaflow ingest --source kafka://…` supervises its worker: one killed by a signal
    the supervisor did not send (a native crash) is started again and finishes the job."""
    output = generate(FAULTY)
    data_dir = tmp_path / "data"
    with embedded_broker(tmp_path / "broker") as broker:
        produce(broker.bootstrap, output)
        supervisor = start_worker(
            data_dir, kafka_url(broker.bootstrap, "supervised"), None, None, "--batch-size", "5000"
        )
        try:
            wait_for(lambda: bool(manifests(data_dir)), 60, "a first batch")
            # The worker is a child of one of the supervisor's threads.
            tasks = Path(f"/proc/{supervisor.pid}/task").glob("*/children")
            (child,) = [int(pid) for task in tasks for pid in task.read_text().split()]
            os.kill(child, signal.SIGSEGV)  # what a crash in librdkafka looks like from outside
            wait_for(
                lambda: (
                    sum(committed_rows(data_dir)["types"].values()) == output.stats.valid_unique
                ),
                90,
                "the restarted worker to land the rest",
            )
            supervisor.send_signal(signal.SIGTERM)
            _out, err = supervisor.communicate(timeout=60)
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
                supervisor.wait()
    assert supervisor.returncode == 0, err[-2000:]
    assert "died of signal 11; restarting" in err
    assert_exact(data_dir, output.stats)
