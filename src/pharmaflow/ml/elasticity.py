"""Price elasticity of demand per product, with the seasonal confounding removed by double
machine learning (DML), against the naive log-log fit.

Why not the naive fit. The chain promotes products when their season is high, and a
promotion sells more than its discount alone explains (display, advertising). A regression of
a product's log daily units on its log price therefore credits the price with the season and
the uplift, and finds demand far more elastic than it is.

Data. One cell per pharmacy x product x local business day (gold.fact_sales_daily_local; a
day without a sales row sold 0 units), from the pair's first sale to the last complete day
(the newest day is still open and left out). The price of a cell is its mean price paid
(revenue / units). A cell without sales has no price in the data: it gets the pharmacy's
regular price around it (the last one before or the next one after it, the higher of the
two when they differ: a price rise is what empties a shelf), less the day's promotion discount
(the median cut at the pharmacies that sold under the promotion) when the product was on a
chain-wide promotion that day. Each part (training, holdout) is imputed on its own, so training
never reads a holdout price.

Estimator (`method = "dml"`). The partially linear Poisson model
    E[units | price, X] = g(X) * price ^ elasticity,
X = the controls, is estimated per product with the Neyman-orthogonal score
    psi = (units - price^e * g(X)) * (log price - m(X)),  m(X) = E_w[log price | X], w = price^e,
whose mean is zero at the true elasticity and insensitive to first-order errors in g and m.
Both nuisances are learnt with cross-fitting (`folds` random folds of the cells: each fold is
scored by learners fitted on the others) by an additive-effects learner (EffectsRegressor, a
scikit-learn regressor): g as log-linear Poisson effects (offset by price^e), m as weighted
least squares effects. The controls `day` (product x calendar day) take out everything that
acts on the whole chain on a day - the season, the weekday, the trend, promotions and their
depth - without a model of its shape; `pharmacy` (product x pharmacy) takes out a store's
size and its usual price level; `weekday` (product x weekday) is a coarser calendar. What is
left to identify the elasticity is how prices differed between pharmacies on the same day.
g and m depend on the elasticity through the weights, so the estimate is iterated (start -1)
until it moves less than 0.001. Standard errors are the sandwich of the score; the interval
is +-1.96 of them.

Baseline (`method = "naive"`): per product, ordinary least squares of the log of its daily
units over the chain on the log of its mean price that day (days with sales). The tables also
give the same fit on pharmacy x day cells with sales, which is less wrong (prices differing
between pharmacies are not confounded) but still biased.

Split (time-based). The holdout is the last `holdout_days` (7) complete days; the elasticities
are estimated on the days before. Primary metric, computed without any ground truth:
`holdout_deviance`, the mean Poisson deviance of the holdout units predicted with an
estimator's elasticities and day + pharmacy effects fitted on the other folds of the holdout:
how well the elasticities predict how units differ between pharmacies that asked different
prices on the same later days. Lower is better. Where the simulator's truth is there
(simulate/truth.py, `elasticity`), `truth_mae`, `truth_max_abs_error` and `truth_within_0_2`
(share of products within +-0.2) are metrics too.

`params` (all optional): `holdout_days` (7), `controls` ("day,pharmacy"; any of day,
weekday, pharmacy, or "none"), `folds` (5), `max_iterations` (8), `prior` (1.0: shrinkage of
each effect, in pseudo-units). `{"controls": "pharmacy"}` is a deliberately weak setting (no
calendar controls: the confounding stays).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold

from pharmaflow.errors import PharmaflowError
from pharmaflow.ml.data import MlData
from pharmaflow.ml.spec import Trained
from pharmaflow.simulate.truth import ELASTICITY, read_truth

TASK = "price_elasticity"
MODEL_NAME = "pharmaflow-price-elasticity"
SCORES_TABLE = "gold.ml_price_elasticity"
SALES_TABLE = "gold.fact_sales_daily_local"

DEFAULTS: dict[str, Any] = {
    "holdout_days": 7,
    "controls": "day,pharmacy",
    "folds": 5,
    "max_iterations": 8,
    "prior": 1.0,
}
CONTROLS = ("day", "weekday", "pharmacy")
EVAL_FOLDS = 5
EVAL_SEED = 0
TOLERANCE = 1e-3
Z95 = 1.959964
TRUTH_TOLERANCE = 0.2  # the accuracy asked of the estimate (truth_within_0_2)
MIN_TRAIN_DAYS = 14
METRICS = ("holdout_deviance", "truth_mae", "truth_max_abs_error", "truth_within_0_2")


# ---- the nuisance learner -----------------------------------------------------------------


class EffectsRegressor(RegressorMixin, BaseEstimator):
    """Additive effects of categorical codes, fitted by backfitting: y ~ c + sum_j a_j[x_j]
    (`link="identity"`, weighted least squares) or log E[y] = c + sum_j a_j[x_j]
    (`link="log"`, Poisson). Each effect is shrunk towards 0 by `prior` pseudo-units, so a
    level seen on few rows stays near the mean. X holds non-negative integer codes, one column
    per factor; a code not seen in fit gets effect 0. Exact and fast where a boosted tree
    would need many splits to isolate one product-day."""

    def __init__(
        self, link: str = "log", prior: float = 1.0, max_iter: int = 200, tol: float = 1e-6
    ) -> None:
        self.link = link
        self.prior = prior
        self.max_iter = max_iter
        self.tol = tol

    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> EffectsRegressor:
        codes = np.asarray(X, dtype=np.int64)
        y = np.asarray(y, dtype=float)
        w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, float)
        sizes = [int(codes[:, j].max()) + 1 if len(codes) else 0 for j in range(codes.shape[1])]
        effects = [np.zeros(n) for n in sizes]
        log = self.link == "log"
        total = float(np.sum(w * y))
        weight = float(np.sum(w))
        if log:
            self.intercept_ = float(np.log(max(total, 1e-12) / max(weight, 1e-12)))
        else:
            self.intercept_ = total / max(weight, 1e-12)
        fitted = np.full(len(y), self.intercept_)
        for _ in range(self.max_iter):
            change = 0.0
            for j, column in enumerate(codes.T):
                others = fitted - effects[j][column]
                n = sizes[j]
                if log:
                    num = np.bincount(column, w * y, n) + self.prior
                    den = np.bincount(column, w * np.exp(others), n) + self.prior
                    new = np.log(num / den)
                else:
                    num = np.bincount(column, w * (y - others), n)
                    new = num / (np.bincount(column, w, n) + self.prior)
                change = max(change, float(np.max(np.abs(new - effects[j]), initial=0.0)))
                effects[j] = new
                fitted = others + new[column]
            if change < self.tol:
                break
        self.effects_ = effects
        return self

    def _linear(self, X: np.ndarray) -> np.ndarray:
        codes = np.asarray(X, dtype=np.int64)
        out = np.full(len(codes), self.intercept_)
        for j, column in enumerate(codes.T):
            effect = self.effects_[j]
            known = column < len(effect)
            out[known] += effect[column[known]]
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        linear = self._linear(X)
        return np.exp(linear) if self.link == "log" else linear


# ---- the model objects --------------------------------------------------------------------


class ElasticityModel:
    """Per-product elasticities (a table: ndc, elasticity, std_error, ci_low, ci_high,
    method). Picklable. `predict` takes rows of `ndc` and `price_ratio` (new price / old
    price) and gives each row's elasticity and the demand multiplier it implies
    (price_ratio ^ elasticity; NaN for a product without an estimate)."""

    def __init__(self, estimates: pd.DataFrame, method: str) -> None:
        self.estimates = estimates.reset_index(drop=True)
        self.method = method

    def elasticity_of(self, ndcs: pd.Series) -> np.ndarray:
        by_ndc = self.estimates.set_index("ndc")["elasticity"]
        return ndcs.map(by_ndc).to_numpy(dtype=float)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        e = self.elasticity_of(frame["ndc"].astype(str))
        ratio = frame["price_ratio"].to_numpy(dtype=float)
        return pd.DataFrame({"elasticity": e, "demand_multiplier": np.power(ratio, e)})


@dataclass
class ElasticityHoldout:
    """What `evaluate` takes: the holdout cells, and the true elasticities when known."""

    cells: pd.DataFrame
    truth: pd.DataFrame | None  # ndc, elasticity (true)


# ---- data ----------------------------------------------------------------------------------


def load_cells(data: MlData) -> pd.DataFrame:
    """Every pharmacy x product x business day from the pair's first sale to the last complete
    day: units and sales (0 without a sales row), revenue, whether the product was promoted
    anywhere in the chain that day."""
    if not data.has_table(SALES_TABLE):
        raise PharmaflowError(f"{SALES_TABLE} is missing: run `pharmaflow build` first")
    daily = data.frame(
        f"select business_date as sale_date, pharmacy_id, ndc, sales, units, "
        f"cast(revenue as double) as revenue, has_promotion from {SALES_TABLE}"
    )
    if daily.empty:
        raise PharmaflowError("no sales in gold.fact_sales_daily_local to estimate from")
    daily["sale_date"] = pd.to_datetime(daily["sale_date"])
    newest = daily["sale_date"].max()
    daily = daily[daily["sale_date"] < newest]  # the newest day is still open
    if daily.empty:
        raise PharmaflowError("one day of sales only: no complete day to estimate from")
    days = pd.date_range(daily["sale_date"].min(), daily["sale_date"].max(), freq="D")
    pairs = daily.groupby(["ndc", "pharmacy_id"], as_index=False)["sale_date"].min()
    grid = pairs.loc[pairs.index.repeat(len(days))].reset_index(drop=True)
    grid = grid.rename(columns={"sale_date": "first_sale"})
    grid["sale_date"] = np.tile(days.to_numpy(), len(pairs))
    grid = grid[grid["sale_date"] >= grid["first_sale"]].drop(columns="first_sale")
    cells = grid.merge(daily, on=["ndc", "pharmacy_id", "sale_date"], how="left")
    for column in ("sales", "units", "revenue"):
        cells[column] = cells[column].fillna(0)
    cells["has_promotion"] = cells["has_promotion"].fillna(False).astype(bool)
    cells["chain_promoted"] = cells.groupby(["ndc", "sale_date"])["has_promotion"].transform("max")
    return cells.sort_values(["ndc", "pharmacy_id", "sale_date"]).reset_index(drop=True)


def impute_prices(cells: pd.DataFrame) -> pd.DataFrame:
    """`log_price` per cell: observed where it sold, imputed where not (module docstring);
    cells whose pair has no regular price in this part are dropped."""
    cells = cells.sort_values(["ndc", "pharmacy_id", "sale_date"]).reset_index(drop=True)
    sold = cells["units"].to_numpy() > 0
    observed = pd.Series(np.full(len(cells), np.nan))
    observed[sold] = np.log(cells["revenue"].to_numpy()[sold] / cells["units"].to_numpy()[sold])
    promoted = cells["chain_promoted"].to_numpy(dtype=bool)
    regular = observed.where(~promoted)
    pair = [cells["ndc"], cells["pharmacy_id"]]
    before, after = regular.groupby(pair).ffill(), regular.groupby(pair).bfill()
    shelf = np.fmax(before, after).fillna(before).fillna(after)
    last_regular = before.groupby(pair).shift(1)
    cut = (observed - last_regular).where(pd.Series(promoted & sold))
    depth = cut.groupby([cells["ndc"], cells["sale_date"]]).transform("median").fillna(0.0)
    imputed = shelf + np.where(promoted, depth, 0.0)
    out = cells.assign(log_price=np.where(sold, observed, imputed), price_observed=sold)
    return out[out["log_price"].notna()].reset_index(drop=True)


def split(cells: pd.DataFrame, holdout_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training cells (before the last `holdout_days` days) and holdout cells, each with its
    prices imputed on its own."""
    last = cells["sale_date"].max()
    start = last - pd.Timedelta(days=holdout_days - 1)
    fit, holdout = cells[cells["sale_date"] < start], cells[cells["sale_date"] >= start]
    if fit["sale_date"].nunique() < MIN_TRAIN_DAYS or holdout.empty:
        raise PharmaflowError(
            f"not enough sales history to estimate elasticities: {fit['sale_date'].nunique()} "
            f"training days before {start.date()} (need {MIN_TRAIN_DAYS}) and a holdout of "
            f"{holdout_days} days"
        )
    return impute_prices(fit), impute_prices(holdout)


