"""Point-of-sale sales at the pharmacies, with weekly seasonality and promotion days.

Volume follows store hours in each pharmacy's local time, is lower at weekends, and rises
on promotion days, when a few products sell at a discount under a `promotion_code`. Some
stores' tills stamp events in local time with an offset (same instant, different
notation), which the platform must normalise.
"""

from __future__ import annotations

import numpy as np

from pharmaflow.contracts.reference import Reference
from pharmaflow.simulate.clock import utc_offset_minutes, weekday, yymmdd
from pharmaflow.simulate.config import DAY_MS, HOUR_MS, MINUTE_MS, SimConfig, streams
from pharmaflow.simulate.events import EventSink
from pharmaflow.simulate.truth import Truth

SALES_PER_DAY = 150  # per pharmacy on a weekday, at scale 1
DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 1.1, 0.6, 0.45)  # Monday .. Sunday
PROMOTIONS = (("FALL10", 10), ("WELLNESS15", 15), ("REFILL5", 5), ("SEASON20", 20))
PROMO_DAY_SHARE = 0.2
PROMO_UPLIFT = 1.3  # a promotion day sells this much more overall
PROMOTED_PRODUCTS = 3
LOCAL_CLOCK_SHARE = 0.3  # of stores whose tills write local time with an offset
OPEN_HOUR, OPEN_HOURS = 8, 13


def run(
    config: SimConfig, reference: Reference, sink: EventSink, truth: Truth | None = None
) -> None:
    """Emit every pharmacy's till sales, day by day, drawn in bulk per store and day."""
    st = streams(config, "sales")
    rng, rnd = st.np, st.py
    products = reference.products
    if not products:
        return
    ndcs = [p.ndc for p in products]
    prices = [float(p.list_price) for p in products]
    popularity = 1 / np.sqrt(np.array(prices))  # cheap products sell more often
    pharmacies = reference.pharmacies
    local_clock = [rnd.random() < LOCAL_CLOCK_SHARE for _ in pharmacies]
    for d in range(config.days):
        day = config.start_ms + d * DAY_MS
        for number, (pharmacy, local) in enumerate(zip(pharmacies, local_clock, strict=True), 1):
            weights = popularity.copy()
            volume = SALES_PER_DAY * config.scale * DAY_FACTOR[weekday(day)]
            promoted = np.zeros(len(products), bool)
            code, discount = "", 0
            if rnd.random() < PROMO_DAY_SHARE:
                code, discount = rnd.choice(PROMOTIONS)
                chosen = rng.choice(len(products), min(PROMOTED_PRODUCTS, len(products)), False)
                promoted[chosen] = True
                weights[chosen] *= 3
                volume *= PROMO_UPLIFT
            n = int(rng.poisson(volume))
            offset = utc_offset_minutes(pharmacy.state)
            opens = day + OPEN_HOUR * HOUR_MS - offset * MINUTE_MS
            # Two uniforms make a midday peak inside opening hours.
            spread = (rng.random(n) + rng.random(n)) / 2 * OPEN_HOURS * HOUR_MS
            times = np.sort(opens + spread.astype(np.int64))
            which = rng.choice(len(products), n, p=weights / weights.sum()).tolist()
            quantities = rng.choice((1, 1, 1, 1, 2, 2, 3), n).tolist()
            stamp = yymmdd(day)
            keys = [f"SALE-{number:03d}-{stamp}-{k:05d}" for k in range(1, n + 1)]
            payloads: list[dict[str, object]] = []
            for sale_id, i, quantity in zip(keys, which, quantities, strict=True):
                sale: dict[str, object] = {
                    "sale_id": sale_id,
                    "pharmacy_id": pharmacy.facility_id,
                    "ndc": ndcs[i],
                    "quantity": quantity,
                }
                if promoted[i]:
                    sale["unit_price"] = round(prices[i] * (100 - discount) / 100, 2)
                    sale["promotion_code"] = code
                else:
                    sale["unit_price"] = prices[i]
                payloads.append(sale)
            sink.emit_many(
                "sales.sale.completed", "pos", times, keys, payloads, None, offset if local else 0
            )
