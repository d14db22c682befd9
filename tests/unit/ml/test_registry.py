"""Tracking and promotion with a real MLflow store (SQLite in the test's folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmaflow.config import Settings
from tests.unit.ml import toy_task


@pytest.fixture
def ml_store(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def test_first_version_beating_the_baseline_becomes_champion(ml_store: Settings) -> None:
    from mlflow.tracking import MlflowClient

    from pharmaflow.ml import registry

    trained = toy_task.train(seed=1)
    reg = registry.track(ml_store, toy_task, trained, "snap-1")
    assert reg.promoted and reg.version == "1" and reg.champion_before is None
    assert registry.champion_version(ml_store, toy_task.MODEL_NAME) == "1"
    run = MlflowClient().get_run(reg.run_id)
    assert run.data.metrics["model_roc_auc"] == pytest.approx(trained.metrics["roc_auc"])
    assert run.data.metrics["baseline_roc_auc"] == 0.5
    assert run.data.tags["pharmaflow.data_snapshot"] == "snap-1"
    assert run.data.tags["pharmaflow.holdout_window"] == "2026-02-01..2026-02-07"
    # artifacts under the data dir, never ./mlruns in the working directory
    assert (ml_store.ml_dir / "artifacts").is_dir()
    assert not (Path.cwd() / "mlruns").exists()
    card = reg.card.read_text()
    assert "pharmaflow-toy v1" in card and "roc_auc (primary)" in card and "synthetic" in card
    # the registered model loads back and predicts what it predicted before
    loaded = registry.load_model(ml_store, toy_task.MODEL_NAME, "1")
    assert list(loaded.predict(trained.holdout)) == list(trained.model.predict(trained.holdout))


def test_a_worse_model_is_registered_but_not_promoted(ml_store: Settings) -> None:
    from mlflow.tracking import MlflowClient

    from pharmaflow.ml import registry

    registry.track(ml_store, toy_task, toy_task.train(seed=1), "snap-1")
    worse = toy_task.train(seed=1, params={"drop": ["x1"]})
    assert worse.beats_baseline()  # better than a coin toss, worse than the champion
    reg = registry.track(ml_store, toy_task, worse, "snap-2")
    assert not reg.promoted and reg.version == "2"
    assert "does not beat champion v1" in reg.reason
    assert reg.champion_metrics is not None
    assert reg.champion_metrics["roc_auc"] > reg.metrics["roc_auc"]
    assert registry.champion_version(ml_store, toy_task.MODEL_NAME) == "1"
    version = MlflowClient().get_model_version(toy_task.MODEL_NAME, "2")
    assert version.tags["promoted"] == "false"
    assert "does not beat champion v1" in version.tags["promotion_reason"]
    assert "promoted to `champion`: no" in reg.card.read_text()


def test_the_same_model_again_is_not_promoted_over_itself(ml_store: Settings) -> None:
    from pharmaflow.ml import registry

    registry.track(ml_store, toy_task, toy_task.train(seed=1), "snap-1")
    again = registry.track(ml_store, toy_task, toy_task.train(seed=1), "snap-1")
    assert not again.promoted  # equal is not better: the champion stays
    assert registry.champion_version(ml_store, toy_task.MODEL_NAME) == "1"


def test_a_model_no_better_than_its_baseline_never_becomes_champion(ml_store: Settings) -> None:
    from pharmaflow.ml import registry

    trained = toy_task.train(seed=1)
    trained.baseline = {"roc_auc": 0.99}
    reg = registry.track(ml_store, toy_task, trained, "snap-1")
    assert not reg.promoted and "does not beat the baseline" in reg.reason
    assert registry.champion_version(ml_store, toy_task.MODEL_NAME) is None