def _codes(cells: pd.DataFrame, controls: list[str]) -> np.ndarray:
    """Integer codes of the control factors, one column each (product x day, ...)."""
    columns = []
    for control in controls:
        if control == "day":
            key = cells["ndc"] + "|" + cells["sale_date"].dt.strftime("%Y-%m-%d")
        elif control == "weekday":
            key = cells["ndc"] + "|" + cells["sale_date"].dt.day_of_week.astype(str)
        else:
            key = cells["ndc"] + "|" + cells["pharmacy_id"]
        columns.append(pd.factorize(key)[0])
    if not columns:  # no controls: a product effect only
        columns.append(pd.factorize(cells["ndc"])[0])
    return np.column_stack(columns)


# ---- estimators ----------------------------------------------------------------------------


def dml(
    cells: pd.DataFrame,
    controls: list[str],
    folds: int,
    max_iterations: int,
    prior: float,
    seed: int,
) -> pd.DataFrame:
    """Cross-fitted DML elasticities per product (module docstring)."""
    x = _codes(cells, controls)
    y = cells["units"].to_numpy(dtype=float)
    d = _centred_log_price(cells)
    product, ndcs = pd.factorize(cells["ndc"], sort=True)
    n_products = len(ndcs)
    theta = np.full(n_products, -1.0)
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(x))
    g, m = np.zeros_like(y), np.zeros_like(y)
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        weight = np.exp(theta[product] * d)
        for train_rows, test_rows in splits:
            outcome = EffectsRegressor("log", prior).fit(
                x[train_rows], y[train_rows] / weight[train_rows], weight[train_rows]
            )
            g[test_rows] = outcome.predict(x[test_rows])
            treatment = EffectsRegressor("identity", prior).fit(
                x[train_rows], d[train_rows], weight[train_rows]
            )
            m[test_rows] = treatment.predict(x[test_rows])
        new = _solve(y, d, g, d - m, product, n_products, theta)
        moved = float(np.nanmax(np.abs(new - theta)))
        theta = new
        if moved < TOLERANCE:
            break
    residual = d - m
    response = np.exp(theta[product] * d) * g
    psi = (y - response) * residual
    count = np.bincount(product, minlength=n_products).astype(float)
    jacobian = np.bincount(product, -d * response * residual, n_products) / count
    variance = np.bincount(product, psi**2, n_products) / count
    se = np.sqrt(variance / count) / np.abs(jacobian)
    return pd.DataFrame(
        {
            "ndc": ndcs.astype(str),
            "elasticity": theta,
            "std_error": se,
            "ci_low": theta - Z95 * se,
            "ci_high": theta + Z95 * se,
            "cells": count.astype(int),
            "iterations": iterations,
        }
    )


