"""The drift check is calibrated for the batch size, finds real shifts, survives hostile
input, and its alert reaches a real HTTP receiver through the alert outbox.

The calibration test is the one that matters: batches drawn from the SAME distribution as
the reference must fire about alpha of the time per feature, at 30 rows as at 2,000. A fixed
PSI threshold fails exactly that (the PSI test below shows it firing on most identical
30-row batches)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from pharmaflow.ml.drift import MIN_EFFECT, DriftReport, check_drift, raise_drift_alert
from pharmaflow.realtime.alerts import IncidentStore, list_incidents
from pharmaflow.realtime.alerts.rules import AlertRules
from pharmaflow.realtime.db import Database
from tests.ml_data import ml_settings
from tests.receiver import Receiver

FEATURES = ["normal", "lognormal_nulls", "count", "carrier"]
CARRIERS = list("ABCDEF")
CARRIER_SHARES = [0.4, 0.25, 0.15, 0.1, 0.07, 0.03]
ALPHA = 0.05
REPEATS = 150


def draw(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """One batch: a continuous feature, a skewed one with 5% nulls, a count (few levels: the
    discrete test) and a categorical."""
    skewed = rng.lognormal(size=n)
    skewed[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "normal": rng.normal(10, 2, n),
            "lognormal_nulls": skewed,
            "count": rng.poisson(3, n),
            "carrier": rng.choice(CARRIERS, n, p=CARRIER_SHARES),
        }
    )


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """The population stability index on reference deciles (empty bins floored at 1e-4)."""
    edges = np.quantile(reference, np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.clip(np.histogram(reference, edges)[0] / len(reference), 1e-4, None)
    actual = np.clip(np.histogram(current, edges)[0] / len(current), 1e-4, None)
    return float(((actual - expected) * np.log(actual / expected)).sum())


@pytest.mark.parametrize("batch", [30, 2000])
def test_identical_batches_fire_at_about_alpha_whatever_the_batch_size(batch: int) -> None:
    rng = np.random.default_rng(batch)
    rejected = trials = families = 0
    for repeat in range(REPEATS):
        reference, current = draw(rng, 2000), draw(rng, batch)
        report = check_drift(reference, current, FEATURES, alpha=ALPHA, min_effect=0, seed=repeat)
        rows = report.rows
        rejected += int((rows["p_value"] < ALPHA).sum())  # each test at level alpha
        trials += len(rows)
        floored = (rows["p_value"] < rows["threshold"]) & (rows["effect"] >= MIN_EFFECT)
        families += bool(floored.any())  # the report as shipped: Bonferroni and the floor
    rate = rejected / trials
    sd = (ALPHA * (1 - ALPHA) / trials) ** 0.5
    # measured here: 0.060 (30 rows), 0.048 (2,000 rows); over 1,000 repeats 0.052 and 0.053.
    # A check blind to the batch size (a fixed PSI threshold) fires on most 30-row batches.
    assert ALPHA - 3.5 * sd <= rate <= ALPHA + 3.5 * sd, rate
    family_sd = (ALPHA * (1 - ALPHA) / REPEATS) ** 0.5
    assert families / REPEATS <= ALPHA + 3 * family_sd


def test_a_fixed_psi_threshold_fires_on_most_identical_small_batches() -> None:
    """Why the check is not `PSI > 0.2`: the same identical 30-row batches as above."""
    rng = np.random.default_rng(30)
    fired = 0
    for _ in range(REPEATS):
        reference, current = draw(rng, 2000), draw(rng, 30)
        fired += psi(reference["normal"].to_numpy(), current["normal"].to_numpy()) > 0.2
    assert fired / REPEATS > 0.5


def test_a_real_shift_in_each_kind_of_feature_is_found() -> None:
    rng = np.random.default_rng(1)
    reference, current = draw(rng, 5000), draw(rng, 300)
    current["normal"] += 1.0  # half a standard deviation
    current["count"] = rng.poisson(4, len(current))
    current["carrier"] = rng.choice(CARRIERS, len(current), p=CARRIER_SHARES[::-1])
    report = check_drift(reference, current, FEATURES, alpha=0.01)
    assert sorted(report.drifted) == ["carrier", "count", "normal"]
    rows = report.rows.set_index("feature")
    assert rows.loc["normal", "kind"] == "continuous"
    assert rows.loc["count", "kind"] == "discrete"
    assert rows.loc["carrier", "kind"] == "categorical"
    assert (rows["threshold"] == 0.01 / 4).all()  # Bonferroni over the four features
    assert not rows.loc["lognormal_nulls", "drifted"]


def test_a_new_category_level_and_a_jump_in_nulls_are_drift() -> None:
    rng = np.random.default_rng(2)
    reference, current = draw(rng, 3000), draw(rng, 200)
    current.loc[current.index[:60], "carrier"] = "Z"  # never seen in training
    current.loc[current.index[:80], "lognormal_nulls"] = np.nan  # 5% -> about 40% missing
    report = check_drift(reference, current, FEATURES, alpha=0.01)
    rows = report.rows.set_index("feature")
    assert sorted(report.drifted) == ["carrier", "lognormal_nulls"]
    assert rows.loc["carrier", "new_levels"] == 1
    assert rows.loc["lognormal_nulls", "missing_current"] >= 0.4
    assert rows.loc["lognormal_nulls", "missing_reference"] < 0.1


def test_a_tiny_shift_in_a_huge_batch_is_significant_but_under_the_effect_floor() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    current = pd.DataFrame({"x": rng.normal(0.05, 1, 200_000)})
    row = check_drift(reference, current, ["x"], alpha=0.01).rows.iloc[0]
    assert row["p_value"] < row["threshold"]  # the test sees it ...
    assert row["effect"] < MIN_EFFECT and not row["drifted"]  # ... but it is too small
    assert check_drift(reference, current, ["x"], alpha=0.01, min_effect=0).drifted == ["x"]


def test_hostile_columns_give_figures_not_errors() -> None:
    rng = np.random.default_rng(4)
    n = 500
    reference = pd.DataFrame(
        {
            "all_null": np.full(n, np.nan),
            "null_now": rng.normal(size=n),
            "inf_now": rng.normal(size=n),
            "huge": rng.choice([-1, 1], n) * 10.0 ** rng.uniform(300, 308, n),
            "text_now": rng.normal(size=n),
            "empty_text": pd.Series([None] * n, dtype=object),
            "flag": rng.random(n) < 0.3,
            "small_int": rng.integers(0, 3, n),
        }
    )
    current = pd.DataFrame(
        {
            "all_null": np.full(n, np.nan),
            "null_now": np.full(n, np.nan),  # the column went missing upstream
            "inf_now": np.where(rng.random(n) < 0.3, np.inf, rng.normal(size=n)),
            "huge": rng.choice([-1, 1], n) * 10.0 ** rng.uniform(300, 308, n),
            "text_now": pd.Series(["n/a"] * n, dtype=object),  # text in a numeric feature
            "empty_text": pd.Series([None] * n, dtype=object),
            "flag": rng.random(n) < 0.3,
            # the same integers, as floats with a NaN (what a null does to an int column)
            "small_int": np.append(rng.integers(0, 3, n - 1).astype(float), np.nan),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings either
        report = check_drift(reference, current, list(reference.columns), alpha=0.01)
    rows = report.rows.set_index("feature")
    assert sorted(report.drifted) == ["inf_now", "null_now", "text_now"]
    assert rows.loc["inf_now", "missing_current"] == pytest.approx(0.3, abs=0.06)
    assert rows.loc["text_now", "missing_current"] == 1.0
    finite = rows["p_value"].dropna()
    assert ((finite >= 0) & (finite <= 1)).all() and np.isfinite(rows["effect"]).all()
    orjson.dumps(report.to_dict())  # JSON-ready: no NaN or numpy scalars left


def test_a_single_row_or_an_empty_batch() -> None:
    rng = np.random.default_rng(5)
    reference = draw(rng, 1000)
    one = check_drift(reference, reference.iloc[[7]], FEATURES, alpha=0.01)
    assert one.drifted == [] and one.rows["p_value"].between(0, 1).all()
    assert (one.rows["n_current"] == 1).all()
    empty = check_drift(reference, reference.iloc[:0], FEATURES, alpha=0.01)
    assert empty.drifted == [] and empty.rows["p_value"].isna().all()


def test_bad_calls_are_refused() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="alpha"):
        check_drift(frame, frame, ["x"], alpha=0)
    with pytest.raises(ValueError, match="not in both frames: y"):
        check_drift(frame, frame, ["x", "y"], alpha=0.01)
    with pytest.raises(ValueError, match="no features"):
        check_drift(frame, frame, [], alpha=0.01)


def test_the_same_seed_gives_the_same_report() -> None:
    rng = np.random.default_rng(6)
    reference, current = draw(rng, 1000), draw(rng, 100)
    first = check_drift(reference, current, FEATURES, alpha=0.01, seed=9)
    second = check_drift(reference, current, FEATURES, alpha=0.01, seed=9)
    pd.testing.assert_frame_equal(first.rows, second.rows)


# ---- the alert, through the outbox, to a real HTTP receiver -------------------------------

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PATIENT_WORDS = ("Zuleika", "Okonkwo")  # values of a feature: they must never be sent


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _settings(tmp_path: Path, receiver: Receiver, drift_rule: str = ""):
    tmp_path.mkdir(parents=True, exist_ok=True)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "routes:\n"
        f"  - {{name: hook, type: webhook, url: '{receiver.url('/hook')}'}}\n"
        f"  - {{name: slack, type: slack, url: '{receiver.url('/slack')}'}}\n"
        "defaults: {routes: [hook, slack], repeat_interval: 4h}\n"
        "delivery: {timeout: 2s, backoff_initial: 10s}\n"
        "rules:\n"
        "  - {id: coldchain_excursion, kind: coldchain_excursion, severity: critical}\n"
        + drift_rule
    )
    return ml_settings(tmp_path / "data").model_copy(
        update={"alert_rules": rules, "realtime_store": str(tmp_path / "state.db")}
    )


def _report(shifted: bool) -> DriftReport:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {"x": rng.normal(size=2000), "who": rng.choice(PATIENT_WORDS, 2000, p=[0.8, 0.2])}
    )
    current = pd.DataFrame(
        {"x": rng.normal(size=300), "who": rng.choice(PATIENT_WORDS, 300, p=[0.8, 0.2])}
    )
    if shifted:
        current["x"] += 1.5
        current["who"] = rng.choice(PATIENT_WORDS, 300, p=[0.2, 0.8])
    return check_drift(reference, current, ["x", "who"], alpha=0.01)


def test_drift_fires_once_through_webhook_and_slack_and_resolves_on_a_clean_check(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = _settings(tmp_path, receiver)
    drifted = _report(shifted=True)
    assert sorted(drifted.drifted) == ["who", "x"]

    fired = raise_drift_alert(settings, "pharmaflow-survey-sentiment", "3", drifted, now=T0)
    assert fired.key == "model_drift:pharmaflow-survey-sentiment"
    assert [t.kind for t in fired.transitions] == ["fired"] and fired.sent == 2
    (body,) = receiver.bodies("/hook")
    assert body["event"] == "fired" and body["kind"] == "model_drift"
    assert body["rule"] == "model_drift" and body["severity"] == "warning"
    assert body["details"]["model"] == "pharmaflow-survey-sentiment"
    assert body["details"]["version"] == "3" and body["details"]["features_drifted"] == 2
    assert "feature x" in body["details"] and "feature who" in body["details"]
    (headers,) = [h for p, h, _ in receiver.requests if p == "/hook"]
    assert headers["X-Pharmaflow-Notification-Id"] == body["notification_id"]
    (slack,) = receiver.bodies("/slack")
    assert slack["text"].startswith("[WARNING] Input drift in model pharmaflow-survey-sentiment")

    # still drifting an hour later: the incident stays open, no second notification
    again = raise_drift_alert(
        settings, "pharmaflow-survey-sentiment", "3", drifted, now=T0 + timedelta(hours=1)
    )
    assert again.transitions == [] and len(receiver.bodies("/hook")) == 1

    clean = raise_drift_alert(
        settings,
        "pharmaflow-survey-sentiment",
        "4",
        _report(shifted=False),
        now=T0 + timedelta(hours=2),
    )
    assert [t.kind for t in clean.transitions] == ["resolved"] and clean.sent == 2
    assert [b["event"] for b in receiver.bodies("/hook")] == ["fired", "resolved"]

    db = Database(settings.realtime_store_url)
    try:
        (incident,) = list_incidents(db)
        assert incident["state"] == "resolved" and incident["delivery"]["sent"] == 4
    finally:
        db.close()
    sent = json.dumps([b for _, _, b in receiver.requests])
    assert not any(word in sent for word in PATIENT_WORDS)  # figures and names only


def test_the_speed_layer_leaves_a_drift_incident_alone(tmp_path: Path, receiver: Receiver):
    """The realtime evaluator records what its rules see every second; a drift incident is
    not among them and must not be resolved by it."""
    settings = _settings(tmp_path, receiver)
    raise_drift_alert(settings, "pharmaflow-shipment-delay", "1", _report(True), now=T0)
    db = Database(settings.realtime_store_url)
    try:
        store = IncidentStore(db, AlertRules.load(settings.alert_rules))
        assert store.record({}, T0 + timedelta(seconds=1)) == []  # nothing active in the stream
        (incident,) = list_incidents(db)
        assert incident["state"] == "firing"
        assert incident["key"] == "model_drift:pharmaflow-shipment-delay"
    finally:
        db.close()


def test_a_model_drift_rule_chooses_severity_and_routes_or_silences_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    rule = (
        "  - {id: drift, kind: model_drift, severity: critical, route: hook, "
        "labels: {team: data-science}, enabled: %s}\n"
    )
    settings = _settings(tmp_path / "on", receiver, rule % "true")
    alert = raise_drift_alert(settings, "pharmaflow-demand", "2", _report(True), now=T0)
    assert alert.key == "drift:pharmaflow-demand" and alert.sent == 1
    (body,) = receiver.bodies("/hook")
    assert body["severity"] == "critical" and body["labels"] == {"team": "data-science"}
    assert receiver.bodies("/slack") == []

    off = _settings(tmp_path / "off", receiver, rule % "false")
    silenced = raise_drift_alert(off, "pharmaflow-demand", "2", _report(True), now=T0)
    assert silenced.transitions == [] and len(receiver.requests) == 1
