"""The rules behind `pharmaflow check`, one module per source of truth.

* `lake`: freshness_source and dead_letter_rate, from the lake's commit manifests only;
* `gold`: freshness_gold and delivery_sla, from what serving reads (the published snapshot, or
  the PostgreSQL warehouse);
* `kafka`: consumer_lag, from the broker's committed offsets and high watermarks;
* `builds`: build_age and failed_tests, from the build log;
* `judge`: the pure part every rule shares (thresholds, ages, one-line details).

`RULES` is here, apart from the rules, so the CLI can name the valid `--only` values without
importing any of them.
"""

from __future__ import annotations

RULES = (
    "freshness_source",
    "freshness_gold",
    "consumer_lag",
    "dead_letter_rate",
    "delivery_sla",
    "build_age",
    "failed_tests",
)
