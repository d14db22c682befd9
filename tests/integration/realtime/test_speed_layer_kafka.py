"""The speed layer on a real broker (Tansu): exactly once across kill -9, workers that split
partitions, and a reader in another process merging what they wrote.

One broker and one stream for the module; each test uses its own consumer group and data dir.
The allowed lateness is set far beyond the simulated span, so whether an event counts as late
never depends on how long a killed worker was down (the clock moves on with wall time while a
partition is quiet): every event is on time, and a from-scratch run is comparable window for
window. Lateness itself is proven in tests/unit/realtime.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pharmaflow.config import Settings
from pharmaflow.realtime.config import RealtimeConfig
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.kpis import PROCESSING_TIME_KPIS
from pharmaflow.realtime.reader import StateReader
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.people import patient_pool
from pharmaflow.simulate.simulator import generate
from tests.conftest import FAULTY
from tests.kafka import embedded_broker, kafka_url, produce, result_of, start_worker, wait_for
from tests.phi_scan import leaks, phi_values, text_strings

pytestmark = pytest.mark.slow

SETTINGS = {
    "PHARMAFLOW_REALTIME_ALLOWED_LATENESS_S": str(30 * 86_400),
    "PHARMAFLOW_REALTIME_RETENTION_S": str(60 * 86_400),
}
STREAM = SimConfig(**{**FAULTY.model_dump(), "scale": 0.3})


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory):
    output = generate(STREAM)
    with embedded_broker(tmp_path_factory.mktemp("rt-broker"), partitions=3) as broker:
        produce(broker.bootstrap, output)
        yield broker, output


def _run(data_dir: Path, url: str, *extra: str, slot: int | None = 0, idle: float = 5.0):
    proc = start_worker(data_dir, url, slot, idle, *extra, command_name="realtime", env=SETTINGS)
    return result_of(proc, timeout=240)


def _reader(data_dir: Path) -> StateReader:
    db = Database(data_dir / "realtime" / "state.db")
    settings = Settings(
        data_dir=data_dir,
        realtime_allowed_lateness_s=30 * 86_400,
        realtime_retention_s=60 * 86_400,
    )
    return StateReader(db, RealtimeConfig.from_settings(settings))


def state_of(data_dir: Path) -> dict[str, Any]:
    """What a reader sees, without what depends on wall time (processing-time windows, how
    long orders have waited), as comparable values."""
    reader = _reader(data_dir)
    try:
        snap = reader.snapshot()
        windows = {
            (w.kpi, w.width_s, w.start, w.entity, w.label): w.value
            for w in snap.windows
            if w.kpi not in PROCESSING_TIME_KPIS
        }
        processed = Counter()
        for w in snap.windows:
            if w.kpi in PROCESSING_TIME_KPIS and w.width_s == 60:
                processed[(w.kpi, w.entity, w.label)] += w.value
        return {
            "windows": windows,
            "processed": dict(processed),
            "orders": sorted(
                (o.order_id, o.stage, o.pharmacy_id, o.entered_at) for o in snap.orders
            ),
            "shipments": sorted(
                (s.shipment_id, s.carrier_id, s.minutes_out_of_range, s.in_excursion, s.delivered)
                for s in snap.shipments
            ),
            "sensors": sorted(
                (s.batch_id, s.sensor_id, s.consecutive_out_of_spec) for s in snap.sensors
            ),
            "labs": sorted((f.batch_id, f.test_id) for f in snap.lab_failures),
            "totals": dict(snap.totals),
        }
    finally:
        reader.db.close()


@pytest.fixture(scope="module")
def from_scratch(stream, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """One uninterrupted worker over the whole stream: the reference."""
    broker, output = stream
    data_dir = tmp_path_factory.mktemp("rt-ref") / "data"
    result = _run(data_dir, kafka_url(broker.bootstrap, "rt-ref"))
    assert result["conserved"] and result["late"] == 0
    assert result["landed"] == output.stats.valid_unique
    return result, state_of(data_dir), data_dir


def test_one_run_counts_every_valid_event_once(stream, from_scratch) -> None:
    _broker, output = stream
    result, state, _dir = from_scratch
    counted = sum(on for on, _late in state["totals"].values())
    assert counted == output.stats.valid_unique == result["on_time"]
    events = Counter()
    for (kpi, width, _start, _entity, label), value in state["windows"].items():
        if kpi == "events" and width == 60:
            events[label] += value
    assert sum(events.values()) == output.stats.valid_unique
    # processing-time KPIs: `records` = events counted + rejects (duplicates never reach the
    # state), `quarantined` = the rejects, by reason
    records = sum(v for (k, _e, _l), v in state["processed"].items() if k == "records")
    rejected = sum(v for (k, _e, _l), v in state["processed"].items() if k == "quarantined")
    assert records == result["landed"] + result["quarantined"]
    assert rejected == result["quarantined"] == output.stats.malformed


def test_kill_9_at_ten_random_points_then_restart_equals_a_from_scratch_run(
    stream, from_scratch, tmp_path: Path
) -> None:
    broker, output = stream
    _expected, reference, _dir = from_scratch
    data_dir = tmp_path / "data"
    url = kafka_url(broker.bootstrap, "rt-crashy")
    rng = random.Random(20261202)
    committed = 0

    def progressed(before: int) -> bool:
        path = data_dir / "realtime" / "state.db"
        if not path.exists():
            return False
        reader = _reader(data_dir)
        try:
            return sum(reader.committed_offsets("rt-crashy").values()) > before
        finally:
            reader.db.close()

    for _ in range(10):
        proc = start_worker(
            data_dir, url, 0, None, "--batch-size", "2000", command_name="realtime", env=SETTINGS
        )
        try:
            wait_for(lambda n=committed: progressed(n), 90, "a batch to commit")
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        reader = _reader(data_dir)
        committed = sum(reader.committed_offsets("rt-crashy").values())
        reader.db.close()
    counted_before_last = sum(on for on, _ in state_of(data_dir)["totals"].values())
    final = _run(data_dir, url)
    assert 0 < counted_before_last < output.stats.valid_unique  # the kills were mid-stream
    assert final["conserved"]
    got = state_of(data_dir)
    for part in ("windows", "orders", "shipments", "sensors", "labs", "totals"):
        assert got[part] == reference[part], part
    # processing-time KPIs: every record once across all the lives
    assert got["processed"] == reference["processed"]


def test_two_workers_split_the_partitions_and_a_reader_merges_them(
    stream, from_scratch, tmp_path: Path
) -> None:
    broker, _output = stream
    _expected, reference, _dir = from_scratch
    data_dir = tmp_path / "data"
    result = _run(data_dir, kafka_url(broker.bootstrap, "rt-pair"), "--workers", "2", slot=None)
    assert result["conserved"]
    got = state_of(data_dir)
    for part in ("windows", "orders", "shipments", "sensors", "labs", "totals"):
        assert got[part] == reference[part], part
    offsets = {}
    for directory, group in ((data_dir, "rt-pair"), (from_scratch[2], "rt-ref")):
        reader = _reader(directory)
        try:
            offsets[group] = reader.committed_offsets(group)
        finally:
            reader.db.close()
    # the two workers together committed every partition, up to where one worker did
    assert offsets["rt-pair"] == offsets["rt-ref"] and len(offsets["rt-pair"]) == 3 * 5


def test_no_patient_identifier_reaches_the_store(from_scratch) -> None:
    """The store holds KPI dimensions and ids only: scan every text value of every table."""
    *_rest, data_dir = from_scratch
    con = sqlite3.connect(data_dir / "realtime" / "state.db")
    try:
        texts: list[str] = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in con.execute(f'SELECT * FROM "{table}"'):
                texts.extend(v for v in row if isinstance(v, str))
    finally:
        con.close()
    assert len(texts) > 1_000
    values, names = phi_values(patient_pool(STREAM))
    assert not leaks(text_strings(texts), values, names)
