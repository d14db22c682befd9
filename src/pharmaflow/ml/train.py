"""`pharmaflow train`: train the chosen tasks on the current snapshot, track and register each.

All tasks read one snapshot (opened once), so a multi-task run is trained on one consistent
version of the warehouse, and that version's id is on every run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pharmaflow.config import Settings
from pharmaflow.ml.data import MlData
from pharmaflow.ml.tasks import load_task, task_names


@dataclass(frozen=True)
class TrainOutcome:
    registered: Any  # pharmaflow.ml.registry.Registered
    seconds: float  # training and evaluation, tracking excluded

    def to_dict(self) -> dict[str, Any]:
        """What `pharmaflow train --json` prints and the training DAG passes on."""
        r = self.registered
        return {
            "task": r.task,
            "model_name": r.model_name,
            "version": r.version,
            "promoted": r.promoted,
            "reason": r.reason,
            "metrics": r.metrics,
            "baseline": r.baseline,
            "champion_before": r.champion_before,
            "champion_metrics": r.champion_metrics,
            "card": str(r.card),
            "train_seconds": round(self.seconds, 2),
        }


def train(
    settings: Settings,
    names: list[str] | None = None,
    *,
    seed: int | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    on_done: Callable[[TrainOutcome], None] | None = None,
) -> list[TrainOutcome]:
    """Train, track and register each task (all four when `names` is empty); `params`: per
    task name, hyper-parameter overrides."""
    from pharmaflow.ml import registry  # imports MLflow: only when training

    chosen = task_names(names)
    outcomes: list[TrainOutcome] = []
    with MlData(settings) as data:
        for name in chosen:
            task = load_task(name)
            began = time.perf_counter()
            trained = task.train(
                data,
                seed=settings.ml_seed if seed is None else seed,
                params=(params or {}).get(name),
            )
            seconds = time.perf_counter() - began
            registered = registry.track(settings, task, trained, data.snapshot_id)
            outcome = TrainOutcome(registered, seconds)
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    return outcomes
