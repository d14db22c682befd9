"""The sentiment task's parts, and train/evaluate/score on a small simulated window.

The window's surveys stand in for gold.fact_survey (a stub with the same columns; the SQL
itself is exercised on a built warehouse in tests/integration/ml/test_sentiment_model.py),
and its ground truth is written to a truth folder exactly as `simulate(truth_dir=...)` does.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from pharmaflow.errors import PharmaflowError
from pharmaflow.ml import sentiment
from pharmaflow.simulate import SimConfig
from pharmaflow.simulate.simulator import generate
from tests.unit.simulate.conftest import NO_FAULTS

CONFIG = SimConfig(seed=5, days=28, scale=0.1, **NO_FAULTS)
NPS_CATEGORY = {**dict.fromkeys(range(7), "DETRACTOR"), 7: "PASSIVE", 8: "PASSIVE"}


@dataclass
class _Settings:
    truth_dir: Path


class StubData:
    """What the task reads of MlData: `frame(sql)` (the surveys with a comment, as
    gold.fact_survey has them) and `settings.truth_dir`."""

    def __init__(self, surveys: pd.DataFrame, truth_dir: Path) -> None:
        self.surveys = surveys
        self.settings = _Settings(truth_dir)

    def frame(self, sql: str, params: object = ()) -> pd.DataFrame:
        assert "gold.fact_survey" in sql
        return self.surveys.copy()


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    output = generate(CONFIG)
    truth_dir = tmp_path_factory.mktemp("truth")
    output.truth.write(truth_dir)
    rows = []
    for line in output.lines:
        event = orjson.loads(line)
        if event["event_type"] == "feedback.survey.submitted" and event["payload"].get("comment"):
            rows.append({**event["payload"], "submitted_at": event["event_time"]})
    frame = pd.DataFrame(rows)
    frame["nps_category"] = frame["nps"].map(lambda n: NPS_CATEGORY.get(n, "PROMOTER"))
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True).dt.tz_localize(None)
    return frame.sort_values(["submitted_at", "survey_id"]).reset_index(drop=True), truth_dir


@pytest.fixture
def data(window) -> StubData:
    return StubData(*window)


def test_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.choice(sentiment.LABELS, 500)
    predicted = np.where(rng.random(500) < 0.6, truth, rng.choice(sentiment.LABELS, 500))
    found = sentiment.metrics(truth.astype(object), predicted.astype(object))
    assert found["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    expected = f1_score(truth, predicted, labels=list(sentiment.LABELS), average="macro")
    assert found["macro_f1"] == pytest.approx(expected)
    # a label nobody has and nobody predicts counts as 0 in the macro average
    only_two = sentiment.metrics(np.array(["POSITIVE", "NEUTRAL"], dtype=object),
                                 np.array(["POSITIVE", "NEUTRAL"], dtype=object))  # fmt: skip
    assert only_two["accuracy"] == 1.0 and only_two["macro_f1"] == pytest.approx(2 / 3)


def test_the_tuned_cut_is_the_best_on_the_grid() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice(sentiment.LABELS, 600).astype(object)
    centre = {"NEGATIVE": -0.5, "NEUTRAL": 0.0, "POSITIVE": 0.5}
    scores = np.clip([centre[v] + rng.normal(0, 0.3) for v in labels], -1, 1).round(4)
    neg, pos = sentiment.tune_cut(scores, labels)
    best = sentiment.metrics(labels, sentiment.cut(scores, neg, pos))["macro_f1"]
    grid = sentiment.GRID
    for _ in range(300):  # no other cut does better (checked the slow way)
        i, j = sorted(rng.choice(len(grid), 2, replace=False))
        other = sentiment.metrics(labels, sentiment.cut(scores, grid[i], grid[j]))["macro_f1"]
        assert other <= best + 1e-12
    assert -0.5 < neg < 0 < pos < 0.5


def test_ties_go_to_vaders_standard_cut() -> None:
    labels = np.array(["NEUTRAL"] * 50, dtype=object)
    assert sentiment.tune_cut(np.zeros(50), labels) == sentiment.STANDARD_CUT


def test_the_model_normalises_odd_unicode_before_scoring() -> None:
    model = sentiment.SentimentModel(-0.05, 0.05)
    frame = pd.DataFrame(
        {"comment": ["I didn't like it at all.", "I didn\u2019t like it at all.", None, "  "]}
    )
    out = model.predict(frame)
    assert list(out.columns) == ["sentiment_label", "sentiment_score"]
    assert out["sentiment_score"][0] == out["sentiment_score"][1] < 0  # the negation is read
    assert out["sentiment_label"].tolist()[:2] == ["NEGATIVE", "NEGATIVE"]
    assert pd.isna(out["sentiment_label"][2]) and np.isnan(out["sentiment_score"][3])
    raw = sentiment.SentimentModel(-0.05, 0.05, normalize=False).predict(frame.iloc[[1]])
    assert raw["sentiment_score"].iloc[0] > 0  # without it, VADER misses the curly negation
    with pytest.raises(ValueError):
        sentiment.SentimentModel(0.2, 0.1)


def test_train_on_labelled_comments_beats_the_baseline_and_leaks_no_text(data) -> None:
    trained = sentiment.train(data, seed=7)
    assert trained.params["label_source"] == "truth" and trained.params["cut"] == "tuned"
    assert trained.primary == "macro_f1" and trained.beats_baseline()
    assert trained.metrics["accuracy"] > trained.baseline["accuracy"]
    assert trained.train_window[1] < trained.holdout_window[0]  # time-based
    assert trained.holdout_window[1] - trained.holdout_window[0] <= pd.Timedelta(days=13)
    assert trained.rows["holdout"] == len(trained.holdout)
    matrix = trained.tables["confusion_matrix"]
    assert matrix[list(sentiment.LABELS)].to_numpy().sum() == len(trained.holdout)
    assert sentiment.evaluate(trained.model, trained.holdout) == trained.metrics
    # nothing logged carries a comment: tables, params, the input example
    comments = set(data.surveys["comment"])
    logged = [v for t in trained.tables.values() for v in t.astype(str).to_numpy().ravel()]
    logged += [str(v) for v in trained.params.values()]
    logged += trained.input_example["comment"].tolist()
    assert not comments & set(logged)
    assert not any(c in " ".join(logged) for c in comments if len(c) > 12)


def test_training_is_deterministic_and_the_model_pickles(data) -> None:
    first = sentiment.train(data, seed=7)
    second = sentiment.train(data, seed=7)
    assert first.metrics == second.metrics and first.params == second.params
    clone = pickle.loads(pickle.dumps(first.model))
    pd.testing.assert_frame_equal(clone.predict(first.holdout), first.model.predict(first.holdout))


def test_without_labels_it_tunes_on_nps_weak_labels_and_says_so(window, tmp_path) -> None:
    surveys, _ = window
    no_truth = StubData(surveys, tmp_path / "none")
    trained = sentiment.train(no_truth, seed=7)
    assert trained.params["label_source"] == "weak"
    assert any("NPS" in limit for limit in trained.limits)
    with pytest.raises(PharmaflowError, match="no labelled comments"):
        sentiment.train(no_truth, seed=7, params={"labels": "truth"})


def test_a_fixed_wide_cut_is_a_worse_model(data) -> None:
    good = sentiment.train(data, seed=7)
    weak = sentiment.train(data, seed=7, params={"neg_threshold": -0.9, "pos_threshold": 0.9})
    assert weak.params["cut"] == "fixed"
    assert weak.metrics["macro_f1"] < good.metrics["macro_f1"]


def test_score_labels_every_comment(data) -> None:
    trained = sentiment.train(data, seed=7)
    scores = sentiment.score(trained.model, data)
    assert list(scores.columns) == ["survey_id", "sentiment_label", "sentiment_score"]
    assert scores["survey_id"].tolist() == data.surveys["survey_id"].tolist()
    assert set(scores["sentiment_label"]) <= set(sentiment.LABELS)
    assert scores["sentiment_score"].between(-1, 1).all()


def test_a_holdout_longer_than_the_data_is_one_clear_error(data) -> None:
    with pytest.raises(PharmaflowError, match="nothing to train on"):
        sentiment.train(data, seed=7, params={"holdout_days": 400})
    with pytest.raises(PharmaflowError, match="pick auto, truth or weak"):
        sentiment.train(data, seed=7, params={"labels": "guess"})
