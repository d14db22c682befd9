"""Environment dbt needs before it is imported: no telemetry, no version check, no network."""

from __future__ import annotations

import logging
import os
from typing import Any

QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_VERSION_CHECK": "false",
}


def quiet_dbt() -> None:
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def dbt_runner() -> Any:
    """dbt's `dbtRunner` class, imported quietly. Importing dbt imports snowplow_tracker, whose
    module-level `logging.basicConfig()` puts a stderr handler on the root logger: every
    pharmaflow log line after the first build would then also print on the terminal. The
    handlers that import added are taken off again."""
    quiet_dbt()
    root = logging.getLogger()
    before = list(root.handlers)
    from dbt.cli.main import dbtRunner  # heavy: only when dbt runs

    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
    return dbtRunner
