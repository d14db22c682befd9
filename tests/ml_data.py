"""One ML data dir per test session: a long window (9 weeks) simulated, ingested and built.

The models need weeks of sales and thousands of shipments to learn from, so the ML tests share
this warehouse and only read it: a test that trains writes its MLflow store in its own folder
(`ml_settings`), never in the shared data dir. The window is fixed (`ML_START`), so every run on
every day trains on the same events and the model figures the tests check are the same ones: a
window that moved with today's date made the delay model's calibration test pass or fail by
the day the suite ran (the window ending 2026-12-01 put a 0.087 gap in its top decile).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pharmaflow.config import Settings
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import SimStats, simulate
from tests.conftest import TEST_KEYS, env_with_keys

ML_DAYS = 63
ML_SCALE = 0.25


# the first day of the window: nine weeks ending 2026-11-29, long past, so no event is stamped
# in the future (ingest quarantines those)
ML_START = date(2026, 9, 28)


def ml_config(days: int = ML_DAYS, scale: float = ML_SCALE, seed: int = 7) -> SimConfig:
    return SimConfig(seed=seed, days=days, scale=scale, start=ML_START)


@dataclass(frozen=True)
class MlWarehouse:
    settings: Settings  # the shared data dir: read it only
    events: Path
    truth_dir: Path
    config: SimConfig
    stats: SimStats


def ml_settings(data_dir: Path, tracking: Path | None = None) -> Settings:
    """Settings for `data_dir`; `tracking`: a private folder for the MLflow store (sqlite)."""
    extra = {} if tracking is None else {"mlflow_tracking_uri": f"sqlite:///{tracking}/mlflow.db"}
    return Settings(
        data_dir=data_dir,
        batch_size=50_000,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        **extra,
    )


def make_ml_warehouse(folder: Path, config: SimConfig | None = None) -> MlWarehouse:
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.warehouse.runner import build

    config = config or ml_config()
    events = folder / "events.jsonl"
    settings = ml_settings(folder / "data")
    truth_dir = settings.data_dir / "truth"
    stats = simulate(config, events, truth_dir=truth_dir)
    run_ingest(settings, str(events))
    result = build(settings)
    assert result.success, result.failures
    return MlWarehouse(settings, events, truth_dir, config, stats)


@dataclass(frozen=True)
class MlScored:
    """A copy of the ML data dir after `pharmaflow train` and `pharmaflow score` ran on it as
    a user runs them (the CLI in a subprocess): its MLflow store is the default one, under the
    data dir, and the gold score tables are filled."""

    settings: Settings  # the copy: read it only
    events: Path
    trained: list[dict[str, Any]]  # `pharmaflow train --json`
    scored: list[dict[str, Any]]  # `pharmaflow score --json`


def pharmaflow_json(data_dir: Path, *args: str, timeout: float = 900) -> Any:
    """Run the CLI with `--json` on `data_dir` and parse what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args, "--json"],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=timeout,
    )
    assert done.returncode == 0, f"pharmaflow {' '.join(args)}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def make_ml_scored(folder: Path, warehouse: MlWarehouse) -> MlScored:
    data_dir = folder / "data"
    shutil.copytree(warehouse.settings.data_dir, data_dir)
    trained = pharmaflow_json(data_dir, "train")
    scored = pharmaflow_json(data_dir, "score")
    return MlScored(ml_settings(data_dir), warehouse.events, trained, scored)
