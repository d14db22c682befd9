"""Point-of-sale sales at the pharmacies, drawn from a known demand model.

The demand of a product at a pharmacy on a day (its expected units) is a product of factors:

    base (product popularity x pharmacy size x scale)
      x weekday factor (lower at weekends)
      x trend (a steady growth or decline per product)
      x season (a multi-week wave per product)
      x promotion uplift (display and advertising, on top of the discount)
      x (price / list price) ^ elasticity

and the day's sales are a Poisson draw of transactions of 1-3 units around it. Prices move
for two reasons: each pharmacy re-prices each product on random days (shelf-price spells,
not aligned with weeks, the variation that identifies the elasticity), and the chain runs
promotions (the same products discounted at every pharmacy for a few days) mostly when a
product's season is high; new shelf prices also lean against the season. That makes a naive
fit of log demand on log price confound the price with the season and the uplift, as in real
retail data; ml/elasticity.py has to undo it.

The demand model's parameters are a function of the seed alone (stream `sales-world`), the
calendar of prices and promotions of the window (stream `sales`); the truth goes to the
`demand` and `elasticity` tables (simulate/truth.py), never into the events. Some stores'
tills stamp events in local time with an offset (same instant, different notation), which
the platform must normalise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pharmaflow.contracts.reference import Facility, Reference
from pharmaflow.simulate.clock import utc_offset_minutes, yymmdd
from pharmaflow.simulate.config import DAY_MS, HOUR_MS, MINUTE_MS, SimConfig, streams
from pharmaflow.simulate.events import EventSink
from pharmaflow.simulate.truth import DEMAND, ELASTICITY, Truth

BASE_UNITS = 13.0  # units of an average product at an average pharmacy, weekday, list price
DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 1.1, 0.7, 0.55)  # Monday .. Sunday
QUANTITIES = np.array((1, 1, 1, 1, 2, 2, 3))  # units per transaction, equally likely
ELASTICITY_RANGE = (-2.5, -0.6)  # spread evenly over the products, in a seeded order
UPLIFT_RANGE = (1.4, 1.9)  # a promoted product sells this much more at the same price
POPULARITY_RANGE = (0.8, 1.25)
PHARMACY_SIZE_RANGE = (0.7, 1.4)
SEASON_AMPLITUDE = (0.2, 0.45)  # log amplitude of the multi-week wave
SEASON_PERIOD_DAYS = (35, 63)
TREND_PER_YEAR = (-0.3, 0.5)  # log growth per year
# Shelf prices: a pharmacy re-prices a product with this chance per day, to a log multiplier
# of the list price drawn from N(0, SHELF_SD), leaning SHELF_SEASON_LEAN x the product's log
# season against the season of the day it is set (sharper prices when demand is high), clipped
# to +-SHELF_MAX. Cash prices of the same drug differ widely between pharmacies and over time;
# the differences between pharmacies on a day are what identify the elasticity.
SHELF_CHANGE_PER_DAY = 0.125
SHELF_SD, SHELF_MAX = 0.4, 0.7
SHELF_SEASON_LEAN = 0.5
# Chain-wide promotions: a promotion of PROMO_DAYS starts on a day with these chances, high
# when the product's season is above HIGH_SEASON (log), low otherwise; at least
# PROMO_GAP_DAYS between two promotions of a product.
PROMOTIONS = (
    ("SAVE20", 20),
    ("WELLNESS25", 25),
    ("SEASON30", 30),
    ("REFILL35", 35),
    ("FLASH40", 40),
)
PROMO_START_HIGH, PROMO_START_LOW, HIGH_SEASON = 0.3, 0.03, 0.1
PROMO_DAYS = (3, 6)
PROMO_GAP_DAYS = 2
LOCAL_CLOCK_SHARE = 0.3  # of stores whose tills write local time with an offset
OPEN_HOUR, OPEN_HOURS = 8, 13


@dataclass(frozen=True)
class World:
    """The demand model's parameters: per product (index p) and per pharmacy (index k)."""

    elasticity: np.ndarray  # [p]
    uplift: np.ndarray  # [p]
    popularity: np.ndarray  # [p]
    season_amplitude: np.ndarray  # [p]
    season_period: np.ndarray  # [p] days
    season_phase: np.ndarray  # [p] radians
    trend: np.ndarray  # [p] log growth per year
    size: np.ndarray  # [k]


