"""Input drift: does a batch a model scores still look like the data it was trained on?

Why tests and not a fixed PSI threshold: the population stability index of two samples of the
SAME distribution grows as the batch shrinks (about (bins - 1) / n: 0.3 for ten bins and 30
rows), so "PSI > 0.2 means drift" fires on most small identical batches and misses shifts in
huge ones. A two-sample test per feature knows its batch size: under no drift its p-value is
uniform, so a feature fires with probability alpha whatever the sizes, and a Bonferroni
correction (alpha / number of features) keeps the chance that ANY feature of an unchanged
batch fires at or below alpha. Because a test on a huge batch finds shifts too small to
matter, a feature also needs an effect of at least `min_effect` to count as drifted.

Per feature (kind chosen from the reference column):
* continuous (numeric with more than `max_levels` distinct values): the two-sample
  Kolmogorov-Smirnov test on the finite values (statistic: the largest gap between the two
  empirical CDFs, 0..1), and a permutation test of the share of missing or non-finite values
  (null, NaN, +-inf); the feature's p-value is the smaller of the two, doubled (Bonferroni
  within the feature). Effect: the larger of the KS gap and the change in missing share.
* discrete (numeric with few values) and categorical (anything else; missing is a level of
  its own, and a level seen only in the current batch is a level like any other): the
  chi-square statistic of the 2 x levels table, its p-value by permutation (the current
  batch's counts drawn from the pooled counts, multivariate hypergeometric: exact for any
  batch size, no expected-count rule), `permutations` draws, seeded. Effect: the total
  variation distance between the two level distributions (0..1).
A current column that does not parse as the reference's numbers (text in a numeric feature)
counts as missing, so it shows as drift rather than an error. An empty batch checks nothing.

Alerts: `raise_drift_alert` records a `model_drift` incident in the speed layer's alert store
(realtime/alerts/incidents.py) with an outbox row per route, exactly as the speed layer's
rules do, and drains the outbox once, so the notification goes out through the configured
Slack / webhook routes even when no speed layer is running (a failed send stays pending for
the next notifier). One incident per model: it fires when a check finds drift, stays open
(re-notified after the rule's repeat interval) while checks keep finding it, and resolves on
the first clean check. It carries the model, version, feature names and figures: never a value
of the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.realtime.alerts.incidents import Transition

MIN_EFFECT = 0.05
MAX_LEVELS = 20
MAX_PERMUTATIONS = 20_000
COLUMNS = [
    "feature",
    "kind",
    "test",
    "statistic",
    "effect",
    "p_value",
    "threshold",
    "drifted",
    "n_reference",
    "n_current",
    "missing_reference",
    "missing_current",
    "new_levels",
]


@dataclass(frozen=True)
class DriftReport:
    """One row per feature (COLUMNS): test, statistic, effect, p-value, the Bonferroni
    threshold it is compared with, and whether it drifted."""

    rows: pd.DataFrame
    alpha: float
    min_effect: float

    @property
    def drifted(self) -> list[str]:
        return self.rows.loc[self.rows["drifted"], "feature"].tolist()

    @property
    def ok(self) -> bool:
        return not self.drifted

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the settings and every row (figures and feature names only)."""
        return {
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "drifted": self.drifted,
            "features": [
                {k: _plain(v) for k, v in row.items()} for row in self.rows.to_dict("records")
            ],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def permutations_for(alpha: float, features: int) -> int:
    """Enough permutations that a p-value can fall below the Bonferroni threshold with room
    to spare (the smallest is 1 / (draws + 1)): at least 999, at most MAX_PERMUTATIONS."""
    return int(min(MAX_PERMUTATIONS, max(999, math.ceil(20 * features / alpha))))


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    *,
    alpha: float,
    min_effect: float = MIN_EFFECT,
    max_levels: int = MAX_LEVELS,
    permutations: int | None = None,
    seed: int = 0,
) -> DriftReport:
    """Test each feature of `current` against `reference` (module docstring). A feature
    drifts when its p-value is below alpha / len(features) and its effect is at least
    `min_effect`."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    names = list(dict.fromkeys(features))
    if not names:
        raise ValueError("no features to check")
    absent = [f for f in names if f not in reference.columns or f not in current.columns]
    if absent:
        raise ValueError(f"features not in both frames: {', '.join(map(str, absent[:10]))}")
    threshold = alpha / len(names)
    draws = permutations or permutations_for(alpha, len(names))
    rng = np.random.default_rng(seed)
    rows = []
    for name in names:
        row = _check(reference[name], current[name], max_levels, draws, rng)
        row.update(feature=str(name), threshold=threshold)
        p, effect = row["p_value"], row["effect"]
        row["drifted"] = bool(np.isfinite(p) and p < threshold and effect >= min_effect)
        rows.append(row)
    return DriftReport(pd.DataFrame(rows, columns=COLUMNS), alpha, min_effect)


def _check(
    ref: pd.Series, cur: pd.Series, max_levels: int, draws: int, rng: np.random.Generator
) -> dict[str, Any]:
    numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
    if numeric:
        r = _floats(ref)
        c = _floats(cur)
        finite_levels = np.unique(r[np.isfinite(r)]).size
        if finite_levels > max_levels:
            return _continuous(r, c, draws, rng)
        return _categorical(r, c, draws, rng, "discrete")
    return _categorical(_labels(ref), _labels(cur), draws, rng, "categorical")


def _floats(values: pd.Series) -> np.ndarray:
    """Numbers as float64; nulls and text that is not a number as NaN."""
    numbers = pd.to_numeric(values, errors="coerce")
    return np.asarray(numbers, dtype=np.float64)


def _labels(values: pd.Series) -> np.ndarray:
    """Category levels as text, missing as None (a level of its own)."""
    missing = pd.isna(values).to_numpy()
    labelled = np.full(len(values), None, dtype=object)
    labelled[~missing] = values[~missing].astype(str).to_numpy(dtype=object)
    return labelled


def _empty(kind: str, test: str, n_ref: int, n_cur: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "test": test,
        "statistic": np.nan,
        "effect": 0.0,
        "p_value": np.nan,
        "n_reference": n_ref,
        "n_current": n_cur,
        "missing_reference": np.nan,
        "missing_current": np.nan,
        "new_levels": 0,
    }


def _continuous(r: np.ndarray, c: np.ndarray, draws: int, rng: np.random.Generator) -> dict:
    from scipy.stats import ks_2samp

    test = "kolmogorov-smirnov + missing share"
    if len(r) == 0 or len(c) == 0:
        return _empty("continuous", test, len(r), len(c))
    r_ok, c_ok = np.isfinite(r), np.isfinite(c)
    gap, p_ks = 0.0, 1.0
    if r_ok.any() and c_ok.any():
        result = ks_2samp(r[r_ok], c[c_ok])
        gap, p_ks = float(result.statistic), float(result.pvalue)
    missing_r, missing_c = 1 - r_ok.mean(), 1 - c_ok.mean()
    p = p_ks
    # The missing-share test runs when the pooled rows have some missing value (a fact every
    # permutation shares, so choosing on it keeps both tests exact); then two tests: doubled.
    if not (r_ok.all() and c_ok.all()):
        counts_r = np.array([(~r_ok).sum(), r_ok.sum()])
        counts_c = np.array([(~c_ok).sum(), c_ok.sum()])
        _, p_missing = _chi_square_permutation(counts_r, counts_c, draws, rng)
        p = min(1.0, 2 * min(p_ks, p_missing))
    return {
        "kind": "continuous",
        "test": test,
        "statistic": gap,
        "effect": max(gap, abs(missing_c - missing_r)),
        "p_value": p,
        "n_reference": len(r),
        "n_current": len(c),
        "missing_reference": float(missing_r),
        "missing_current": float(missing_c),
        "new_levels": 0,
    }


def _categorical(
    r: np.ndarray, c: np.ndarray, draws: int, rng: np.random.Generator, kind: str
) -> dict[str, Any]:
    test = "chi-square, permutation p-value"
    if len(r) == 0 or len(c) == 0:
        return _empty(kind, test, len(r), len(c))
    codes, _ = pd.factorize(np.concatenate([r, c]), use_na_sentinel=True)
    codes = np.where(codes < 0, codes.max(initial=-1) + 1, codes)  # missing: one more level
    levels = int(codes.max()) + 1
    counts_r = np.bincount(codes[: len(r)], minlength=levels)
    counts_c = np.bincount(codes[len(r) :], minlength=levels)
    statistic, p = _chi_square_permutation(counts_r, counts_c, draws, rng)
    share_r, share_c = counts_r / len(r), counts_c / len(c)
    if kind == "discrete":  # NaN and +-inf are levels there: count them as missing
        missing_r, missing_c = 1 - np.isfinite(r).mean(), 1 - np.isfinite(c).mean()
    else:
        missing_r, missing_c = pd.isna(r).mean(), pd.isna(c).mean()
    return {
        "kind": kind,
        "test": test,
        "statistic": statistic,
        "effect": float(0.5 * np.abs(share_r - share_c).sum()),
        "p_value": p,
        "n_reference": len(r),
        "n_current": len(c),
        "missing_reference": float(missing_r),
        "missing_current": float(missing_c),
        "new_levels": int(((counts_r == 0) & (counts_c > 0)).sum()),
    }


def _chi_square_permutation(
    counts_r: np.ndarray, counts_c: np.ndarray, draws: int, rng: np.random.Generator
) -> tuple[float, float]:
    """The chi-square statistic of the 2 x levels table and its permutation p-value: under
    no drift the current batch is a random subset of the pooled rows, so its counts are a
    multivariate hypergeometric draw from the pooled counts (margins fixed, so the expected
    counts are the same in every draw). p = (1 + draws at least as extreme) / (1 + draws)."""
    total = counts_r + counts_c
    keep = total > 0
    total, counts_c = total[keep], counts_c[keep]
    if len(total) < 2:
        return 0.0, 1.0
    n_r, n_c = int(counts_r.sum()), int(counts_c.sum())
    n = n_r + n_c
    expected_c = total * (n_c / n)
    expected_r = total * (n_r / n)

    def statistic(cur: np.ndarray) -> np.ndarray:
        ref = total - cur
        return ((cur - expected_c) ** 2 / expected_c).sum(axis=-1) + (
            (ref - expected_r) ** 2 / expected_r
        ).sum(axis=-1)

    observed = float(statistic(counts_c.astype(float)))
    simulated = rng.multivariate_hypergeometric(total, n_c, size=draws, method="marginals")
    null = statistic(simulated.astype(float))
    extreme = int((null >= observed * (1 - 1e-12)).sum())
    return observed, (1 + extreme) / (1 + draws)


# ---- alerting ---------------------------------------------------------------------------

_MAX_LISTED = 8  # drifted features named in an alert (Slack shows ten fields)


@dataclass(frozen=True)
class DriftAlert:
    """What `raise_drift_alert` did: the incident key, the transitions it recorded (fired,
    repeat, resolved; empty when nothing changed) and how many notifications went out."""

    key: str
    transitions: list[Transition] = field(default_factory=list)
    sent: int = 0


def _summary(model_name: str, model_version: str, report: DriftReport) -> str:
    drifted = report.drifted
    named = ", ".join(drifted[:_MAX_LISTED]) + (" …" if len(drifted) > _MAX_LISTED else "")
    return (
        f"Input drift in model {model_name} version {model_version}: "
        f"{len(drifted)} of {len(report.rows)} features ({named})"
    )


def _details(model_name: str, model_version: str, report: DriftReport) -> dict[str, Any]:
    """Flat scalars (docs/alerts.md): the model, the check's settings, and per drifted
    feature (the first few) its test's p-value and effect. Figures and names only."""
    rows = report.rows[report.rows["drifted"]].sort_values("p_value").head(_MAX_LISTED - 3)
    details: dict[str, Any] = {
        "model": model_name,
        "version": str(model_version),
        "features_drifted": len(report.drifted),
        "features_checked": len(report.rows),
        "alpha": report.alpha,
    }
    for row in rows.itertuples():
        details[f"feature {row.feature}"] = (
            f"{row.kind}: p={row.p_value:.2g}, effect={row.effect:.3f}, "
            f"current rows={row.n_current}"
        )
    return details


