"""gold.ml_shipment_features is point-in-time correct, agrees with the simulator's truth, and
its leakage guard fails the build of a feature that carries the label in disguise.

Point in time: one small simulated input (faults on) is built whole, and again with every
event stamped after a cutoff removed from the file (what the warehouse would have held at
the cutoff). Every feature of every shipment created by the cutoff must be the same in both:
a feature that used a later event would change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pharmaflow.config import Settings
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from pharmaflow.simulate.truth import SHIPMENT_DELAY, read_truth
from pharmaflow.warehouse import runner
from tests.ml_data import ml_config, ml_settings
from tests.ml_features import (
    MODEL_DIR,
    at_or_before,
    build_from,
    build_model,
    failing_columns,
    leaky_copy,
    read_gold,
)

pytestmark = pytest.mark.slow

MODEL = "ml_shipment_features"
LABELS = ("label_is_late", "label_known_at")
CUTOFF_AFTER = timedelta(days=7, hours=13, minutes=37)  # from the window's start


@dataclass(frozen=True)
class Builds:
    config: SimConfig
    cutoff: datetime  # naive UTC, as gold's timestamps
    full: Settings
    cut: Settings
    truth_dir: Path


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    folder = tmp_path_factory.mktemp("features")
    config = ml_config(days=11, scale=0.08, seed=5)
    full = ml_settings(folder / "full")
    events = folder / "events.jsonl"
    simulate(config, events, truth_dir=full.truth_dir)
    start = datetime(config.start.year, config.start.month, config.start.day)
    cutoff = start + CUTOFF_AFTER
    lines = events.read_bytes().splitlines(keepends=True)
    kept = at_or_before(lines, cutoff)
    assert 0.5 * len(lines) < len(kept) < 0.9 * len(lines)
    truncated = folder / "before-cutoff.jsonl"
    truncated.write_bytes(b"".join(kept))
    cut = ml_settings(folder / "cut")
    build_from(full, events)
    build_from(cut, truncated)
    return Builds(config, cutoff, full, cut, full.truth_dir)


def _features(settings: Settings) -> pd.DataFrame:
    frame = read_gold(settings, f"select * from gold.{MODEL} order by shipment_id")
    return frame.reset_index(drop=True)


def test_features_of_shipments_created_by_the_cutoff_ignore_later_events(builds: Builds):
    full, cut = _features(builds.full), _features(builds.cut)
    early = full[full["created_at"] <= builds.cutoff].reset_index(drop=True)
    assert len(early) > 500 and len(full) > len(early)
    assert cut["shipment_id"].tolist() == early["shipment_id"].tolist()
    features = [c for c in full.columns if c not in LABELS]
    pd.testing.assert_frame_equal(cut[features], early[features])
    # the comparison is not one of empty history: most rows after the first week have it
    later = early[early["created_at"] >= early["created_at"].min() + timedelta(days=4)]
    assert later["lane_late_rate_28d"].notna().mean() > 0.9
    assert later["origin_late_rate_28d"].notna().mean() > 0.9
    assert (later["origin_created_prev_day"] > 0).mean() > 0.9


def test_the_cutoff_removed_what_happened_to_those_shipments_later(builds: Builds):
    """The truncated warehouse really knows less about the same shipments (so the equality
    above is a test): their outcomes moved on after the cutoff."""
    sql = "select shipment_id, current_status, delivered_at from gold.fact_shipment"
    full = read_gold(builds.full, sql).set_index("shipment_id")
    cut = read_gold(builds.cut, sql).set_index("shipment_id")
    early = _features(builds.cut)["shipment_id"]
    moved = (full.loc[early, "current_status"] != cut.loc[early, "current_status"]).sum()
    assert moved > 50


def test_labels_are_known_only_once_delivered(builds: Builds):
    full = _features(builds.full).set_index("shipment_id")
    cut = _features(builds.cut).set_index("shipment_id")
    known = cut[cut["label_is_late"].notna()]
    assert len(known) > 300
    assert (known["label_known_at"] <= builds.cutoff).all()
    assert (known["label_known_at"] > known["created_at"]).all()
    assert known["label_is_late"].tolist() == full.loc[known.index, "label_is_late"].tolist()
    early = full.loc[cut.index]
    known_by_then = early[early["label_known_at"] <= builds.cutoff]
    assert set(known_by_then.index) == set(known.index)
    assert cut["label_known_at"].isna().equals(cut["label_is_late"].isna())


def test_distance_and_label_agree_with_the_simulator_truth(builds: Builds):
    table = read_truth(builds.truth_dir, SHIPMENT_DELAY)
    assert table is not None
    truth = table.to_pandas().set_index("shipment_id")
    features = _features(builds.full).set_index("shipment_id")
    assert set(features.index) <= set(truth.index)
    assert len(features) > 0.95 * len(truth)
    rows = truth.loc[features.index]
    # the SQL's state points are the simulator's (to the 0.1 km the feature is rounded to)
    assert (features["distance_km"] - rows["distance_km"]).abs().max() <= 0.051
    assert (features["destination_state"] == rows["destination_state"]).all()
    assert (features["distance_km"] > 0).sum() > 100
    labelled = features[features["label_is_late"].notna()]
    assert (
        labelled["label_is_late"].astype(bool).tolist()
        == rows.loc[labelled.index, "is_late"].tolist()
    )


def _guard(project_yml: dict[str, Any]) -> dict[str, Any]:
    (model,) = [m for m in project_yml["models"] if m["name"] == MODEL]
    (test,) = [t for t in model["data_tests"] if "pf_no_label_leak" in t]
    return test["pf_no_label_leak"]["arguments"]


def test_the_leakage_guard_covers_every_numeric_feature(builds: Builds):
    spec = yaml.safe_load((runner.PROJECT_DIR / MODEL_DIR / f"{MODEL}.yml").read_text())
    arguments = _guard(spec)
    assert arguments["binary"] is True
    guarded = set(arguments["features"])
    types = read_gold(
        builds.full,
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = 'gold' and table_name = '{MODEL}'",
    )
    numeric = {
        name
        for name, kind in zip(types["column_name"], types["data_type"], strict=True)
        if kind.upper().startswith(("DECIMAL", "DOUBLE", "FLOAT", "INTEGER", "BIGINT", "HUGEINT"))
        and not name.startswith("label_")
    }
    booleans = {
        name
        for name, kind in zip(types["column_name"], types["data_type"], strict=True)
        if kind.upper() == "BOOLEAN" and not name.startswith("label_")
    }
    assert numeric and booleans == {"cold_chain"}
    assert numeric <= guarded
    assert "case when cold_chain then 1 when not cold_chain then 0 end" in guarded
    assert not any("label_" in feature for feature in guarded)


def _leaky_project(project: Path) -> None:
    """The project with one more feature: the hours a shipment arrived after its promise,
    taken from the delivery (known only with the label), listed under the guard."""
    sql = project / MODEL_DIR / f"{MODEL}.sql"
    sql.write_text(
        "with honest as (\n"
        + sql.read_text()
        + "\n)\nselect honest.*,\n"
        + "    {{ pf_hours_between('honest.created_at', 'fact.delivered_at') }}"
        + " - honest.promised_transit_hours as delivery_slack_hours\n"
        + "from honest\n"
        + "left join {{ ref('fact_shipment') }} as fact on fact.shipment_id = honest.shipment_id\n"
    )
    yml = project / MODEL_DIR / f"{MODEL}.yml"
    spec = yaml.safe_load(yml.read_text())
    _guard(spec)["features"].append("delivery_slack_hours")
    (model,) = [m for m in spec["models"] if m["name"] == MODEL]
    model["columns"].append({"name": "delivery_slack_hours", "description": "A leak."})
    yml.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_feature_carrying_the_label_in_disguise_fails_the_guard(
    builds: Builds, tmp_path: Path
) -> None:
    """The real dbt test on the real model, in a copy of the built warehouse: the model with
    one disguised label column builds, and the guard fails naming that column only."""
    copy, project = leaky_copy(builds.full, tmp_path / "leaky")
    _leaky_project(project)
    res, results = build_model(copy, project, MODEL)
    assert str(results[MODEL].status) == "success"  # the leaky model itself builds
    guards = [r for name, r in results.items() if name.startswith("pf_no_label_leak")]
    assert len(guards) == 1 and str(guards[0].status) == "fail"
    assert guards[0].failures == 1
    assert not res.success
    other = [r for r in results.values() if r not in guards and str(r.status) == "fail"]
    assert other == []
    found = failing_columns(copy, guards[0])
    assert [row[0] for row in found] == ["delivery_slack_hours"]
    assert found[0][1] > 0.99  # its AUC: it separates late from on-time almost perfectly
