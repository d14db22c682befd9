"""What a trained model hands to tracking, the registry and scoring, whatever the task.

Each task module (`delay`, `demand`, `elasticity`, `sentiment`) exposes the same three
functions, so `registry` and `score` never branch on the task:

    train(data: MlData, *, seed: int, params: dict | None = None) -> Trained
    evaluate(model, holdout) -> dict[str, float]   # the same metrics as Trained.metrics
    score(model, data: MlData) -> pd.DataFrame      # rows for the task's gold table

`evaluate` lets the registry re-score the current champion on the new version's holdout, so
a promotion compares two models on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import pandas as pd

from pharmaflow.ml.data import MlData


@dataclass
class Trained:
    """A model trained on a time-based split, with its holdout figures beside the baseline's."""

    task: str  # the task module's TASK, e.g. "shipment_delay"
    model: Any  # picklable; model.predict(frame: pd.DataFrame) -> pd.DataFrame | np.ndarray
    metrics: dict[str, float]  # the model on the holdout
    baseline: dict[str, float]  # the baseline on the same holdout (same keys where they apply)
    primary: str  # the metric that decides promotion (a key of both dicts)
    higher_is_better: bool
    params: dict[str, Any]  # hyper-parameters and settings, as logged
    features: list[str]  # the columns predict() reads
    train_window: tuple[date, date]  # first and last day of the training data (inclusive)
    holdout_window: tuple[date, date]  # first and last day of the holdout (inclusive)
    input_example: pd.DataFrame  # a few rows of what predict() takes (the model signature)
    holdout: Any  # what evaluate() takes: the holdout rows
    baseline_name: str  # e.g. "carrier x service level historical late rate"
    limits: list[str] = field(default_factory=list)  # known limits, for the model card
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # extra artifacts to log
    rows: dict[str, int] = field(default_factory=dict)  # {"train": n, "holdout": m}

    def beats_baseline(self) -> bool:
        """Strictly better than the baseline on the primary metric."""
        return self.better(self.metrics[self.primary], self.baseline[self.primary])

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


class Task(Protocol):
    """A task module, as the registry and scoring use it."""

    TASK: str
    MODEL_NAME: str  # the registered model name
    SCORES_TABLE: str | None  # gold table its scores go to (None: it writes none)

    train: Callable[..., Trained]
    evaluate: Callable[[Any, Any], dict[str, float]]
    score: Callable[[Any, MlData], pd.DataFrame]