def raise_drift_alert(
    settings: Settings,
    model_name: str,
    model_version: str,
    report: DriftReport,
    *,
    now: datetime | None = None,
    deliver: bool = True,
) -> DriftAlert:
    """Record the drift check of one model as an alert and send what it queued.

    A report with drifted features fires (or keeps open) the incident
    `model_drift:<model_name>`; a clean report resolves it. The rule comes from the alert
    rules (`PHARMAFLOW_ALERT_RULES` or the shipped default): a `kind: model_drift` rule sets
    severity, routes, labels and repeat interval; without one, drift alerts are warnings on
    the default routes; a disabled one silences them. `deliver=False` leaves the
    notifications in the outbox for a running speed layer's notifier."""
    from pharmaflow.realtime.alerts import external
    from pharmaflow.realtime.alerts.rules import AlertRules

    now = now or datetime.now(UTC)
    rules = AlertRules.load(settings.alert_rules)
    rule = rules.drift_rule
    key = f"{rule.id}:{model_name}"
    active = {}
    if report.drifted:
        active[key] = (
            _summary(model_name, model_version, report),
            _details(model_name, model_version, report),
        )
    raised = external.record(settings, rules, rule, active, {key}, now, deliver=deliver)
    return DriftAlert(key, raised.transitions, raised.sent)
