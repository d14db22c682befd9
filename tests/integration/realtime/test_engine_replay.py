"""The speed layer's engine in-process, on a file replay: counts, metrics, and a second run of the
same file that counts nothing twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.sources import open_sources
from pharmaflow.realtime.db import Database
from pharmaflow.realtime.engine import SpeedLayer
from pharmaflow.realtime.metrics import RealtimeMetrics
from pharmaflow.realtime.reader import StateReader


def _snapshot_counts(settings: Settings) -> dict:
    db = Database(settings.realtime_store_url)
    try:
        snap = StateReader(db).snapshot()
        return {
            "totals": snap.totals,
            "windows": {
                (w.kpi, w.width_s, w.start, w.entity, w.label): w.value
                for w in snap.windows
                if w.kpi not in ("records", "quarantined")
            },
            "orders": sorted((o.order_id, o.stage) for o in snap.orders),
        }
    finally:
        db.close()


def _replay(settings: Settings, path: Path, metrics: RealtimeMetrics | None = None):
    layer = SpeedLayer(settings, "replay-test", metrics=metrics, alerts=False)
    return layer.run(open_sources(str(path), layer.registry), "realtime-test-0")


@pytest.fixture
def replay_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"batch_size": 2_000, "ingest_workers": 0})


def test_a_replay_counts_every_record_and_its_metrics_say_so(replay_settings, faulty_input):
    path, stats = faulty_input
    metrics = RealtimeMetrics()
    port = metrics.serve(0)
    try:
        result = _replay(replay_settings, path, metrics)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        metrics.close()
    assert result.conserved
    assert result.landed == stats.valid_unique
    assert result.quarantined == stats.malformed
    assert result.on_time + result.late == result.landed
    assert result.batches > 5  # many commits, each with its offsets

    def total(name: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        )

    assert total("pharmaflow_realtime_events_total") == result.landed
    assert total("pharmaflow_realtime_events_late_total") == result.late
    assert total("pharmaflow_realtime_events_quarantined_total") == result.quarantined
    assert total("pharmaflow_realtime_commit_seconds_count") == result.batches
    assert total("pharmaflow_realtime_windows_closed_total") == result.windows_closed > 0


def test_replaying_the_same_file_again_counts_nothing_twice(replay_settings, faulty_input):
    path, _stats = faulty_input
    first = _replay(replay_settings, path)
    before = _snapshot_counts(replay_settings)
    again = _replay(replay_settings, path)
    assert again.conserved
    assert again.landed == 0 and again.replayed == first.input
    assert _snapshot_counts(replay_settings) == before
