"""The tasks by name, in the order `pharmaflow train` runs them.

Task modules are imported on first use: each pulls in its learners (LightGBM, scikit-learn,
VADER), and a command that trains one task should not pay for the others.
"""

from __future__ import annotations

from importlib import import_module

from pharmaflow.errors import PharmaflowError
from pharmaflow.ml.spec import Task

MODULES = {
    "shipment_delay": "pharmaflow.ml.delay",
    "demand_forecast": "pharmaflow.ml.demand",
    "price_elasticity": "pharmaflow.ml.elasticity",
    "survey_sentiment": "pharmaflow.ml.sentiment",
}
# short names people type: `pharmaflow train delay sentiment`
ALIASES = {
    "delay": "shipment_delay",
    "demand": "demand_forecast",
    "forecast": "demand_forecast",
    "elasticity": "price_elasticity",
    "sentiment": "survey_sentiment",
}


def task_names(names: list[str] | None) -> list[str]:
    """Canonical task names for what was asked (all of them when nothing was), deduplicated in
    the order given; an unknown name is one line listing the known ones."""
    if not names:
        return list(MODULES)
    chosen: list[str] = []
    for raw in names:
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in MODULES:
            known = ", ".join([*MODULES, *ALIASES])
            raise PharmaflowError(f"unknown model {raw!r}: pick from {known}")
        if name not in chosen:
            chosen.append(name)
    return chosen


def load_task(name: str) -> Task:
    module = import_module(MODULES[name])
    return module  # type: ignore[return-value]
