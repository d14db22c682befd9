"""The demand forecaster on the shared 9-week warehouse: it beats seasonal-naive on WAPE at
both horizons, stays above the truth's noise floor, splits by time, is deterministic for a
seed, a weak setting is worse, and it scores the newest day's forecasts."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from pharmaflow.ml import demand
from pharmaflow.ml.data import MlData
from pharmaflow.ml.spec import Trained

pytestmark = pytest.mark.slow

WEAK = {"n_estimators": 3, "num_leaves": 2}
SCORE_COLUMNS = [
    "origin_date",
    "target_date",
    "horizon_days",
    "pharmacy_id",
    "ndc",
    "forecast_units",
]


@pytest.fixture(scope="module")
def trained(data: MlData) -> Trained:
    return demand.train(data, seed=7)


def test_the_forecast_beats_seasonal_naive_at_both_horizons(trained: Trained) -> None:
    assert trained.primary == "wape" and not trained.higher_is_better
    assert trained.beats_baseline()
    for h in demand.HORIZONS:
        assert trained.metrics[f"wape_h{h}"] < 0.95 * trained.baseline[f"wape_h{h}"], h
    assert trained.metrics["wape"] == pytest.approx(
        (trained.metrics["wape_h7"] + trained.metrics["wape_h28"]) / 2
    )
    assert set(trained.metrics) == set(trained.baseline)
    assert trained.rows["holdout_h7"] > 5_000 and trained.rows["train_h28"] > 5_000


def test_metrics_are_wape_and_bias_of_the_holdout_rows(trained: Trained) -> None:
    for h in demand.HORIZONS:
        rows = trained.holdout.rows[h]
        y = rows[f"label_units_h{h}"].to_numpy(dtype=float)
        forecast = trained.model.predict(rows)[f"forecast_units_h{h}"].to_numpy()
        assert trained.metrics[f"wape_h{h}"] == pytest.approx(np.abs(forecast - y).sum() / y.sum())
        assert trained.metrics[f"bias_h{h}"] == pytest.approx((forecast - y).sum() / y.sum())
        # the baseline is the origin day's own units (the same weekday, h days before)
        naive = rows["units_d0"].to_numpy(dtype=float)
        assert trained.baseline[f"wape_h{h}"] == pytest.approx(np.abs(naive - y).sum() / y.sum())


def test_the_model_stays_above_the_noise_floor_of_the_true_demand(trained: Trained) -> None:
    table = trained.tables["horizons"].set_index("horizon_days")
    for h in demand.HORIZONS:
        row = table.loc[h]
        assert row["rows_with_truth"] == trained.rows[f"holdout_h{h}"]
        assert row["truth_wape"] < row["model_wape"] < row["baseline_wape"]
        assert abs(row["truth_bias"]) < 0.05  # the truth is the mean the units were drawn from


def test_the_split_is_by_target_day_and_training_labels_precede_the_holdout(
    data: MlData, trained: Trained
) -> None:
    frame = demand.load_features(data)
    last = frame["origin_date"].max()
    start = last - pd.Timedelta(days=demand.HOLDOUT_DAYS - 1)
    for h in demand.HORIZONS:
        fit, holdout = demand.split(frame, h, demand.HOLDOUT_DAYS)
        offset = pd.Timedelta(days=h)
        assert (fit["origin_date"] + offset).max() < start
        assert (holdout["origin_date"] + offset).min() == start
        assert (holdout["origin_date"] + offset).max() == last
        assert fit[f"label_units_h{h}"].notna().all()
        assert holdout[f"label_units_h{h}"].notna().all()
        assert (len(fit), len(holdout)) == (
            trained.rows[f"train_h{h}"],
            trained.rows[f"holdout_h{h}"],
        )
    assert trained.holdout_window == (start.date(), last.date())
    assert trained.train_window[1] < trained.holdout_window[0]


def test_evaluate_gives_the_training_metrics_on_its_holdout(trained: Trained) -> None:
    assert demand.evaluate(trained.model, trained.holdout) == pytest.approx(trained.metrics)
    assert demand.evaluate(demand.SeasonalNaive(), trained.holdout) == pytest.approx(
        trained.baseline
    )
    restored = pickle.loads(pickle.dumps(trained.model))
    rows = trained.holdout.rows[7]
    pd.testing.assert_frame_equal(restored.predict(rows), trained.model.predict(rows))
    example = trained.model.predict(trained.input_example)
    assert list(example.columns) == ["forecast_units_h7", "forecast_units_h28"]
    assert len(example) == len(trained.input_example)


def test_the_same_seed_gives_the_same_model(data: MlData, trained: Trained) -> None:
    again = demand.train(data, seed=7)
    assert again.metrics == trained.metrics
    assert again.params == trained.params
    rows = trained.holdout.rows[28]
    pd.testing.assert_frame_equal(again.model.predict(rows), trained.model.predict(rows))


def test_a_weak_setting_gives_a_worse_model(data: MlData, trained: Trained) -> None:
    weak = demand.train(data, seed=7, params=WEAK)
    assert weak.params["n_estimators"] == 3 and weak.params["num_leaves"] == 2
    assert weak.metrics["wape"] > trained.metrics["wape"] + 0.01
    assert not weak.better(weak.metrics["wape"], trained.metrics["wape"])


def test_score_forecasts_every_pair_from_the_newest_complete_day(
    data: MlData, trained: Trained
) -> None:
    scores = demand.score(trained.model, data)
    assert list(scores.columns) == SCORE_COLUMNS
    frame = demand.load_features(data)
    newest = frame[frame["origin_date"] == frame["origin_date"].max()]
    assert len(scores) == len(newest) * len(demand.HORIZONS)
    assert set(scores["horizon_days"]) == set(demand.HORIZONS)
    assert not scores.duplicated(["pharmacy_id", "ndc", "horizon_days"]).any()
    gap = pd.to_datetime(scores["target_date"]) - pd.to_datetime(scores["origin_date"])
    assert (gap.dt.days == scores["horizon_days"]).all()
    assert (scores["origin_date"] == frame["origin_date"].max().date()).all()
    assert (scores["forecast_units"] >= 0).all() and scores["forecast_units"].std() > 0
