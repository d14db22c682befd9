"""The shipment-delay ground truth: one row per shipment, reproducible, its probability the
stated logistic model of its drivers, and the lateness in the events drawn from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pharmaflow.contracts.reference import load_reference
from pharmaflow.simulate import SimConfig, simulate
from pharmaflow.simulate import logistics as lg
from pharmaflow.simulate.simulator import generate
from pharmaflow.simulate.truth import SHIPMENT_DELAY, read_truth
from tests.unit.simulate.conftest import CLEAN, NO_FAULTS, Run, epoch_ms

# Four weeks at a quarter scale: about 7,700 shipments, enough to check rates statistically.
MONTH = SimConfig(seed=11, days=28, scale=0.25, **NO_FAULTS)
DRIVERS = (
    "carrier_id",
    "service_level",
    "cold_chain",
    "origin_facility_id",
    "origin_state",
    "destination_state",
    "distance_km",
    "pickup_weekday",
)
EFFECTS = (
    "carrier_effect",
    "service_level_effect",
    "weekday_effect",
    "cold_chain_effect",
    "origin_effect",
    "distance_effect",
)


@pytest.fixture(scope="module")
def clean_with_truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("delay-truth")
    path = folder / "events.jsonl"
    stats = simulate(CLEAN, path, truth_dir=folder / "truth")
    table = read_truth(folder / "truth", SHIPMENT_DELAY)
    assert table is not None
    return Run(CLEAN, path, stats, path.read_bytes().splitlines()), table.to_pandas()


@pytest.fixture(scope="module")
def month() -> pd.DataFrame:
    return generate(MONTH).truth.table(SHIPMENT_DELAY).to_pandas()


def test_writing_the_truth_leaves_the_events_as_they_were(
    clean_with_truth: tuple[Run, pd.DataFrame], clean_run: Run
) -> None:
    run, _ = clean_with_truth
    assert run.lines == clean_run.lines
    assert b"late_probability" not in run.path.read_bytes()


def test_one_row_per_shipment_with_every_driver(clean_with_truth: tuple[Run, pd.DataFrame]):
    run, truth = clean_with_truth
    created = {e["payload"]["shipment_id"]: e for e in run.of_type("logistics.shipment.created")}
    assert len(truth) == truth["shipment_id"].nunique() == len(created) > 300
    assert set(truth["shipment_id"]) == set(created)
    required = [c for c in DRIVERS if c != "distance_km"]  # null only for an unknown state
    assert truth[[*required, *EFFECTS, "late_probability", "is_late", "lost"]].notna().all().all()
    assert truth["distance_km"].notna().all()  # the reference's states are all known
    # the drivers are those of the created events
    for row in truth.sample(200, random_state=0).itertuples():
        payload = created[row.shipment_id]["payload"]
        assert (row.carrier_id, row.service_level, row.cold_chain, row.origin_facility_id) == (
            payload["carrier_id"],
            payload["service_level"],
            payload["cold_chain"],
            payload["origin_facility_id"],
        )


def test_destination_and_pickup_day_are_those_of_the_events(
    clean_with_truth: tuple[Run, pd.DataFrame],
) -> None:
    run, truth = clean_with_truth
    reference = load_reference()
    state = {f.facility_id: f.state for f in reference.facilities}
    patient_state = {
        e["payload"]["order_id"]: e["payload"]["patient"]["address"]["state"]
        for e in run.of_type("pharmacy.order.placed")
    }
    pickup = {
        e["payload"]["shipment_id"]: epoch_ms(e["event_time"])
        for e in run.of_type("logistics.shipment.scanned")
        if e["payload"]["status"] == "PICKED_UP"
    }
    by_id = truth.set_index("shipment_id")
    for e in run.of_type("logistics.shipment.created"):
        p = e["payload"]
        row = by_id.loc[p["shipment_id"]]
        expected = (
            state[p["destination_facility_id"]]
            if "destination_facility_id" in p
            else patient_state[p["order_id"]]
        )
        assert row["destination_state"] == expected
        assert row["origin_state"] == state[p["origin_facility_id"]]
        if p["shipment_id"] in pickup:  # else collected after the window's end
            day = lg.weekday(pickup[p["shipment_id"]] - 6 * lg.HOUR_MS)
            assert row["pickup_weekday"] == day
    assert len(pickup) > 0.9 * len(truth)


def test_the_probability_is_the_stated_logistic_model(
    clean_with_truth: tuple[Run, pd.DataFrame],
) -> None:
    _, truth = clean_with_truth
    reference = load_reference()
    rates = lg.carrier_late_rates(CLEAN, reference)
    model = lg.DelayModel.build(CLEAN, reference, rates)
    ref_logit = math.log(lg.CARRIER_REFERENCE_RATE / (1 - lg.CARRIER_REFERENCE_RATE))
    carrier = truth["carrier_id"].map(lambda c: math.log(rates[c] / (1 - rates[c])) - ref_logit)
    np.testing.assert_allclose(truth["carrier_effect"], carrier)
    np.testing.assert_allclose(
        truth["service_level_effect"], truth["service_level"].map(lg.SERVICE_LEVEL_EFFECT)
    )
    np.testing.assert_allclose(
        truth["weekday_effect"], truth["pickup_weekday"].map(lambda d: lg.WEEKDAY_EFFECT[d])
    )
    np.testing.assert_allclose(
        truth["cold_chain_effect"], truth["cold_chain"].astype(float) * lg.COLD_CHAIN_EFFECT
    )
    np.testing.assert_allclose(
        truth["origin_effect"], truth["origin_facility_id"].map(model.origin_effect)
    )
    distances = [
        lg.state_distance_km(a, b)
        for a, b in zip(truth["origin_state"], truth["destination_state"], strict=True)
    ]
    np.testing.assert_allclose(truth["distance_km"], distances)
    np.testing.assert_allclose(
        truth["distance_effect"], truth["distance_km"] * lg.DISTANCE_EFFECT_PER_1000_KM / 1000
    )
    logit = lg.DELAY_INTERCEPT + truth[list(EFFECTS)].sum(axis=1)
    np.testing.assert_allclose(truth["intercept"], lg.DELAY_INTERCEPT)
    np.testing.assert_allclose(truth["logit"], logit)
    np.testing.assert_allclose(truth["late_probability"], 1 / (1 + np.exp(-logit)))
    # every driver varies, so each one's effect is visible in the data
    for column in EFFECTS:
        assert truth[column].nunique() > 1, column


def test_the_events_are_late_exactly_where_the_truth_drew_late(
    clean_with_truth: tuple[Run, pd.DataFrame],
) -> None:
    run, truth = clean_with_truth
    promised = {
        e["payload"]["shipment_id"]: epoch_ms(e["payload"]["promised_delivery_time"])
        for e in run.of_type("logistics.shipment.created")
    }
    delivered = {
        e["payload"]["shipment_id"]: epoch_ms(e["event_time"])
        for e in run.of_type("logistics.shipment.delivered")
    }
    late_in_events = {s: delivered[s] > promised[s] for s in delivered}
    by_id = truth.set_index("shipment_id")
    # every shipment delivered in the window was not lost (the rest arrive after its end)
    assert set(delivered) <= set(by_id.index[~by_id["lost"]])
    assert len(delivered) > 0.6 * len(by_id) and not by_id.loc[list(delivered), "lost"].any()
    assert all(late_in_events[s] == by_id.loc[s, "is_late"] for s in delivered)
    # DELAY exceptions are raised on late shipments only
    delay_exceptions = {
        e["payload"]["shipment_id"]
        for e in run.of_type("logistics.shipment.exception")
        if e["payload"]["exception_code"] == "DELAY"
    }
    assert delay_exceptions and all(by_id.loc[s, "is_late"] for s in delay_exceptions)


def test_the_truth_is_reproducible_and_depends_on_the_seed(month: pd.DataFrame) -> None:
    again = generate(MONTH).truth.table(SHIPMENT_DELAY).to_pandas()
    pd.testing.assert_frame_equal(month, again)
    other = generate(MONTH.model_copy(update={"seed": 12, "days": 7})).truth
    other_effects = other.table(SHIPMENT_DELAY).to_pandas().groupby("origin_facility_id")
    mine = month.groupby("origin_facility_id")["origin_effect"].first()
    theirs = other_effects["origin_effect"].first()
    assert not np.allclose(mine.loc[theirs.index], theirs)


def test_empirical_late_rates_follow_the_true_probability(month: pd.DataFrame) -> None:
    """Observed late shares match the mean true probability overall and per probability
    quintile, within four binomial standard errors; the share stays about one in ten."""
    p, y = month["late_probability"].to_numpy(), month["is_late"].to_numpy(dtype=float)
    assert 0.07 < y.mean() < 0.15
    se = math.sqrt((p * (1 - p)).sum()) / len(p)
    assert abs(y.mean() - p.mean()) < 4 * se
    quintile = pd.qcut(month["late_probability"], 5, labels=False)
    rates = []
    for q in range(5):
        pq_, yq = p[quintile == q], y[quintile == q]
        se_q = math.sqrt((pq_ * (1 - pq_)).sum()) / len(pq_)
        assert abs(yq.mean() - pq_.mean()) < 4 * se_q, q
        rates.append(yq.mean())
    assert rates == sorted(rates) and rates[-1] > 2.5 * rates[0]


@pytest.mark.parametrize(
    ("driver", "high", "low"),
    [
        ("pickup_weekday", 4, 1),  # Friday pickups spend the weekend in the network
        ("cold_chain", True, False),
    ],
)
def test_a_driver_with_a_larger_effect_is_late_more_often(
    month: pd.DataFrame, driver: str, high: object, low: object
) -> None:
    rate = month.groupby(driver)["is_late"].mean()
    assert rate[high] > 1.3 * rate[low]


def test_unknown_states_add_no_distance() -> None:
    assert lg.state_distance_km("MA", "MA") == 0
    assert lg.state_distance_km("MA", None) is None
    assert lg.state_distance_km("ZZ", "MA") is None
    # Boston to Los Angeles state points: roughly 4,000 km
    assert 3600 < (lg.state_distance_km("MA", "CA") or 0) < 4300
