"""Tracking and the registry: every training run in MLflow, and the `champion` alias.

A run logs the parameters, the model's holdout metrics beside the baseline's
(`model_<metric>`, `baseline_<metric>`), the extra tables, the model (a pyfunc with its
signature and input example) and tags naming the warehouse snapshot and the data window it
used. Every trained model is registered as a new version; the version becomes `champion`
(aliases: registry stages are deprecated) only when it beats the baseline AND the current
champion, re-evaluated on the new version's holdout so both are judged on the same rows.
Otherwise it stays registered, unpromoted, with the reason as a tag.

The store is a local SQLite file under the data dir unless `PHARMAFLOW_MLFLOW_TRACKING_URI`
names another; artifacts go under the data dir too (never `./mlruns` in the working
directory), and telemetry is off.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from pharmaflow.config import Settings
from pharmaflow.ml.card import write_card
from pharmaflow.ml.spec import Task, Trained

CHAMPION = "champion"
EXPERIMENT = "pharmaflow"
# what a logged model needs to be loaded elsewhere (inferring it would import the model in a
# subprocess on every run)
REQUIREMENTS = ("pharmaflow", "scikit-learn", "lightgbm", "vaderSentiment", "pandas", "numpy")


@dataclass(frozen=True)
class Registered:
    """What a training run left in the registry."""

    task: str
    model_name: str
    version: str
    run_id: str
    promoted: bool
    reason: str  # why it was (not) promoted
    metrics: dict[str, float]
    baseline: dict[str, float]
    champion_before: str | None  # the champion's version when the run started
    champion_metrics: dict[str, float] | None  # that champion on this run's holdout
    card: Path


def _mlflow(settings: Settings) -> Any:
    """mlflow, pointed at the settings' store."""
    settings.ml_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return mlflow


def experiment_id(settings: Settings) -> str:
    """The experiment, created with its artifacts under the data dir on first use."""
    _mlflow(settings)
    found = mlflow.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    return str(mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_root(settings)))


def artifact_root(settings: Settings) -> str | None:
    """Artifacts of a local SQLite store go beside it (`artifacts/`), never to MLflow's
    default `./mlruns` in whatever the working directory is; a tracking server decides its
    own (None)."""
    uri = settings.tracking_uri
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()


class PharmaflowModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A task's model behind MLflow's pyfunc interface (predict takes a DataFrame)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return self.model.predict(model_input)


def _requirements() -> list[str]:
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def champion_version(settings: Settings, model_name: str) -> str | None:
    """The version the `champion` alias points at (None: no champion yet)."""
    _mlflow(settings)
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def train_window(settings: Settings, model_name: str, version: str) -> tuple[str, str] | None:
    """First and last day (ISO) of the data a registered version was trained on."""
    _mlflow(settings)
    client = MlflowClient()
    run_id = client.get_model_version(model_name, version).run_id
    tag = client.get_run(run_id).data.tags.get("pharmaflow.train_window", "")
    first, sep, last = tag.partition("..")
    return (first, last) if sep else None


def load_model(settings: Settings, model_name: str, version: str) -> Any:
    """The task's own model object of a registered version (unwrapped from the pyfunc)."""
    _mlflow(settings)
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    return loaded.unwrap_python_model().model


def track(settings: Settings, task: Task, trained: Trained, snapshot_id: str) -> Registered:
    """Log `trained` as a run, register it as a new version of the task's model, and promote
    it to champion if it beats the baseline and the current champion on its holdout."""
    _mlflow(settings)
    client = MlflowClient()
    name = task.MODEL_NAME
    before = champion_version(settings, name)
    champion_metrics = None
    if before is not None:
        champion_metrics = task.evaluate(load_model(settings, name, before), trained.holdout)
    promoted, reason = decide(trained, before, champion_metrics)

    example = trained.input_example
    signature = infer_signature(example, trained.model.predict(example))
    with mlflow.start_run(
        experiment_id=experiment_id(settings), run_name=f"{task.TASK}-{snapshot_id}"
    ) as run:
        mlflow.log_params({k: _param(v) for k, v in trained.params.items()})
        mlflow.log_metrics({f"model_{k}": float(v) for k, v in trained.metrics.items()})
        mlflow.log_metrics({f"baseline_{k}": float(v) for k, v in trained.baseline.items()})
        for part, rows in trained.rows.items():
            mlflow.log_metric(f"rows_{part}", rows)
        mlflow.set_tags(
            {
                "pharmaflow.task": task.TASK,
                "pharmaflow.data_snapshot": snapshot_id,
                "pharmaflow.train_window": _window(trained.train_window),
                "pharmaflow.holdout_window": _window(trained.holdout_window),
                "pharmaflow.features": ",".join(trained.features),
                "pharmaflow.baseline": trained.baseline_name,
                "pharmaflow.primary_metric": trained.primary,
            }
        )
        with tempfile.TemporaryDirectory(prefix="pharmaflow-ml-") as tmp:
            for table_name, table in trained.tables.items():
                path = Path(tmp) / f"{table_name}.csv"
                table.to_csv(path, index=False)
                mlflow.log_artifact(str(path), artifact_path="tables")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=PharmaflowModel(trained.model),
            signature=signature,
            input_example=example,
            registered_model_name=name,
            pip_requirements=_requirements(),
        )
        version = str(info.registered_model_version)
        mlflow.set_tags(
            {"pharmaflow.promoted": str(promoted).lower(), "pharmaflow.promotion_reason": reason}
        )
    client.set_model_version_tag(name, version, "promoted", str(promoted).lower())
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    client.set_model_version_tag(name, version, "data_snapshot", snapshot_id)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    registered = Registered(
        task=task.TASK,
        model_name=name,
        version=version,
        run_id=run.info.run_id,
        promoted=promoted,
        reason=reason,
        metrics=dict(trained.metrics),
        baseline=dict(trained.baseline),
        champion_before=before,
        champion_metrics=champion_metrics,
        card=settings.ml_dir / "cards" / f"{name}-v{version}.md",
    )
    write_card(registered.card, trained, registered, snapshot_id)
    client.update_model_version(name, version, description=registered.card.read_text())
    with mlflow.start_run(run_id=registered.run_id):
        mlflow.log_artifact(str(registered.card), artifact_path="card")
    return registered


def decide(
    trained: Trained, champion: str | None, champion_metrics: dict[str, float] | None
) -> tuple[bool, str]:
    """Promote only a model strictly better than the baseline and than the champion."""
    key = trained.primary
    mine, base = trained.metrics[key], trained.baseline[key]
    if not trained.beats_baseline():
        return False, f"{key} {mine:.4f} does not beat the baseline's {base:.4f}"
    if champion is None or champion_metrics is None:
        return True, f"{key} {mine:.4f} beats the baseline's {base:.4f}; no champion yet"
    theirs = champion_metrics[key]
    if not trained.better(mine, theirs):
        return False, (
            f"{key} {mine:.4f} does not beat champion v{champion}'s {theirs:.4f} "
            "on the same holdout"
        )
    return True, (
        f"{key} {mine:.4f} beats the baseline's {base:.4f} and champion v{champion}'s {theirs:.4f}"
    )


def _param(value: Any) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else str(value)


def _window(window: tuple[Any, Any]) -> str:
    return f"{window[0]}..{window[1]}"