@dataclass(frozen=True)
class Calendar:
    """Day-by-day factors of the window: arrays [k, p, d] (pharmacy, product, day) or [p, d]."""

    weekday: np.ndarray  # [d]
    season: np.ndarray  # [p, d]
    trend: np.ndarray  # [p, d]
    promoted: np.ndarray  # [p, d] bool: chain-wide promotion
    discount: np.ndarray  # [p, d] percent off the shelf price (0 when not promoted)
    code: np.ndarray  # [p, d] promotion code ('' when not promoted)
    price: np.ndarray  # [k, p, d] unit price asked, rounded to cents
    shelf: np.ndarray  # [k, p, d] shelf price / list price (before a promotion)
    expected: np.ndarray  # [k, p, d] expected units


def world(config: SimConfig, n_products: int, n_pharmacies: int) -> World:
    """The parameters of the demand model: a function of the seed alone, so every window of
    one seed sells the same products with the same elasticities."""
    rng = streams(config, "sales-world").np
    low, high = ELASTICITY_RANGE
    # evenly spread (a single product gets the middle), in a seeded order
    spread = np.linspace(low, high, n_products) if n_products > 1 else np.full(1, (low + high) / 2)
    elasticity = rng.permutation(spread)
    return World(
        elasticity=np.round(elasticity, 3),
        uplift=np.round(rng.uniform(*UPLIFT_RANGE, n_products), 3),
        popularity=rng.uniform(*POPULARITY_RANGE, n_products),
        season_amplitude=rng.uniform(*SEASON_AMPLITUDE, n_products),
        season_period=rng.uniform(*SEASON_PERIOD_DAYS, n_products),
        season_phase=rng.uniform(0, 2 * np.pi, n_products),
        trend=rng.uniform(*TREND_PER_YEAR, n_products),
        size=rng.uniform(*PHARMACY_SIZE_RANGE, n_pharmacies),
    )


def calendar(
    config: SimConfig, w: World, list_prices: np.ndarray, rng: np.random.Generator
) -> Calendar:
    """Prices, promotions and expected units of every (pharmacy, product, day) of the window."""
    n_k, n_p, n_d = len(w.size), len(w.elasticity), config.days
    days = np.arange(n_d)
    epoch_day = config.start_ms // DAY_MS + days
    weekday_factor = np.array(DAY_FACTOR)[(epoch_day + 3) % 7]  # epoch day 0 was a Thursday
    # the wave runs on the epoch day, so a season is a property of the calendar, not the window
    log_season = w.season_amplitude[:, None] * np.sin(
        2 * np.pi * epoch_day[None, :] / w.season_period[:, None] + w.season_phase[:, None]
    )
    trend = np.exp(w.trend[:, None] * days[None, :] / 365.0)

    promoted = np.zeros((n_p, n_d), bool)
    discount = np.zeros((n_p, n_d), np.int64)
    code = np.full((n_p, n_d), "", dtype=object)
    starts = rng.random((n_p, n_d))
    lengths = rng.integers(PROMO_DAYS[0], PROMO_DAYS[1] + 1, (n_p, n_d))
    kinds = rng.integers(0, len(PROMOTIONS), (n_p, n_d))
    for p in range(n_p):
        d = 0
        while d < n_d:
            chance = PROMO_START_HIGH if log_season[p, d] > HIGH_SEASON else PROMO_START_LOW
            if starts[p, d] < chance:
                end = min(n_d, d + int(lengths[p, d]))
                name, off = PROMOTIONS[int(kinds[p, d])]
                promoted[p, d:end], discount[p, d:end], code[p, d:end] = True, off, name
                d = end + PROMO_GAP_DAYS
            else:
                d += 1

    # shelf-price spells: a new level on day 0 and on random days after
    changes = rng.random((n_k, n_p, n_d)) < SHELF_CHANGE_PER_DAY
    changes[:, :, 0] = True
    levels = rng.normal(0.0, SHELF_SD, (n_k, n_p, n_d)) - SHELF_SEASON_LEAN * log_season[None]
    levels = np.clip(levels, -SHELF_MAX, SHELF_MAX)
    spell_start = np.maximum.accumulate(np.where(changes, days, 0), axis=2)
    shelf = np.exp(np.take_along_axis(levels, spell_start, axis=2))
    price = np.round(list_prices[None, :, None] * shelf * (1 - discount[None, :, :] / 100), 2).clip(
        0.01
    )

    relative = price / list_prices[None, :, None]
    expected = (
        config.scale
        * BASE_UNITS
        * w.size[:, None, None]
        * w.popularity[None, :, None]
        * weekday_factor[None, None, :]
        * trend[None, :, :]
        * np.exp(log_season)[None, :, :]
        * np.where(promoted, w.uplift[:, None], 1.0)[None, :, :]
        * relative ** w.elasticity[None, :, None]
    )
    return Calendar(
        weekday=weekday_factor,
        season=np.exp(log_season),
        trend=trend,
        promoted=promoted,
        discount=discount,
        code=code,
        price=price,
        shelf=shelf,
        expected=expected,
    )


