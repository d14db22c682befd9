"""LightGBM settings the tree models share: a task's defaults overridden by `params`, made
deterministic and seeded, so one seed gives one model on one snapshot (what the registry's
"same seed, same model" promise and the tests rely on)."""

from __future__ import annotations

from typing import Any

FLOATS = ("learning_rate", "reg_lambda", "colsample_bytree")
INTEGERS = ("num_leaves", "min_child_samples", "num_threads")


def chosen(defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The task's hyper-parameters after `params` overrides (what the run logs)."""
    return {k: params.get(k, v) for k, v in defaults.items()}


def lgbm_params(
    defaults: dict[str, Any], params: dict[str, Any], seed: int, objective: str, **extra: Any
) -> tuple[dict[str, Any], int]:
    """LightGBM's training parameters and the number of boosting rounds (`n_estimators`)."""
    picked = chosen(defaults, params)
    return {
        "objective": objective,
        **{k: float(picked[k]) for k in FLOATS},
        **{k: int(picked[k]) for k in INTEGERS},
        "feature_fraction_seed": seed,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
        **extra,
    }, int(picked["n_estimators"])
