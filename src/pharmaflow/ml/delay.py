"""Shipment delay: the chance that a shipment arrives after its promised time, predicted when
it is created, by gradient-boosted trees (LightGBM) on gold.ml_shipment_features.

Data. One row per shipment (ml_shipment_features.sql): what was known at created_at, and the
label `label_is_late` (null until delivered). Labels of the newest shipments are censored: a
late one is still on the road when an on-time one has arrived, so the last `label_horizon_days`
before the newest known label are left out (their known labels are mostly the on-time ones).

Split (time-based, never random). The holdout is the last `holdout_days` days of created_at
among the mature labelled rows; training takes the rows created at least `label_horizon_days`
before the holdout starts whose label was known by then: what a model deployed at the start of
the holdout could have learnt from.

Baseline: each carrier x service level's late rate over the training rows (the overall
training rate for a pair it has not seen). Both are judged on the holdout by ROC-AUC (primary),
PR-AUC (average precision), Brier score, log loss, and precision / recall / F1 at a decision
threshold. The threshold of each is the one maximising F1 on the training period: for the
model on its out-of-fold predictions (4 contiguous time blocks of the training rows, each
predicted by a model fitted on the other three), for the baseline on its own training rates.

`tables`: calibration bins (deciles of each scorer's holdout probabilities: mean predicted vs
observed late rate), the features' split gains, and, where the simulator's ground truth is
there (simulate/truth.py, shipment_delay), the true probability's metrics on the same holdout
(the ceiling any model can reach) and how close the model's probabilities come to it.

`params` (all optional):
* LightGBM: `n_estimators` (200), `learning_rate` (0.05), `num_leaves` (7),
  `min_child_samples` (50), `reg_lambda` (5.0), `colsample_bytree` (0.8), `num_threads` (2).
  `{"n_estimators": 3, "num_leaves": 2}` is a deliberately weak model.
* `features`: a subset of FEATURES to use (default: all).
* `holdout_days` (14), `label_horizon_days` (7).
LightGBM runs with deterministic=True, force_col_wise and the seed, so a seed gives the same
model on the same snapshot.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from pharmaflow.errors import PharmaflowError
from pharmaflow.ml import boosting
from pharmaflow.ml.data import MlData
from pharmaflow.ml.spec import Trained
from pharmaflow.simulate.truth import SHIPMENT_DELAY, read_truth

TASK = "shipment_delay"
MODEL_NAME = "pharmaflow-shipment-delay"
SCORES_TABLE = "gold.ml_shipment_delay_scores"
FEATURES_TABLE = "gold.ml_shipment_features"

CATEGORICAL = [
    "carrier_id",
    "service_level",
    "origin_facility_id",
    "origin_facility_type",
    "destination_type",
]
NUMERIC = [
    "cold_chain",
    "distance_km",
    "created_weekday",
    "created_hour",
    "promised_transit_hours",
    "n_lots",
    "lane_delivered_7d",
    "lane_late_rate_7d",
    "lane_delivered_28d",
    "lane_late_rate_28d",
    "origin_delivered_28d",
    "origin_late_rate_28d",
    "origin_created_prev_day",
    "origin_created_earlier_today",
]
FEATURES = CATEGORICAL + NUMERIC
LABEL = "label_is_late"
# the drift check of `pharmaflow score` (ml/score.py): features by creation time
DRIFT = (FEATURES_TABLE, "created_at", FEATURES)
LGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_child_samples": 50,
    "reg_lambda": 5.0,
    "colsample_bytree": 0.8,
    "num_threads": 2,
}
HOLDOUT_DAYS = 14
LABEL_HORIZON_DAYS = 7
OOF_FOLDS = 4
CALIBRATION_BINS = 10
MIN_TRAIN_ROWS = 200


class ShipmentDelayModel:
    """A LightGBM booster with the category levels it was fitted on and its decision threshold.
    Picklable; `predict` takes raw feature columns (as gold has them) and gives the
    probability of a late delivery."""

    def __init__(
        self,
        booster: lgb.Booster,
        features: list[str],
        levels: dict[str, list[str]],
        threshold: float,
    ) -> None:
        self.booster = booster
        self.features = features
        self.levels = levels
        self.threshold = float(threshold)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(prepare(frame, self.features, self.levels))

    def predict_late(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict(frame) >= self.threshold


class LaneRateBaseline:
    """The baseline: the training period's late rate of the carrier x service level."""

    def __init__(self, rates: dict[tuple[str, str], float], overall: float, threshold: float):
        self.rates = rates
        self.overall = float(overall)
        self.threshold = float(threshold)

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> LaneRateBaseline:
        y = frame[LABEL].astype(float)
        rates = y.groupby([frame["carrier_id"], frame["service_level"]]).mean()
        baseline = cls({k: float(v) for k, v in rates.items()}, float(y.mean()), 0.5)
        baseline.threshold = best_f1_threshold(y.to_numpy(), baseline.predict(frame))
        return baseline

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        keys = zip(frame["carrier_id"], frame["service_level"], strict=True)
        return np.array([self.rates.get(k, self.overall) for k in keys], dtype=float)