def _centred_log_price(cells: pd.DataFrame) -> np.ndarray:
    """Log price minus the product's mean log price: the same slope, and price^e near 1
    (a raw log price of a $25,000 drug would put e^(e * 10) in every weight)."""
    log_price = cells["log_price"]
    return (log_price - log_price.groupby(cells["ndc"]).transform("mean")).to_numpy(float)


def _solve(
    y: np.ndarray,
    d: np.ndarray,
    g: np.ndarray,
    residual: np.ndarray,
    product: np.ndarray,
    n_products: int,
    start: np.ndarray,
) -> np.ndarray:
    """The elasticity per product that zeroes the mean score, nuisances held fixed (Newton,
    steps capped at 1)."""
    theta = start.copy()
    for _ in range(50):
        response = np.exp(theta[product] * d) * g
        value = np.bincount(product, (y - response) * residual, n_products)
        slope = np.bincount(product, -d * response * residual, n_products)
        step = np.clip(np.divide(value, slope, out=np.zeros(n_products), where=slope != 0), -1, 1)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-9:
            break
    return theta


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope of y on x with an intercept, and its standard error."""
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    xc = x - x.mean()
    slope = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    resid = y - y.mean() - slope * xc
    se = float(np.sqrt(np.dot(resid, resid) / (len(x) - 2) / np.dot(xc, xc)))
    return slope, se


def naive_chain(cells: pd.DataFrame) -> pd.DataFrame:
    """The naive log-log fit per product on its daily chain totals (days with sales)."""
    sold = cells[cells["units"] > 0]
    daily = sold.groupby(["ndc", "sale_date"], as_index=False)[["units", "revenue"]].sum()
    rows = []
    for ndc, day in daily.groupby("ndc", sort=True):
        slope, se = _ols(
            np.log(day["revenue"] / day["units"]).to_numpy(), np.log(day["units"]).to_numpy()
        )
        rows.append({"ndc": str(ndc), "elasticity": slope, "std_error": se, "cells": len(day)})
    out = pd.DataFrame(rows)
    out["ci_low"] = out["elasticity"] - Z95 * out["std_error"]
    out["ci_high"] = out["elasticity"] + Z95 * out["std_error"]
    return out


def naive_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The same naive fit on pharmacy x day cells with sales (for the tables)."""
    sold = cells[cells["units"] > 0]
    rows = []
    for ndc, part in sold.groupby("ndc", sort=True):
        slope, se = _ols(part["log_price"].to_numpy(), np.log(part["units"]).to_numpy())
        rows.append({"ndc": str(ndc), "elasticity": slope, "std_error": se})
    return pd.DataFrame(rows)


