"""Environment dbt needs before it is imported: no telemetry, no version check, no network."""

from __future__ import annotations

import os

QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_VERSION_CHECK": "false",
}


def quiet_dbt() -> None:
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
