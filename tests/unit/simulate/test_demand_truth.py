"""The sales the simulator writes are drawn from the demand model its truth tables describe,
and that model has the confounding the elasticity estimator must undo (simulate/sales.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pytest

from pharmaflow.contracts.reference import load_reference
from pharmaflow.simulate import SimConfig, generate, sales
from pharmaflow.simulate.clock import utc_offset_minutes
from pharmaflow.simulate.config import DAY_MS, MINUTE_MS
from pharmaflow.simulate.truth import DEMAND, ELASTICITY
from tests.unit.simulate.conftest import NO_FAULTS

WINDOW = SimConfig(seed=4, days=14, scale=0.1, start=date(2026, 3, 2), **NO_FAULTS)


@dataclass(frozen=True)
class Window:
    config: SimConfig
    sales: pd.DataFrame  # one row per sale event, with its pharmacy's local business day
    demand: pd.DataFrame  # the truth
    elasticity: pd.DataFrame


@pytest.fixture(scope="module")
def window() -> Window:
    out = generate(WINDOW)
    reference = load_reference()
    offset = {p.facility_id: utc_offset_minutes(p.state) for p in reference.pharmacies}
    rows = []
    for block in out.table.blocks:
        if block.event_type != "sales.sale.completed":
            continue
        frame = pd.DataFrame(block.payloads)
        frame["time"] = block.times
        rows.append(frame)
    sold = pd.concat(rows, ignore_index=True)
    local_ms = sold["time"] + sold["pharmacy_id"].map(offset) * MINUTE_MS
    sold["sale_date"] = pd.to_datetime(local_ms // DAY_MS, unit="D")
    demand = out.truth.table(DEMAND).to_pandas()
    demand["sale_date"] = pd.to_datetime(demand["sale_date"])
    return Window(WINDOW, sold, demand, out.truth.table(ELASTICITY).to_pandas())


def test_the_truth_covers_every_pharmacy_product_and_day(window: Window) -> None:
    reference = load_reference()
    n_pharmacies, n_products = len(reference.pharmacies), len(reference.products)
    assert len(window.demand) == n_pharmacies * n_products * WINDOW.days
    assert not window.demand.duplicated(["sale_date", "pharmacy_id", "ndc"]).any()
    assert window.demand["sale_date"].nunique() == WINDOW.days
    assert sorted(window.elasticity["ndc"]) == sorted(p.ndc for p in reference.products)
    e = np.sort(window.elasticity["elasticity"].to_numpy())
    low, high = sales.ELASTICITY_RANGE
    assert e[0] == pytest.approx(low) and e[-1] == pytest.approx(high)
    assert np.all(np.diff(e) > 0.05)  # spread over the range, one per product
    uplift = window.elasticity["promotion_uplift"]
    assert uplift.between(*sales.UPLIFT_RANGE).all()
    assert (window.demand["expected_units"] > 0).all()


def test_prices_and_promotion_codes_in_the_events_are_the_truth(window: Window) -> None:
    keys = ["sale_date", "pharmacy_id", "ndc"]
    joined = window.sales.merge(window.demand, on=keys, how="left", suffixes=("", "_truth"))
    assert joined["expected_units"].notna().all()
    assert (joined["unit_price"] == joined["unit_price_truth"]).all()
    code = joined["promotion_code"].fillna("")
    assert (code == joined["promotion_code_truth"]).all()
    assert (code != "").eq(joined["promoted"]).all()
    discount = 1 - joined["unit_price"] / (joined["list_price"] * joined["shelf_factor"])
    assert np.allclose(discount, joined["discount_pct"] / 100, atol=0.01)


def test_units_sold_follow_the_expected_units(window: Window) -> None:
    keys = ["sale_date", "pharmacy_id", "ndc"]
    # the last day's evening is cut by the window's end
    complete = window.demand[window.demand["sale_date"] < window.demand["sale_date"].max()]
    units = window.sales.groupby(keys)["quantity"].sum().rename("units")
    cells = complete.merge(units, on=keys, how="left").fillna({"units": 0})
    total = cells["units"].sum() / cells["expected_units"].sum()
    assert total == pytest.approx(1.0, abs=0.03)
    # and cell by cell: in every decile of the expected units, the mean sold matches
    decile = pd.qcut(cells["expected_units"], 10, labels=False)
    means = cells.groupby(decile)[["units", "expected_units"]].mean()
    ratio = means["units"] / means["expected_units"]
    assert ratio.between(0.85, 1.15).all(), ratio


def test_expected_units_are_the_product_of_the_factors(window: Window) -> None:
    d = window.demand.merge(window.elasticity, on="ndc", suffixes=("", "_product"))
    price_term = (d["unit_price"] / d["list_price"]) ** d["elasticity"]
    uplift = np.where(d["promoted"], d["promotion_uplift"], 1.0)
    rebuilt = (
        d["base_units"]
        * d["pharmacy_factor"]
        * d["weekday_factor"]
        * d["trend_factor"]
        * d["season_factor"]
        * uplift
        * price_term
    )
    np.testing.assert_allclose(d["expected_units"], rebuilt, rtol=1e-9)


def test_promotions_cluster_in_high_season_and_prices_move_within_weeks(window: Window) -> None:
    d = window.demand
    promoted = d[d["promoted"]]
    assert 0.1 < d["promoted"].mean() < 0.5
    # the confounding: promoted product-days are high-season days
    assert promoted["season_factor"].mean() > 1.1 * d.loc[~d["promoted"], "season_factor"].mean()
    # chain-wide: a promoted product is promoted at every pharmacy that day
    per_day = d.groupby(["ndc", "sale_date"])["promoted"].agg(["min", "max"])
    assert (per_day["min"] == per_day["max"]).all()
    # shelf prices differ between pharmacies on a day and change on any weekday
    spread = np.log(d["shelf_factor"]).groupby([d["ndc"], d["sale_date"]]).std()
    assert spread.mean() > 0.25
    ordered = d.sort_values(["pharmacy_id", "ndc", "sale_date"])
    changed = ordered.groupby(["pharmacy_id", "ndc"])["shelf_factor"].diff().fillna(0) != 0
    weekdays = ordered.loc[changed, "sale_date"].dt.day_of_week
    assert weekdays.nunique() == 7 and (weekdays != 0).mean() > 0.75


def test_a_naive_log_log_fit_of_the_true_demand_is_visibly_wrong(window: Window) -> None:
    """Even on the expected units (no sampling noise), the chain's daily demand against its
    mean price confounds the price with the season and the promotion uplift."""
    d = window.demand.assign(revenue=lambda x: x["expected_units"] * x["unit_price"])
    daily = d.groupby(["ndc", "sale_date"])[["expected_units", "revenue"]].sum()
    errors = []
    truth = window.elasticity.set_index("ndc")["elasticity"]
    for ndc, day in daily.groupby(level="ndc"):
        slope = np.polyfit(
            np.log(day["revenue"] / day["expected_units"]), np.log(day["expected_units"]), 1
        )[0]
        errors.append(slope - truth[ndc])
    errors = np.array(errors)
    assert np.mean(errors) < -0.4  # far more elastic than the truth
    assert np.mean(np.abs(errors) > 0.2) > 0.8


def test_the_demand_model_depends_on_the_seed_only() -> None:
    a = sales.world(WINDOW, 20, 25)
    later = sales.world(WINDOW.model_copy(update={"start": date(2027, 1, 4), "days": 63}), 20, 25)
    other = sales.world(WINDOW.model_copy(update={"seed": 5}), 20, 25)
    np.testing.assert_array_equal(a.elasticity, later.elasticity)
    np.testing.assert_array_equal(a.uplift, later.uplift)
    np.testing.assert_array_equal(a.size, later.size)
    assert not np.array_equal(a.elasticity, other.elasticity)


def test_the_ml_window_sells_at_a_modest_volume() -> None:
    """tests/ml_data.py's window (63 days at scale 0.25): enough sales to learn from, about
    150k events at most, computed from the demand model without drawing the events."""
    config = SimConfig(seed=7, days=63, scale=0.25, start=date(2026, 1, 5))
    reference = load_reference()
    prices = np.array([float(p.list_price) for p in reference.products])
    world = sales.world(config, len(prices), len(reference.pharmacies))
    calendar = sales.calendar(config, world, prices, np.random.default_rng(0))
    expected_sales = calendar.expected.sum() / sales.QUANTITIES.mean()
    assert 100_000 < expected_sales < 170_000
