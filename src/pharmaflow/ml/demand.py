"""Demand forecast: units a product sells at a pharmacy on one day, 7 and 28 days ahead,
forecast at the end of a day by gradient-boosted trees (LightGBM), one model per horizon, on
gold.ml_demand_features.

Data. One row per pharmacy x product x origin day (ml_demand_features.sql): what was known at
the end of origin_date (recent and same-weekday units, rolling means, trend, zero days,
promotions and prices paid so far, the product's and the pharmacy's recent sales across the
chain) and the labels `label_units_h7` / `label_units_h28` (units on origin_date + 7 / + 28,
null until that day is complete). No feature says whether the target day will be promoted:
the data has no promotion calendar.

Split (time-based, never random). The holdout is the rows whose target day is among the last
`holdout_days` (14) complete days, per horizon; training takes the rows whose target day came
before the holdout: what a model trained on the day the holdout starts could have learnt
from (for 28 days ahead that is the first weeks of the data only).

Baseline: seasonal-naive, the units of the same weekday in the newest week (for 7 and 28 days
ahead: the origin day's own units, units_d0). Judged on the same holdout rows by WAPE
(sum |forecast - units| / sum units) and bias (sum (forecast - units) / sum units) per
horizon; the primary metric `wape` is the mean of the two horizons' WAPE (lower is better).

`tables`: per horizon, the model's, the baseline's and, where the simulator's truth is there
(simulate/truth.py, `demand`), the true expected units' WAPE and bias on the same rows (the
noise floor no forecast can pass) and the model's WAPE against the expected units; the
features' split gains.

`params` (all optional):
* LightGBM: `n_estimators` (300), `learning_rate` (0.05), `num_leaves` (15),
  `min_child_samples` (40), `reg_lambda` (1.0), `colsample_bytree` (0.8), `num_threads` (2);
  objective Poisson (a mean forecast of counts). `{"n_estimators": 3, "num_leaves": 2}` is a
  deliberately weak model.
* `features`: a subset of FEATURES (default: all). `holdout_days` (14).
LightGBM runs with deterministic=True, force_col_wise and the seed, so a seed gives the same
model on the same snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from pharmaflow.errors import PharmaflowError
from pharmaflow.ml import boosting
from pharmaflow.ml.data import MlData
from pharmaflow.ml.spec import Trained
from pharmaflow.simulate.truth import DEMAND, read_truth

TASK = "demand_forecast"
MODEL_NAME = "pharmaflow-demand-forecast"
SCORES_TABLE = "gold.ml_demand_forecast"
FEATURES_TABLE = "gold.ml_demand_features"

HORIZONS = (7, 28)
FEATURES = [
    "target_day_of_week",
    "units_d0",
    "units_lag7",
    "units_lag14",
    "units_lag21",
    "same_weekday_mean_4w",
    "units_mean_7d",
    "units_mean_14d",
    "units_mean_28d",
    "units_trend_7d",
    "zero_days_28d",
    "promo_share_7d",
    "promo_share_d0",
    "price_3d_vs_28d",
    "price_7d_vs_28d",
    "product_units_mean_7d",
    "product_units_mean_d0",
    "product_promo_share_d0",
    "pharmacy_units_mean_7d",
]
KEYS = ["pharmacy_id", "ndc", "origin_date"]
# the drift check of `pharmaflow score` (ml/score.py): features by origin day
DRIFT = (FEATURES_TABLE, "origin_date", FEATURES)
LGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 40,
    "reg_lambda": 1.0,
    "colsample_bytree": 0.8,
    "num_threads": 2,
}
HOLDOUT_DAYS = 14
MIN_TRAIN_ROWS = 200


def label(horizon: int) -> str:
    return f"label_units_h{horizon}"


def forecast_column(horizon: int) -> str:
    return f"forecast_units_h{horizon}"


class DemandForecastModel:
    """One LightGBM booster per horizon. Picklable; `predict` takes feature rows (as gold has
    them) and gives a frame with forecast_units_h7 and forecast_units_h28 per row."""

    def __init__(self, boosters: dict[int, lgb.Booster], features: list[str]) -> None:
        self.boosters = boosters
        self.features = features

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = prepare(frame, self.features)
        return pd.DataFrame(
            {forecast_column(h): self.boosters[h].predict(x) for h in sorted(self.boosters)}
        )


class SeasonalNaive:
    """The baseline: the same weekday's units in the newest week, i.e. units_d0 for horizons
    that are whole weeks."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        units = frame["units_d0"].to_numpy(dtype=float)
        return pd.DataFrame({forecast_column(h): units for h in HORIZONS})


@dataclass
class DemandHoldout:
    """What `evaluate` takes: per horizon, the holdout rows (features and that label)."""

    rows: dict[int, pd.DataFrame]


