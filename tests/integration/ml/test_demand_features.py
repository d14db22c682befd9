"""gold.ml_demand_features is point-in-time correct, fills days without sales with zero, and its
leakage guard fails the build of a feature that carries a label in disguise.

Point in time: one small simulated input (faults on) is built whole, and again with every
event stamped after a cutoff removed from the file (what the warehouse would have held at the
cutoff). Every feature of every row whose origin day was complete by the cutoff must be the
same in both: a feature that used a later sale would change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pharmaflow.config import Settings
from pharmaflow.ml import demand
from pharmaflow.simulate.simulator import simulate
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

MODEL = "ml_demand_features"
LABELS = ("label_units_h7", "label_units_h28")
# from the window's start: the evening of day 9 at the eastern pharmacies (02:30 UTC on day
# 10) is cut, so day 9 is the cut warehouse's open day and day 8 its last complete one
CUTOFF_AFTER = timedelta(days=10, hours=2, minutes=30)


@dataclass(frozen=True)
class Builds:
    start: datetime
    cutoff: datetime
    full: Settings
    cut: Settings


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    folder = tmp_path_factory.mktemp("demand-features")
    config = ml_config(days=14, scale=0.1, seed=9)
    events = folder / "events.jsonl"
    full = ml_settings(folder / "full")
    simulate(config, events, truth_dir=full.truth_dir)
    start = datetime(config.start.year, config.start.month, config.start.day)
    cutoff = start + CUTOFF_AFTER
    truncated = folder / "before-cutoff.jsonl"
    truncated.write_bytes(b"".join(at_or_before(events.read_bytes().splitlines(True), cutoff)))
    cut = ml_settings(folder / "cut")
    build_from(full, events)
    build_from(cut, truncated)
    return Builds(start, cutoff, full, cut)


def _features(settings: Settings) -> pd.DataFrame:
    frame = read_gold(
        settings, f"select * from gold.{MODEL} order by pharmacy_id, ndc, origin_date"
    )
    frame["origin_date"] = pd.to_datetime(frame["origin_date"])
    return frame.reset_index(drop=True)


def _daily(settings: Settings) -> pd.DataFrame:
    frame = read_gold(
        settings,
        "select business_date as sale_date, pharmacy_id, ndc, units "
        "from gold.fact_sales_daily_local",
    )
    frame["sale_date"] = pd.to_datetime(frame["sale_date"])
    return frame


def test_features_of_days_complete_by_the_cutoff_ignore_later_sales(builds: Builds) -> None:
    full, cut = _features(builds.full), _features(builds.cut)
    last_complete = cut["origin_date"].max()
    assert last_complete == pd.Timestamp(builds.start + timedelta(days=8))
    early = full[full["origin_date"] <= last_complete].reset_index(drop=True)
    assert len(full) > len(early) > 3_000
    features = [c for c in full.columns if c not in LABELS]
    pd.testing.assert_frame_equal(cut[features], early[features])
    # the comparison is not one of empty history: after the first week the windows are full
    later = early[early["origin_date"] >= early["origin_date"].min() + timedelta(days=7)]
    assert later["units_mean_7d"].notna().all() and later["units_lag7"].notna().all()
    assert (later["units_mean_7d"] > 0).mean() > 0.95
    assert later["promo_share_7d"].notna().mean() > 0.95
    assert later["product_units_mean_7d"].notna().all()


def test_the_cutoff_removed_sales_those_rows_would_have_seen(builds: Builds) -> None:
    """The truncated warehouse really knows less (so the equality above is a test): the
    day after its last complete one has fewer units than in the full warehouse."""
    open_day = builds.start + timedelta(days=9)
    full, cut = _daily(builds.full), _daily(builds.cut)
    assert cut["sale_date"].max() == pd.Timestamp(open_day)
    on = pd.Timestamp(open_day)
    assert (
        cut.loc[cut["sale_date"] == on, "units"].sum()
        < full.loc[full["sale_date"] == on, "units"].sum()
    )
    assert full["sale_date"].max() > on + timedelta(days=3)


def test_labels_are_the_target_days_units_null_until_that_day_is_complete(builds: Builds):
    for settings in (builds.full, builds.cut):
        rows, daily = _features(settings), _daily(settings)
        last_complete = daily["sale_date"].max() - timedelta(days=1)
        assert rows["origin_date"].max() == last_complete  # the newest day is left out
        units = daily.set_index(["pharmacy_id", "ndc", "sale_date"])["units"]
        for h in demand.HORIZONS:
            target = rows["origin_date"] + timedelta(days=h)
            assert (rows[f"target_date_h{h}"].astype("datetime64[ns]") == target).all()
            known = target <= last_complete
            expected = pd.Series(
                units.reindex(list(zip(rows["pharmacy_id"], rows["ndc"], target, strict=True)))
                .fillna(0)
                .to_numpy(),
                index=rows.index,
            )
            label = rows[f"label_units_h{h}"]
            assert label[~known].isna().all()
            assert (label[known] == expected[known]).all()
            # two weeks of data: next week's units are known for the first days, 28 days
            # ahead never
            assert known.any() == (h == 7)
    full, cut = _features(builds.full), _features(builds.cut)
    merged = cut.merge(full, on=["pharmacy_id", "ndc", "origin_date"], suffixes=("_cut", ""))
    for name in LABELS:
        known = merged[f"{name}_cut"].notna()
        assert (merged.loc[known, f"{name}_cut"] == merged.loc[known, name]).all()


def test_days_without_sales_are_rows_with_zero_units(builds: Builds) -> None:
    rows, daily = _features(builds.full), _daily(builds.full)
    last_complete = rows["origin_date"].max()
    daily = daily[daily["sale_date"] <= last_complete]
    first = daily.groupby(["pharmacy_id", "ndc"])["sale_date"].min()
    expected_rows = int(((last_complete - first).dt.days + 1).sum())
    assert len(rows) == expected_rows
    assert not rows.duplicated(["pharmacy_id", "ndc", "origin_date"]).any()
    zero = rows["units_d0"] == 0
    assert zero.any()
    assert rows["units_d0"].sum() == daily["units"].sum()
    # the weekday of both targets is the origin's (ISO, Monday = 1)
    assert (rows["target_day_of_week"] == rows["origin_date"].dt.day_of_week + 1).all()
    # a 7-day mean is the mean of the seven days, zero days included
    pair = rows[
        (rows["pharmacy_id"] == rows["pharmacy_id"].iloc[0]) & (rows["ndc"] == rows["ndc"].iloc[0])
    ].set_index("origin_date")
    day = pair.index[-1]
    window = pair.loc[day - timedelta(days=6) : day, "units_d0"]
    assert len(window) == 7
    assert float(pair.loc[day, "units_mean_7d"]) == pytest.approx(window.mean(), abs=1e-4)


def _guards(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (model,) = [m for m in spec["models"] if m["name"] == MODEL]
    found = [
        t["pf_no_label_leak"]["arguments"] for t in model["data_tests"] if "pf_no_label_leak" in t
    ]
    return {arguments["label"]: arguments for arguments in found}


def test_the_leakage_guard_covers_every_numeric_feature_against_both_labels(builds: Builds):
    spec = yaml.safe_load((runner.PROJECT_DIR / MODEL_DIR / f"{MODEL}.yml").read_text())
    guards = _guards(spec)
    assert set(guards) == set(LABELS)
    types = read_gold(
        builds.full,
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = 'gold' and table_name = '{MODEL}'",
    )
    numeric = {
        name
        for name, kind in zip(types["column_name"], types["data_type"], strict=True)
        if kind.upper().startswith(("DECIMAL", "DOUBLE", "INTEGER", "BIGINT", "HUGEINT"))
        and not name.startswith("label_")
    }
    assert numeric == set(demand.FEATURES)
    for arguments in guards.values():
        assert set(arguments["features"]) == numeric
        assert not arguments.get("binary", False)


def _leaky_project(project: Path) -> None:
    """The project with one more feature that looks like history but hides next week's
    units (the h7 label plus a little of today's), listed under the h7 guard."""
    sql = project / MODEL_DIR / f"{MODEL}.sql"
    sql.write_text(
        "with honest as (\n"
        + sql.read_text()
        + "\n)\nselect honest.*,\n"
        + "    honest.label_units_h7 + mod(honest.units_d0, 3) as units_weekday_outlook\n"
        + "from honest\n"
    )
    yml = project / MODEL_DIR / f"{MODEL}.yml"
    spec = yaml.safe_load(yml.read_text())
    _guards(spec)["label_units_h7"]["features"].append("units_weekday_outlook")
    (model,) = [m for m in spec["models"] if m["name"] == MODEL]
    model["columns"].append({"name": "units_weekday_outlook", "description": "A leak."})
    yml.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_feature_carrying_the_label_in_disguise_fails_the_guard(
    builds: Builds, tmp_path: Path
) -> None:
    """The real dbt test on the real model, in a copy of the built warehouse: the model with
    one disguised label column builds, the h7 guard fails naming that column only, and the
    h28 guard (which does not list it) passes."""
    copy, project = leaky_copy(builds.full, tmp_path / "leaky")
    _leaky_project(project)
    res, results = build_model(copy, project, MODEL)
    assert str(results[MODEL].status) == "success"  # the leaky model itself builds
    guards = {name: r for name, r in results.items() if name.startswith("pf_no_label_leak")}
    assert len(guards) == 2
    failed = [r for r in guards.values() if str(r.status) == "fail"]
    assert len(failed) == 1 and failed[0].failures == 1
    assert not res.success
    other = [r for r in results.values() if r not in failed and str(r.status) == "fail"]
    assert other == []
    found = failing_columns(copy, failed[0])
    assert [row[0] for row in found] == ["units_weekday_outlook"]
    assert found[0][2] > 0.95  # its Pearson correlation with the h7 label
