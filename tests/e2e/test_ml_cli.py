"""`pharmaflow train` and `pharmaflow score` as a user runs them, on a fresh copy of a 9-week
data dir (the `ml_scored` fixture ran both commands in a subprocess): every model is
registered and, on its first run, promoted; its card is written; the champions' scores land in
gold stamped with the version that made them; the MLflow store lives under the data dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pharmaflow.ml.tasks import MODULES, load_task
from tests.conftest import env_with_keys

pytestmark = pytest.mark.slow


def test_train_registers_and_promotes_every_model_on_its_first_run(ml_scored) -> None:
    assert [t["task"] for t in ml_scored.trained] == list(MODULES)
    for run in ml_scored.trained:
        task = load_task(run["task"])
        assert run["model_name"] == task.MODEL_NAME
        assert run["version"] == "1" and run["champion_before"] is None
        assert run["promoted"], run["reason"]
        assert set(run["metrics"]) == set(run["baseline"]), run["task"]
        card = Path(run["card"])
        assert card.is_file() and card.is_relative_to(ml_scored.settings.ml_dir)
        text = card.read_text()
        assert task.MODEL_NAME in text and "baseline" in text


def test_the_tracking_store_and_artifacts_stay_in_the_data_dir(ml_scored) -> None:
    ml_dir = ml_scored.settings.ml_dir
    assert (ml_dir / "mlflow.db").is_file()
    assert not (Path.cwd() / "mlruns").exists()
    assert any(ml_dir.rglob("MLmodel")), "no logged model under the data dir"


def test_score_writes_each_champions_scores_to_gold(ml_scored) -> None:
    versions = {t["task"]: t["version"] for t in ml_scored.trained}
    assert [s["task"] for s in ml_scored.scored] == list(MODULES)
    con = duckdb.connect(str(ml_scored.settings.warehouse_path), read_only=True)
    try:
        for result in ml_scored.scored:
            assert result["version"] == versions[result["task"]], result
            assert result["rows"] > 0, result
            table = result["table"]
            counted = con.execute(
                f"select count(*), count(distinct model_version), min(model_version) from {table}"
            ).fetchone()
            assert counted == (result["rows"], 1, result["version"]), table
        # the sentiment lands on the survey fact too, for every scored comment
        labelled = con.execute(
            "select count(*) from gold.fact_survey where sentiment_label is not null"
        ).fetchone()[0]
        sentiment = next(s for s in ml_scored.scored if s["task"] == "survey_sentiment")
        assert labelled == sentiment["rows"]
    finally:
        con.close()


def test_an_unknown_model_name_is_one_line_naming_the_known_ones(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(tmp_path), "train", "weather"],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=120,
    )
    assert done.returncode != 0
    message = (done.stderr + done.stdout).strip()
    assert "Traceback" not in message
    assert "weather" in message and "demand" in message and "elasticity" in message, message