def prepare(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns as floats (decimals from the warehouse, nulls as NaN)."""
    return pd.DataFrame(
        {f: pd.to_numeric(frame[f], errors="coerce").astype(float) for f in features}
    )


def load_features(data: MlData) -> pd.DataFrame:
    if not data.has_table(FEATURES_TABLE):
        raise PharmaflowError(f"{FEATURES_TABLE} is missing: run `pharmaflow build` first")
    frame = data.table(FEATURES_TABLE)
    frame["origin_date"] = pd.to_datetime(frame["origin_date"])
    return frame.sort_values(KEYS).reset_index(drop=True)


def split(
    frame: pd.DataFrame, horizon: int, holdout_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and holdout rows of one horizon, both with a known label (module docstring)."""
    if frame.empty:
        raise PharmaflowError("no rows in gold.ml_demand_features to learn from")
    last_day = frame["origin_date"].max()  # the last complete day
    holdout_start = last_day - pd.Timedelta(days=holdout_days - 1)
    target = frame["origin_date"] + pd.Timedelta(days=horizon)
    known = frame[label(horizon)].notna()
    fit = frame[known & (target < holdout_start)]
    holdout = frame[known & (target >= holdout_start)]
    if len(fit) < MIN_TRAIN_ROWS or holdout.empty:
        raise PharmaflowError(
            f"not enough sales history to forecast {horizon} days ahead: {len(fit)} training "
            f"rows with a target before {holdout_start.date()} (need {MIN_TRAIN_ROWS}) and "
            f"{len(holdout)} holdout rows; a window of at least {horizon + holdout_days + 14} "
            f"days of sales is needed"
        )
    return fit.reset_index(drop=True), holdout.reset_index(drop=True)


def wape(y: np.ndarray, forecast: np.ndarray) -> float:
    total = float(np.sum(y))
    return float(np.sum(np.abs(forecast - y)) / total) if total > 0 else float("nan")


def bias(y: np.ndarray, forecast: np.ndarray) -> float:
    total = float(np.sum(y))
    return float(np.sum(forecast - y) / total) if total > 0 else float("nan")


def evaluate(model: Any, holdout: DemandHoldout) -> dict[str, float]:
    """WAPE and bias per horizon, and their mean WAPE (`wape`), of `model` (this module's or
    the baseline) on the holdout rows."""
    metrics: dict[str, float] = {}
    for h in HORIZONS:
        rows = holdout.rows[h]
        y = rows[label(h)].to_numpy(dtype=float)
        forecast = model.predict(rows)[forecast_column(h)].to_numpy(dtype=float)
        metrics[f"wape_h{h}"] = wape(y, forecast)
        metrics[f"bias_h{h}"] = bias(y, forecast)
    metrics["wape"] = float(np.mean([metrics[f"wape_h{h}"] for h in HORIZONS]))
    return metrics


def train(data: MlData, *, seed: int, params: dict | None = None) -> Trained:
    """Fit one model per horizon on its training rows, judge model and seasonal-naive on the
    holdout (module docstring)."""
    params = dict(params or {})
    features = list(params.get("features", FEATURES))
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise PharmaflowError(f"unknown demand features {unknown}: pick from {FEATURES}")
    holdout_days = int(params.get("holdout_days", HOLDOUT_DAYS))
    lgbm, rounds = boosting.lgbm_params(LGBM_DEFAULTS, params, seed, "poisson")

    frame = load_features(data)
    parts = {h: split(frame, h, holdout_days) for h in HORIZONS}
    boosters = {}
    for h, (fit, _) in parts.items():
        dataset = lgb.Dataset(
            prepare(fit, features), label=fit[label(h)].to_numpy(dtype=float), free_raw_data=True
        )
        boosters[h] = lgb.train(lgbm, dataset, num_boost_round=rounds)
    model = DemandForecastModel(boosters, features)
    baseline = SeasonalNaive()
    columns = [*KEYS, *FEATURES]
    holdout = DemandHoldout(
        {h: rows[[*columns, label(h)]].copy() for h, (_, rows) in parts.items()}
    )
    metrics, base = evaluate(model, holdout), evaluate(baseline, holdout)
    tables = {
        "horizons": _horizon_table(data, holdout, model, metrics, base),
        "feature_importance": _importance(model),
    }
    fits = [fit for fit, _ in parts.values()]
    holdouts = list(holdout.rows.values())
    return Trained(
        task=TASK,
        model=model,
        metrics=metrics,
        baseline=base,
        primary="wape",
        higher_is_better=False,
        params={
            **boosting.chosen(LGBM_DEFAULTS, params),
            "objective": "poisson",
            "features": ",".join(features),
            "horizons": ",".join(str(h) for h in HORIZONS),
            "holdout_days": holdout_days,
            "seed": seed,
        },
        features=features,
        train_window=_window({h: fit for h, (fit, _) in parts.items()}, "origin"),
        holdout_window=_window(holdout.rows, "target"),
        input_example=prepare(holdouts[0].head(5), features).reset_index(drop=True),
        holdout=holdout,
        baseline_name="seasonal-naive: the same weekday's units in the newest week",
        limits=_limits(),
        tables=tables,
        rows={
            **{f"train_h{h}": len(fit) for h, (fit, _) in parts.items()},
            **{f"holdout_h{h}": len(rows) for h, (_, rows) in parts.items()},
            "train": sum(len(f) for f in fits),
            "holdout": sum(len(r) for r in holdouts),
        },
    )


def score(model: Any, data: MlData) -> pd.DataFrame:
    """Forecasts made at the end of the newest complete day, for every pair selling then:
    one row per pharmacy x product x horizon."""
    frame = load_features(data)
    if frame.empty:
        return pd.DataFrame(
            columns=[
                "origin_date",
                "target_date",
                "horizon_days",
                "pharmacy_id",
                "ndc",
                "forecast_units",
            ]
        )
    newest = frame[frame["origin_date"] == frame["origin_date"].max()].reset_index(drop=True)
    forecasts = model.predict(newest)
    parts = []
    for h in HORIZONS:
        parts.append(
            pd.DataFrame(
                {
                    "origin_date": newest["origin_date"].dt.date.to_numpy(),
                    "target_date": (
                        newest["origin_date"] + pd.Timedelta(days=h)
                    ).dt.date.to_numpy(),
                    "horizon_days": np.full(len(newest), h, dtype=np.int64),
                    "pharmacy_id": newest["pharmacy_id"].to_numpy(dtype=object),
                    "ndc": newest["ndc"].to_numpy(dtype=object),
                    "forecast_units": forecasts[forecast_column(h)].to_numpy(dtype=float),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# ---- ground truth (evaluation only) -------------------------------------------------------


def _expected_units(data: MlData, rows: pd.DataFrame, horizon: int) -> np.ndarray | None:
    """The simulator's expected units of each row's target day (NaN where the truth has
    none), or None without a truth table."""
    table = read_truth(data.settings.truth_dir, DEMAND)
    if table is None or table.num_rows == 0:
        return None
    truth = table.select(["sale_date", "pharmacy_id", "ndc", "expected_units"]).to_pandas()
    truth["sale_date"] = pd.to_datetime(truth["sale_date"])
    keys = rows[["pharmacy_id", "ndc"]].assign(
        sale_date=rows["origin_date"] + pd.Timedelta(days=horizon)
    )
    joined = keys.merge(truth, on=["sale_date", "pharmacy_id", "ndc"], how="left")
    return joined["expected_units"].to_numpy(dtype=float)


def _horizon_table(
    data: MlData,
    holdout: DemandHoldout,
    model: DemandForecastModel,
    metrics: dict[str, float],
    base: dict[str, float],
) -> pd.DataFrame:
    out = []
    for h in HORIZONS:
        rows = holdout.rows[h]
        row: dict[str, Any] = {
            "horizon_days": h,
            "rows": len(rows),
            "units": float(rows[label(h)].sum()),
            "model_wape": metrics[f"wape_h{h}"],
            "model_bias": metrics[f"bias_h{h}"],
            "baseline_wape": base[f"wape_h{h}"],
            "baseline_bias": base[f"bias_h{h}"],
        }
        expected = _expected_units(data, rows, h)
        if expected is not None:
            keep = ~np.isnan(expected)
            y = rows[label(h)].to_numpy(dtype=float)[keep]
            forecast = model.predict(rows)[forecast_column(h)].to_numpy(dtype=float)[keep]
            row.update(
                rows_with_truth=int(keep.sum()),
                truth_wape=wape(y, expected[keep]),
                truth_bias=bias(y, expected[keep]),
                model_wape_vs_expected=wape(expected[keep], forecast),
            )
        out.append(row)
    return pd.DataFrame(out)


def _importance(model: DemandForecastModel) -> pd.DataFrame:
    frames = []
    for h, booster in sorted(model.boosters.items()):
        frames.append(
            pd.DataFrame(
                {
                    "horizon_days": h,
                    "feature": model.features,
                    "gain": booster.feature_importance(importance_type="gain"),
                    "splits": booster.feature_importance(importance_type="split"),
                }
            ).sort_values(["gain", "feature"], ascending=[False, True])
        )
    return pd.concat(frames, ignore_index=True)


def _window(parts: dict[int, pd.DataFrame], first: str) -> tuple[date, date]:
    """From the first origin day (`first="origin"`) or target day (`"target"`) of the parts
    to their last target day: the days whose sales the rows read."""
    origins = [part["origin_date"].min() for part in parts.values()]
    targets = [part["origin_date"] + pd.Timedelta(days=h) for h, part in parts.items()]
    start = min(origins) if first == "origin" else min(t.min() for t in targets)
    return start.date(), max(t.max() for t in targets).date()


def _limits() -> list[str]:
    return [
        "No promotion calendar: a promotion on the target day is not foreseen, so promoted "
        "days are under-forecast and the days after one can be over-forecast.",
        "Shelf-price changes after the origin day are not known; the forecast assumes the "
        "recent price level (price_3d_vs_28d, price_7d_vs_28d) persists.",
        "Horizons 7 and 28 only (same weekday as the origin); other days ahead need their own "
        "model.",
        "The 28-day model learns from the first weeks of the data only (its labels must be "
        "known before the holdout), with little history behind its rolling features.",
        "A season or trend longer than the data is not learnt: judged on one time-based "
        "holdout of the last two weeks.",
        "One pair at a time: a pharmacy x product with no sales history yet gets no forecast.",
    ]
