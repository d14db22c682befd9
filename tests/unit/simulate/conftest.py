"""Small simulated windows shared by the simulator tests (each is generated once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
import pytest

from pharmaflow.contracts.reference import load_reference
from pharmaflow.simulate import SimConfig, SimStats, manufacturing, simulate
from pharmaflow.simulate.events import EventSink, Series

NO_FAULTS = {"duplicate_rate": 0, "late_rate": 0, "out_of_order_rate": 0, "malformed_rate": 0}
# A week, so lots made in the window have time to reach pharmacies and patients.
CLEAN = SimConfig(seed=3, days=7, scale=0.12, **NO_FAULTS)
# A plant-scale week (scale 1, as the demo runs it): about 90 batches, enough for the rare
# batch outcomes (failed, on hold, drift, out-of-specification lab results) to show.
PLANT_WEEK = SimConfig(seed=3, days=7, scale=1.0, **NO_FAULTS)
FAULTY = SimConfig(
    seed=5,
    days=3,
    scale=0.15,
    duplicate_rate=0.03,
    late_rate=0.04,
    out_of_order_rate=0.04,
    malformed_rate=0.02,
)


@dataclass(frozen=True)
class Run:
    config: SimConfig
    path: Path
    stats: SimStats
    lines: list[bytes]

    @cached_property
    def parsed(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.lines]

    def events(self) -> list[dict[str, Any]]:
        """Every line parsed (a clean run has no malformed lines)."""
        return self.parsed

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event_type"] == event_type]


def epoch_ms(stamp: str) -> int:
    """Milliseconds of an ISO-8601 timestamp with an offset, as a consumer would read it."""
    return round(datetime.fromisoformat(stamp).timestamp() * 1000)


def _run(config: SimConfig, directory: Path) -> Run:
    path = directory / "events.jsonl"
    stats = simulate(config, path)
    return Run(config, path, stats, path.read_bytes().splitlines())


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(CLEAN, tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="session")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(FAULTY, tmp_path_factory.mktemp("faulty"))


@dataclass(frozen=True)
class PlantWeek:
    """The manufacturing events of `PLANT_WEEK`, as parsed lines would read (UTC times), taken
    from the simulator's event sink: the other domains are not generated."""

    config: SimConfig
    parsed: list[dict[str, Any]]
    releases: list[manufacturing.Release]

    def events(self) -> list[dict[str, Any]]:
        return self.parsed

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.parsed if e["event_type"] == event_type]


@pytest.fixture(scope="session")
def plant_week() -> PlantWeek:
    config = PLANT_WEEK
    sink = EventSink(config.start_ms, config.end_ms)
    releases = manufacturing.run(config, load_reference(), sink)
    events = []
    for block in sink.table().blocks:
        payloads = block.payloads
        for i, ms in enumerate(block.times.tolist()):
            if isinstance(payloads, Series):
                payload = {**payloads.fixed, payloads.field: float(payloads.values[i])}
            else:
                payload = payloads[i]
            events.append(
                {
                    "event_type": block.event_type,
                    "event_time": datetime.fromtimestamp(ms / 1000, UTC).isoformat(),
                    "key": block.keys if isinstance(block.keys, str) else block.keys[i],
                    "payload": payload,
                }
            )
    events.sort(key=lambda e: epoch_ms(e["event_time"]))
    return PlantWeek(config, events, releases)