def run(
    config: SimConfig, reference: Reference, sink: EventSink, truth: Truth | None = None
) -> None:
    """Emit every pharmacy's till sales over the window, drawn in bulk from the demand model."""
    st = streams(config, "sales")
    rng, rnd = st.np, st.py
    products = reference.products
    pharmacies = reference.pharmacies
    if not products or not pharmacies:
        return
    local_clock = [rnd.random() < LOCAL_CLOCK_SHARE for _ in pharmacies]
    ndcs = [p.ndc for p in products]
    list_prices = np.array([float(p.list_price) for p in products])
    w = world(config, len(products), len(pharmacies))
    cal = calendar(config, w, list_prices, rng)
    if truth is not None:
        _record_truth(config, truth, w, cal, ndcs, list_prices, pharmacies)

    n_k, n_p, n_d = cal.expected.shape
    # transactions per cell: units = transactions x quantity, so E[units] = expected
    counts = rng.poisson(cal.expected / QUANTITIES.mean()).ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    k, p, d = np.unravel_index(cell, (n_k, n_p, n_d))
    n = len(cell)
    offsets = np.array([utc_offset_minutes(ph.state) for ph in pharmacies], np.int64)
    opens = config.start_ms + d * DAY_MS + OPEN_HOUR * HOUR_MS - offsets[k] * MINUTE_MS
    # two uniforms make a midday peak inside opening hours
    spread = (rng.random(n) + rng.random(n)) / 2 * OPEN_HOURS * HOUR_MS
    times = opens + spread.astype(np.int64)
    quantities = rng.choice(QUANTITIES, n)
    # a pharmacy-day's sales are numbered in time order, as its till would
    order = np.lexsort((times, d, k))
    k, p, d, times, quantities = k[order], p[order], d[order], times[order], quantities[order]
    group = k * n_d + d
    first = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    number = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n])) + 1

    stamps = [yymmdd(config.start_ms + day * DAY_MS) for day in range(n_d)]
    ids = [ph.facility_id for ph in pharmacies]
    prices, codes = cal.price[k, p, d].tolist(), cal.code[p, d].tolist()
    keys: list[str] = []
    payloads: list[dict[str, object]] = []
    for kk, pp, dd, num, qty, price, promo in zip(
        k.tolist(),
        p.tolist(),
        d.tolist(),
        number.tolist(),
        quantities.tolist(),
        prices,
        codes,
        strict=True,
    ):
        sale_id = f"SALE-{kk + 1:03d}-{stamps[dd]}-{num:05d}"
        sale: dict[str, object] = {
            "sale_id": sale_id,
            "pharmacy_id": ids[kk],
            "ndc": ndcs[pp],
            "quantity": qty,
            "unit_price": price,
        }
        if promo:
            sale["promotion_code"] = promo
        keys.append(sale_id)
        payloads.append(sale)
    tz = np.where(np.array(local_clock)[k], offsets[k], 0)
    sink.emit_many("sales.sale.completed", "pos", times, keys, payloads, None, tz)


def _record_truth(
    config: SimConfig,
    truth: Truth,
    w: World,
    cal: Calendar,
    ndcs: list[str],
    list_prices: np.ndarray,
    pharmacies: Sequence[Facility],
) -> None:
    """The demand table (one row per pharmacy x product x day, in that order) and the
    elasticity table (one row per product)."""
    n_k, n_p, n_d = cal.expected.shape
    k, p, d = (a.ravel() for a in np.indices((n_k, n_p, n_d)))
    first = np.datetime64(config.start, "D")
    truth.add(
        DEMAND,
        sale_date=first + d.astype("timedelta64[D]"),
        pharmacy_id=[pharmacies[i].facility_id for i in k.tolist()],
        ndc=[ndcs[i] for i in p.tolist()],
        expected_units=cal.expected.ravel(),
        unit_price=cal.price.ravel(),
        list_price=list_prices[p],
        shelf_factor=cal.shelf.ravel(),
        promoted=cal.promoted[p, d],
        promotion_code=cal.code[p, d].tolist(),
        discount_pct=cal.discount[p, d],
        weekday_factor=cal.weekday[d],
        season_factor=cal.season[p, d],
        trend_factor=cal.trend[p, d],
        pharmacy_factor=w.size[k],
    )
    truth.add(
        ELASTICITY,
        ndc=ndcs,
        elasticity=w.elasticity,
        promotion_uplift=w.uplift,
        list_price=list_prices,
        base_units=config.scale * BASE_UNITS * w.popularity,
        season_amplitude=w.season_amplitude,
        season_period_days=w.season_period,
        trend_per_year=w.trend,
    )