# ---- features -----------------------------------------------------------------------------


def prepare(frame: pd.DataFrame, features: list[str], levels: dict[str, list[str]]) -> pd.DataFrame:
    """The model matrix: categoricals with the fitted levels (unseen ones missing), numbers
    as floats (booleans 0/1, nulls NaN)."""
    out = pd.DataFrame(index=frame.index)
    for name in features:
        if name in levels:
            out[name] = pd.Categorical(frame[name].astype(object), categories=levels[name])
        else:
            out[name] = pd.to_numeric(frame[name].astype(object), errors="coerce").astype(float)
    return out


def load_features(data: MlData) -> pd.DataFrame:
    """Every row of the features table, oldest first."""
    if not data.has_table(FEATURES_TABLE):
        raise PharmaflowError(f"{FEATURES_TABLE} is missing: run `pharmaflow build` first")
    frame = data.frame(f"select * from {FEATURES_TABLE} order by created_at, shipment_id")
    for column in ("created_at", "label_known_at"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def split(
    frame: pd.DataFrame, holdout_days: int, horizon_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and holdout rows (module docstring), both with a known label."""
    labelled = frame[frame[LABEL].notna()].copy()
    if labelled.empty:
        raise PharmaflowError("no delivered shipments in gold.ml_shipment_features to learn from")
    labelled[LABEL] = labelled[LABEL].astype(bool)
    mature_end = labelled["label_known_at"].max() - pd.Timedelta(days=horizon_days)
    mature = labelled[labelled["created_at"] < mature_end]
    if mature.empty:
        raise PharmaflowError(
            f"every labelled shipment is younger than the {horizon_days}-day label horizon"
        )
    last_day = mature["created_at"].max().normalize()
    holdout_start = last_day - pd.Timedelta(days=holdout_days - 1)
    holdout = mature[mature["created_at"] >= holdout_start]
    train_end = holdout_start - pd.Timedelta(days=horizon_days)
    fit = labelled[
        (labelled["created_at"] < train_end) & (labelled["label_known_at"] < holdout_start)
    ]
    if len(fit) < MIN_TRAIN_ROWS or fit[LABEL].nunique() < 2 or holdout[LABEL].nunique() < 2:
        raise PharmaflowError(
            f"too little history to train the delay model: {len(fit)} training rows before "
            f"{train_end.date()} (need {MIN_TRAIN_ROWS} with both outcomes) and a holdout of "
            f"{len(holdout)} rows with both outcomes"
        )
    return fit.reset_index(drop=True), holdout.reset_index(drop=True)


# ---- metrics ------------------------------------------------------------------------------


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability cut with the highest F1 (a row is called late at or above it), over
    every distinct predicted value; ties go to the higher cut (fewer alarms)."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    called = np.arange(1, len(ps) + 1)
    last = np.r_[ps[1:] != ps[:-1], True]  # the end of each run of equal values
    tp, called, cuts = tp[last], called[last], ps[last]
    f1 = 2 * tp / (called + ys.sum())
    return float(cuts[int(np.argmax(f1))]) if len(cuts) else 0.5


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    y = np.asarray(y, dtype=bool)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    called = p >= threshold
    tp = float((called & y).sum())
    precision = tp / called.sum() if called.any() else 0.0
    recall = tp / y.sum() if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[False, True])),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def evaluate(model: Any, holdout: pd.DataFrame) -> dict[str, float]:
    """Metrics of `model` (this module's or the baseline) on holdout rows with a label."""
    return metrics(holdout[LABEL].to_numpy(dtype=bool), model.predict(holdout), model.threshold)


def calibration(y: np.ndarray, p: np.ndarray, scorer: str) -> pd.DataFrame:
    """Deciles of the predicted probability: rows, mean predicted, observed late rate."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(p, dtype=float)})
    ranks = frame["p"].rank(method="first")
    frame["bin"] = np.minimum(
        (ranks.to_numpy() - 1) * CALIBRATION_BINS // len(frame), CALIBRATION_BINS - 1
    ).astype(int)
    out = frame.groupby("bin").agg(
        rows=("y", "size"),
        p_min=("p", "min"),
        p_max=("p", "max"),
        mean_predicted=("p", "mean"),
        observed_late_rate=("y", "mean"),
    )
    out.insert(0, "scorer", scorer)
    return out.reset_index()


# ---- the task contract --------------------------------------------------------------------


def _fit(
    frame: pd.DataFrame, features: list[str], levels: dict[str, list[str]], lgbm: dict, rounds: int
) -> lgb.Booster:
    x = prepare(frame, features, levels)
    dataset = lgb.Dataset(
        x,
        label=frame[LABEL].astype(int).to_numpy(),
        categorical_feature=[f for f in features if f in levels],
        free_raw_data=True,
    )
    return lgb.train(lgbm, dataset, num_boost_round=rounds)


def _out_of_fold(
    frame: pd.DataFrame, features: list[str], levels: dict[str, list[str]], lgbm: dict, rounds: int
) -> np.ndarray:
    """Each of OOF_FOLDS contiguous time blocks predicted by a model fitted on the others."""
    oof = np.zeros(len(frame))
    blocks = np.array_split(np.arange(len(frame)), OOF_FOLDS)
    for block in blocks:
        rest = np.setdiff1d(np.arange(len(frame)), block)
        booster = _fit(frame.iloc[rest], features, levels, lgbm, rounds)
        oof[block] = booster.predict(prepare(frame.iloc[block], features, levels))
    return oof


def train(data: MlData, *, seed: int, params: dict | None = None) -> Trained:
    """Fit on the training period, judge model and baseline on the holdout (module docstring)."""
    params = dict(params or {})
    features = list(params.get("features", FEATURES))
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        raise PharmaflowError(f"unknown delay features {unknown}: pick from {FEATURES}")
    holdout_days = int(params.get("holdout_days", HOLDOUT_DAYS))
    horizon_days = int(params.get("label_horizon_days", LABEL_HORIZON_DAYS))
    lgbm, rounds = boosting.lgbm_params(
        LGBM_DEFAULTS, params, seed, "binary", cat_smooth=10.0, min_data_per_group=50
    )

    frame = load_features(data)
    fit, holdout = split(frame, holdout_days, horizon_days)
    levels = {
        name: sorted(str(v) for v in fit[name].dropna().unique())
        for name in features
        if name in CATEGORICAL
    }
    oof = _out_of_fold(fit, features, levels, lgbm, rounds)
    threshold = best_f1_threshold(fit[LABEL].to_numpy(dtype=bool), oof)
    model = ShipmentDelayModel(
        _fit(fit, features, levels, lgbm, rounds), features, levels, threshold
    )
    baseline = LaneRateBaseline.fit(fit)

    y = holdout[LABEL].to_numpy(dtype=bool)
    p_model, p_base = model.predict(holdout), baseline.predict(holdout)
    tables = {
        "calibration": pd.concat(
            [calibration(y, p_model, "model"), calibration(y, p_base, "baseline")],
            ignore_index=True,
        ),
        "feature_importance": _importance(model),
    }
    truth = truth_comparison(data, holdout, p_model, threshold)
    if truth is not None:
        tables["truth"] = truth
        true_p = _true_probability(data, holdout)
        if true_p is not None:
            keep = ~np.isnan(true_p)
            tables["calibration"] = pd.concat(
                [tables["calibration"], calibration(y[keep], true_p[keep], "truth")],
                ignore_index=True,
            )
    return Trained(
        task=TASK,
        model=model,
        metrics=evaluate(model, holdout),
        baseline=evaluate(baseline, holdout),
        primary="roc_auc",
        higher_is_better=True,
        params={
            **boosting.chosen(LGBM_DEFAULTS, params),
            "features": ",".join(features),
            "holdout_days": holdout_days,
            "label_horizon_days": horizon_days,
            "threshold": round(threshold, 6),
            "threshold_rule": f"max F1 on {OOF_FOLDS}-block out-of-fold training predictions",
            "baseline_threshold": round(baseline.threshold, 6),
            "train_late_rate": round(float(fit[LABEL].mean()), 6),
            "seed": seed,
        },
        features=features,
        train_window=_window(fit),
        holdout_window=_window(holdout),
        input_example=holdout[features].head(5).reset_index(drop=True),
        holdout=holdout[["shipment_id", "created_at", *FEATURES, LABEL]].copy(),
        baseline_name="carrier x service level late rate of the training period",
        limits=_limits(),
        tables=tables,
        rows={"train": len(fit), "holdout": len(holdout)},
    )


def score(model: Any, data: MlData) -> pd.DataFrame:
    """One row per shipment in the features table: its delay probability and the call."""
    frame = load_features(data)
    p = model.predict(frame) if len(frame) else np.zeros(0)
    return pd.DataFrame(
        {
            "shipment_id": frame["shipment_id"].to_numpy(dtype=object),
            "created_at": frame["created_at"].to_numpy(),
            "carrier_id": frame["carrier_id"].to_numpy(dtype=object),
            "service_level": frame["service_level"].to_numpy(dtype=object),
            "delay_probability": np.asarray(p, dtype=float),
            "predicted_late": np.asarray(p, dtype=float) >= model.threshold,
        }
    )


# ---- ground truth (evaluation only) -------------------------------------------------------


def _true_probability(data: MlData, rows: pd.DataFrame) -> np.ndarray | None:
    """The simulator's true late probability per row (NaN where the truth has none), or None
    without a truth table."""
    table = read_truth(data.settings.truth_dir, SHIPMENT_DELAY)
    if table is None or table.num_rows == 0:
        return None
    truth = table.select(["shipment_id", "late_probability"]).to_pandas()
    joined = rows[["shipment_id"]].merge(truth, on="shipment_id", how="left")
    return joined["late_probability"].to_numpy(dtype=float)


def truth_comparison(
    data: MlData, holdout: pd.DataFrame, p_model: np.ndarray, threshold: float
) -> pd.DataFrame | None:
    """The true probability as a scorer on the same holdout (the ceiling), and the model's
    distance from it; None without ground truth."""
    true_p = _true_probability(data, holdout)
    if true_p is None:
        return None
    keep = ~np.isnan(true_p)
    if not keep.any():
        return None
    y = holdout[LABEL].to_numpy(dtype=bool)[keep]
    ceiling = metrics(y, true_p[keep], best_f1_threshold(y, true_p[keep]))
    rows = [{"measure": f"truth_{k}", "value": v} for k, v in ceiling.items()]
    rows += [
        {"measure": "rows_with_truth", "value": float(keep.sum())},
        {
            "measure": "model_vs_truth_mean_abs_diff",
            "value": float(np.mean(np.abs(p_model[keep] - true_p[keep]))),
        },
        {
            "measure": "model_vs_truth_corr",
            "value": float(np.corrcoef(p_model[keep], true_p[keep])[0, 1]),
        },
    ]
    return pd.DataFrame(rows)


def _importance(model: ShipmentDelayModel) -> pd.DataFrame:
    gains = model.booster.feature_importance(importance_type="gain")
    splits = model.booster.feature_importance(importance_type="split")
    frame = pd.DataFrame({"feature": model.features, "gain": gains, "splits": splits})
    return frame.sort_values(["gain", "feature"], ascending=[False, True]).reset_index(drop=True)


def _window(frame: pd.DataFrame) -> tuple[date, date]:
    days = frame["created_at"].dt.date
    return days.min(), days.max()


def _limits() -> list[str]:
    return [
        "Predicts from what is known at creation only: a delay that starts in transit "
        "(a missed connection, a DELAY exception) is not seen; re-scoring after pick-up "
        "would need features the table does not have.",
        "The history features look back to the start of the creation day (UTC), not to the "
        "minute, and count deliveries only: shipments still on the road do not count.",
        "Distance is between state points (0 within a state): most patient shipments stay in "
        "their pharmacy's state, so it separates only the stock transfers.",
        "Lost shipments have no label and are not learnt from; labels of the newest "
        f"{LABEL_HORIZON_DAYS} days are left out as censored (late ones are still travelling).",
        "Judged on one time-based holdout: a season, carrier or network change after it is "
        "not covered.",
    ]