# ---- evaluation ----------------------------------------------------------------------------


def holdout_deviance(model: ElasticityModel, cells: pd.DataFrame) -> float:
    """Mean Poisson deviance of the holdout units, each fold predicted from the model's
    elasticities and day + pharmacy effects fitted on the other folds."""
    e = model.elasticity_of(cells["ndc"])
    keep = ~np.isnan(e)
    cells, e = cells[keep], e[keep]
    if cells.empty:
        return float("nan")
    x = _codes(cells, ["day", "pharmacy"])
    y = cells["units"].to_numpy(dtype=float)
    weight = np.exp(e * _centred_log_price(cells))
    predicted = np.zeros_like(y)
    for train_rows, test_rows in KFold(EVAL_FOLDS, shuffle=True, random_state=EVAL_SEED).split(x):
        effects = EffectsRegressor("log", DEFAULTS["prior"]).fit(
            x[train_rows], y[train_rows] / weight[train_rows], weight[train_rows]
        )
        predicted[test_rows] = effects.predict(x[test_rows]) * weight[test_rows]
    predicted = np.maximum(predicted, 1e-9)
    ratio = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / predicted), 0.0)
    return float(np.mean(2 * (ratio - (y - predicted))))


def truth_errors(estimates: pd.DataFrame, truth: pd.DataFrame | None) -> dict[str, float]:
    """Distance of per-product estimates from the true elasticities (NaN without truth)."""
    if truth is None:
        return {k: float("nan") for k in METRICS[1:]}
    joined = estimates.merge(truth, on="ndc", suffixes=("", "_true"))
    error = (joined["elasticity"] - joined["elasticity_true"]).abs()
    return {
        "truth_mae": float(error.mean()),
        "truth_max_abs_error": float(error.max()),
        "truth_within_0_2": float((error <= TRUTH_TOLERANCE).mean()),
    }


