"""The price elasticity estimator: on synthetic confounded data it recovers the elasticity the
naive fit misses; on the shared 9-week warehouse its estimate lands within +-0.2 of the
simulator's truth for every product while the naive log-log fit is far off, it beats the
naive fit on the holdout without any truth, is deterministic, and a weak setting is worse."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from pharmaflow.ml import elasticity
from pharmaflow.ml.data import MlData
from pharmaflow.ml.spec import Trained

WEAK = {"controls": "pharmacy"}  # no calendar controls: the confounding stays
SCORE_COLUMNS = ["ndc", "elasticity", "ci_low", "ci_high", "method"]


# ---- on synthetic data (fast) --------------------------------------------------------------


def test_the_effects_learner_recovers_additive_effects() -> None:
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.integers(0, 30, 20_000), rng.integers(0, 8, 20_000)])
    a, b = rng.normal(0, 0.5, 30), rng.normal(0, 0.3, 8)
    rate = np.exp(1.5 + a[codes[:, 0]] + b[codes[:, 1]])
    fitted = elasticity.EffectsRegressor("log", prior=0.0).fit(codes, rng.poisson(rate))
    assert np.corrcoef(np.log(fitted.predict(codes)), np.log(rate))[0, 1] > 0.98
    linear = elasticity.EffectsRegressor("identity", prior=0.0).fit(codes, np.log(rate))
    np.testing.assert_allclose(linear.predict(codes), np.log(rate), atol=1e-4)
    # a code never seen in fit gets no effect
    unseen = np.array([[99, 0]])
    assert linear.predict(unseen)[0] == pytest.approx(linear.intercept_ + linear.effects_[1][0])


def _confounded_cells(elasticities: dict[str, float], seed: int = 1) -> pd.DataFrame:
    """Pharmacies x days of each product: promotions (deep cuts with an uplift) on the
    high-season days, prices also differing by pharmacy."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-01-05", periods=40, freq="D")
    frames = []
    for ndc, e in elasticities.items():
        season = 0.4 * np.sin(np.arange(len(days)) / 4)
        promoted = season > 0.2
        for k in range(20):
            shelf = rng.normal(0, 0.3, len(days))
            log_price = np.log(100.0) + shelf + np.where(promoted, np.log(0.7), 0.0)
            mean = 8 * np.exp(season + np.where(promoted, np.log(1.6), 0.0) + e * shelf)
            mean *= np.where(promoted, 0.7**e, 1.0)
            units = rng.poisson(mean).astype(float)
            frames.append(
                pd.DataFrame(
                    {
                        "ndc": ndc,
                        "pharmacy_id": f"PH-{k:03d}",
                        "sale_date": days,
                        "units": units,
                        "revenue": units * np.exp(log_price),
                        "log_price": log_price,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_dml_removes_the_confounding_the_naive_fit_keeps() -> None:
    truth = {"A": -0.8, "B": -1.6, "C": -2.4}
    cells = _confounded_cells(truth)
    found = elasticity.dml(cells, ["day", "pharmacy"], 5, 8, 1.0, seed=3).set_index("ndc")
    naive = elasticity.naive_chain(cells).set_index("ndc")
    weak = elasticity.dml(cells, ["pharmacy"], 5, 8, 1.0, seed=3).set_index("ndc")
    for ndc, e in truth.items():
        assert abs(found.loc[ndc, "elasticity"] - e) < 0.15, ndc
        assert found.loc[ndc, "ci_low"] < e < found.loc[ndc, "ci_high"], ndc
        assert naive.loc[ndc, "elasticity"] < e - 0.5, ndc  # far more elastic than the truth
        assert abs(weak.loc[ndc, "elasticity"] - e) > 0.2, ndc


def test_prices_of_days_without_sales_come_from_the_regular_price_around_them() -> None:
    days = pd.date_range("2026-02-02", periods=6, freq="D")
    units = [2, 0, 3, 0, 0, 1]
    prices = [10.0, np.nan, 10.0, np.nan, np.nan, 12.0]
    cells = pd.DataFrame(
        {
            "ndc": "A",
            "pharmacy_id": "PH-001",
            "sale_date": days,
            "units": units,
            "revenue": [u * (p if u else 0) for u, p in zip(units, prices, strict=True)],
            "chain_promoted": False,
        }
    )
    out = elasticity.impute_prices(cells)
    # between two equal prices: that price; before a rise: the higher one
    np.testing.assert_allclose(np.exp(out["log_price"]), [10, 10, 10, 12, 12, 12])
    assert out["price_observed"].tolist() == [True, False, True, False, False, True]


# ---- on the shared warehouse ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(data: MlData) -> Trained:
    return elasticity.train(data, seed=7)


@pytest.mark.slow
def test_the_debiased_elasticity_is_within_0_2_of_the_truth_for_every_product(
    trained: Trained,
) -> None:
    table = trained.tables["elasticity"]
    assert table["truth"].notna().all() and len(table) == 20
    assert table["dml_error"].abs().max() <= 0.2, table[["ndc", "dml", "truth"]]
    assert trained.metrics["truth_within_0_2"] == 1.0
    # the naive log-log fit is measurably, and visibly, further off
    naive_mae = table["naive_error"].abs().mean()
    dml_mae = table["dml_error"].abs().mean()
    assert naive_mae > 0.5 and naive_mae > 5 * dml_mae
    assert (table["naive_error"].abs() > 0.2).mean() > 0.8
    assert (table["naive_error"] < 0).mean() > 0.8  # confounding makes demand look elastic
    # the naive fit on pharmacy-days is less wrong (prices differing between pharmacies are
    # not confounded) but still further off than DML
    assert table["naive_cells_error"].abs().mean() > 1.5 * dml_mae
    # the intervals are honest: about 95% of them hold the truth
    assert table["truth_in_dml_ci"].sum() >= 16


@pytest.mark.slow
def test_dml_beats_the_naive_fit_on_the_holdout_without_truth(trained: Trained) -> None:
    assert trained.primary == "holdout_deviance" and not trained.higher_is_better
    assert trained.beats_baseline()
    assert trained.metrics["holdout_deviance"] < 0.95 * trained.baseline["holdout_deviance"]
    assert set(trained.metrics) == set(trained.baseline) == set(elasticity.METRICS)
    assert trained.baseline["truth_mae"] > trained.metrics["truth_mae"]


@pytest.mark.slow
def test_the_split_is_by_time(data: MlData, trained: Trained) -> None:
    cells = elasticity.load_cells(data)
    newest = data.frame("select max(business_date) as d from gold.fact_sales_daily_local")
    # the open day is left out
    assert cells["sale_date"].max() < pd.Timestamp(newest["d"].iloc[0])
    fit, holdout = elasticity.split(cells, elasticity.DEFAULTS["holdout_days"])
    assert fit["sale_date"].max() < holdout["sale_date"].min()
    assert holdout["sale_date"].nunique() == elasticity.DEFAULTS["holdout_days"]
    assert trained.train_window[1] < trained.holdout_window[0]
    assert trained.holdout_window[1] == cells["sale_date"].max().date()
    assert (len(fit), len(holdout)) == (trained.rows["train"], trained.rows["holdout"])
    assert 0 < trained.params["price_imputed_share"] < 0.3


@pytest.mark.slow
def test_evaluate_gives_the_training_metrics_and_the_model_pickles(trained: Trained) -> None:
    assert elasticity.evaluate(trained.model, trained.holdout) == pytest.approx(trained.metrics)
    restored = pickle.loads(pickle.dumps(trained.model))
    example = trained.input_example
    pd.testing.assert_frame_equal(restored.predict(example), trained.model.predict(example))
    out = trained.model.predict(example)
    np.testing.assert_allclose(
        out["demand_multiplier"], example["price_ratio"] ** out["elasticity"]
    )


@pytest.mark.slow
def test_the_same_seed_gives_the_same_estimates(data: MlData, trained: Trained) -> None:
    again = elasticity.train(data, seed=7)
    assert again.metrics == trained.metrics and again.params == trained.params
    pd.testing.assert_frame_equal(again.model.estimates, trained.model.estimates)


@pytest.mark.slow
def test_a_weak_setting_without_calendar_controls_is_worse(data: MlData, trained: Trained) -> None:
    weak = elasticity.train(data, seed=7, params=WEAK)
    assert weak.params["controls"] == "pharmacy"
    assert weak.metrics["holdout_deviance"] > trained.metrics["holdout_deviance"]
    assert not weak.better(weak.metrics["holdout_deviance"], trained.metrics["holdout_deviance"])
    assert weak.metrics["truth_mae"] > 3 * trained.metrics["truth_mae"]


@pytest.mark.slow
def test_score_gives_one_row_per_product(data: MlData, trained: Trained) -> None:
    scores = elasticity.score(trained.model, data)
    assert list(scores.columns) == SCORE_COLUMNS
    assert len(scores) == 20 and scores["ndc"].is_unique
    assert (scores["method"] == "dml").all()
    assert (scores["ci_low"] < scores["elasticity"]).all()
    assert (scores["elasticity"] < scores["ci_high"]).all()
