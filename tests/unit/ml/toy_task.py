"""A small, real task for the registry tests: logistic regression on a seeded synthetic set.

It follows the task contract (pharmaflow/ml/spec.py) without a warehouse, so tracking,
promotion and cards are tested on their own, in seconds; `noise` makes a worse model.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from pharmaflow.ml.spec import Trained

TASK = "toy"
MODEL_NAME = "pharmaflow-toy"
SCORES_TABLE = None
FEATURES = ["x1", "x2"]


class ToyModel:
    def __init__(self, fitted: LogisticRegression, drop: list[str]) -> None:
        self.fitted = fitted
        self.drop = drop

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[FEATURES].copy()
        x[self.drop] = 0.0
        return self.fitted.predict_proba(x.to_numpy())[:, 1]


def dataset(seed: int = 0, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - 1.0 * x[:, 1])))
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": rng.random(n) < p})


def evaluate(model: Any, holdout: pd.DataFrame) -> dict[str, float]:
    return {"roc_auc": float(roc_auc_score(holdout["y"], model.predict(holdout)))}


def train(data: Any = None, *, seed: int, params: dict | None = None) -> Trained:
    """`params={"drop": ["x1"]}`: a model blind to the strongest feature (a worse one)."""
    drop = list((params or {}).get("drop", []))
    frame = dataset()
    fit, holdout = frame.iloc[:1500], frame.iloc[1500:]
    x = fit[FEATURES].copy()
    x[drop] = 0.0
    model = ToyModel(LogisticRegression(random_state=seed).fit(x.to_numpy(), fit["y"]), drop)
    return Trained(
        task=TASK,
        model=model,
        metrics=evaluate(model, holdout),
        baseline={"roc_auc": 0.5},
        primary="roc_auc",
        higher_is_better=True,
        params={"drop": ",".join(drop) or "none", "seed": seed},
        features=FEATURES,
        train_window=(date(2026, 1, 1), date(2026, 1, 31)),
        holdout_window=(date(2026, 2, 1), date(2026, 2, 7)),
        input_example=holdout[FEATURES].head(5),
        holdout=holdout,
        baseline_name="a coin toss",
        limits=["synthetic"],
        tables={"bins": pd.DataFrame({"bin": [0, 1], "rows": [250, 250]})},
        rows={"train": 1500, "holdout": 500},
    )


def score(model: Any, data: Any) -> pd.DataFrame:
    return pd.DataFrame()