def evaluate(model: Any, holdout: ElasticityHoldout) -> dict[str, float]:
    """Metrics of `model` (this module's DML or naive estimates) on the holdout."""
    metrics = {"holdout_deviance": holdout_deviance(model, holdout.cells)}
    metrics.update(truth_errors(model.estimates, holdout.truth))
    return metrics


def _truth(data: MlData) -> pd.DataFrame | None:
    table = read_truth(data.settings.truth_dir, ELASTICITY)
    if table is None or table.num_rows == 0:
        return None
    return table.select(["ndc", "elasticity"]).to_pandas()


# ---- the task contract ---------------------------------------------------------------------


def _settings(params: dict[str, Any]) -> dict[str, Any]:
    chosen = {k: params.get(k, v) for k, v in DEFAULTS.items()}
    names = [c.strip() for c in str(chosen["controls"]).split(",") if c.strip()]
    names = [] if names == ["none"] else names
    unknown = sorted(set(names) - set(CONTROLS))
    if unknown:
        raise PharmaflowError(f"unknown elasticity controls {unknown}: pick from {CONTROLS}")
    chosen["controls"] = ",".join(names) or "none"
    for key in ("holdout_days", "folds", "max_iterations"):
        chosen[key] = int(chosen[key])
    chosen["prior"] = float(chosen["prior"])
    return chosen


