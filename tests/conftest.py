"""Shared fixtures: a simulated input with every fault knob on, and settings per test."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pharmaflow.config import Settings
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import SimStats, simulate

# Fixed keys so two data dirs tokenise identically and lakes can be compared byte for byte
# (random-looking: weak keys such as all-zero or repeated bytes are refused).
TEST_KEYS = {
    "PHARMAFLOW_HMAC_KEY": "87ea2d881361bb9aabf9f33396598422422b80bcd076b4487bc519af6e3021c4",
    "PHARMAFLOW_VAULT_KEY": "4b76f1ad41d35d3ef49b42a5cb8db7d00182d524e76824b41596dc6884ac1209",
}

# Small, but with every fault on at rates high enough that each kind shows up.
FAULTY = SimConfig(
    seed=11,
    days=5,
    scale=0.12,
    duplicate_rate=0.03,
    late_rate=0.05,
    out_of_order_rate=0.05,
    malformed_rate=0.02,
)


@pytest.fixture(scope="session")
def faulty_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimStats]:
    path = tmp_path_factory.mktemp("input") / "events.jsonl"
    return path, simulate(FAULTY, path)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in TEST_KEYS.items():
        monkeypatch.setenv(name, value)
    return Settings(data_dir=tmp_path / "data", batch_size=5_000)


def env_with_keys(**extra: str) -> dict[str, str]:
    return {**os.environ, **TEST_KEYS, **extra}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory):  # -> tests.serve_data.ServedData
    """A data dir with a built, published warehouse and speed-layer state (read it only)."""
    from tests.serve_data import make_served

    return make_served(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="session")
def ml_warehouse(tmp_path_factory: pytest.TempPathFactory):  # -> tests.ml_data.MlWarehouse
    """A 9-week data dir with a built, published warehouse and its ground truth (read it only)."""
    from tests.ml_data import make_ml_warehouse

    return make_ml_warehouse(tmp_path_factory.mktemp("ml"))


@pytest.fixture(scope="session")
def ml_scored(ml_warehouse, tmp_path_factory: pytest.TempPathFactory):  # -> tests.ml_data.MlScored
    """A copy of `ml_warehouse` on which `pharmaflow train` and `pharmaflow score` ran (read it
    only)."""
    from tests.ml_data import make_ml_scored

    return make_ml_scored(tmp_path_factory.mktemp("ml-scored"), ml_warehouse)