def train(data: MlData, *, seed: int, params: dict | None = None) -> Trained:
    """Estimate on the training days, judge DML and naive on the holdout (module docstring)."""
    chosen = _settings(dict(params or {}))
    controls = [] if chosen["controls"] == "none" else chosen["controls"].split(",")
    fit, holdout_cells = split(load_cells(data), chosen["holdout_days"])
    estimates = dml(fit, controls, chosen["folds"], chosen["max_iterations"], chosen["prior"], seed)
    estimates["method"] = "dml"
    model = ElasticityModel(estimates, "dml")
    naive = naive_chain(fit)
    naive["method"] = "naive"
    baseline = ElasticityModel(naive, "naive")
    truth = _truth(data)
    holdout = ElasticityHoldout(holdout_cells, truth)
    table = _comparison(estimates, naive, naive_cells(fit), truth)
    example = pd.DataFrame(
        {
            "ndc": estimates["ndc"].head(3).to_numpy(),
            "price_ratio": [0.9, 1.0, 1.1][: len(estimates)],
        }
    )
    return Trained(
        task=TASK,
        model=model,
        metrics=evaluate(model, holdout),
        baseline=evaluate(baseline, holdout),
        primary="holdout_deviance",
        higher_is_better=False,
        params={
            **chosen,
            "seed": seed,
            "iterations": int(estimates["iterations"].max()),
            "estimator": "cross-fitted DML, partially linear Poisson (orthogonal score)",
            "price_imputed_share": round(float(1 - fit["price_observed"].mean()), 6),
        },
        features=["ndc", "price_ratio"],
        train_window=_window(fit),
        holdout_window=_window(holdout_cells),
        input_example=example,
        holdout=holdout,
        baseline_name="naive log-log fit of daily chain units on mean price, per product",
        limits=_limits(),
        tables={"elasticity": table},
        rows={"train": len(fit), "holdout": len(holdout_cells)},
    )


def score(model: Any, data: MlData) -> pd.DataFrame:
    """One row per product: its elasticity, 95% interval and how it was estimated."""
    est = model.estimates
    return pd.DataFrame(
        {
            "ndc": est["ndc"].astype(str).to_numpy(dtype=object),
            "elasticity": est["elasticity"].to_numpy(dtype=float),
            "ci_low": est["ci_low"].to_numpy(dtype=float),
            "ci_high": est["ci_high"].to_numpy(dtype=float),
            "method": np.full(len(est), model.method, dtype=object),
        }
    )


def _comparison(
    dml_estimates: pd.DataFrame,
    naive: pd.DataFrame,
    naive_cell: pd.DataFrame,
    truth: pd.DataFrame | None,
) -> pd.DataFrame:
    """Per product: DML with its interval, both naive fits, and the truth with each one's
    error where it is known."""
    out = dml_estimates[["ndc", "elasticity", "std_error", "ci_low", "ci_high", "cells"]].rename(
        columns={
            "elasticity": "dml",
            "std_error": "dml_std_error",
            "ci_low": "dml_ci_low",
            "ci_high": "dml_ci_high",
        }
    )
    out = out.merge(
        naive[["ndc", "elasticity", "std_error"]].rename(
            columns={"elasticity": "naive", "std_error": "naive_std_error"}
        ),
        on="ndc",
        how="left",
    )
    out = out.merge(
        naive_cell[["ndc", "elasticity"]].rename(columns={"elasticity": "naive_cells"}),
        on="ndc",
        how="left",
    )
    if truth is not None:
        out = out.merge(truth.rename(columns={"elasticity": "truth"}), on="ndc", how="left")
        for column in ("dml", "naive", "naive_cells"):
            out[f"{column}_error"] = out[column] - out["truth"]
        out["truth_in_dml_ci"] = (out["dml_ci_low"] <= out["truth"]) & (
            out["truth"] <= out["dml_ci_high"]
        )
    return out


def _window(cells: pd.DataFrame) -> tuple[date, date]:
    days = cells["sale_date"].dt.date
    return days.min(), days.max()


def _limits() -> list[str]:
    return [
        "One constant elasticity per product (log-log): a response that differs by price "
        "level, pharmacy or season is averaged.",
        "Identified by price differences between pharmacies on the same day: a product "
        "priced the same everywhere every day gets a wide interval or none.",
        "Assumes a pharmacy's price is not set in answer to its own demand that day beyond "
        "what the controls hold (chain-wide season and promotions, the store's level).",
        "Prices of days without sales are imputed from the pharmacy's regular price around "
        "them; a price change inside a run of zero-sale days is placed at the higher price.",
        "Promotion uplift beyond the discount is absorbed by the day controls, not "
        "estimated; cross-product effects (substitution) are not modelled.",
        "The interval is the score's sandwich over cells, not clustered: nuisance errors "
        "shared by the pharmacies of a day are not in it.",
    ]
