"""One served data dir per test session: simulated, ingested, counted live, built, published.

Serving tests (API, dashboard, browser, schemathesis, the load bench's checks) all read the
same data dir, so the simulate → ingest → speed layer → build chain runs once per session.
They only read it: a test that writes (a build during serving, tampering) makes its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from pharmaflow.config import Settings
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.people import patient_pool
from pharmaflow.simulate.simulator import SimStats, simulate
from tests.conftest import TEST_KEYS
from tests.phi_scan import leaks, phi_values

SERVED = SimConfig(seed=42, days=7, scale=0.3)


@dataclass(frozen=True)
class ServedData:
    settings: Settings
    events: Path  # the simulated JSONL (raw, synthetic patient data: for PHI-leak checks)
    stats: SimStats


def served_settings(root: Path) -> Settings:
    return Settings(
        data_dir=root,
        batch_size=20_000,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        api_cache_seconds=0.0,
    )


def make_served(folder: Path, config: SimConfig = SERVED) -> ServedData:
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.realtime.workers import run_realtime_worker
    from pharmaflow.warehouse.runner import build

    events = folder / "events.jsonl"
    stats = simulate(config, events)
    settings = served_settings(folder / "data")
    run_ingest(settings, str(events))
    run_realtime_worker(settings, str(events))
    result = build(settings)
    assert result.success, result.failures
    return ServedData(settings, events, stats)


def api_keys(settings: Settings, prefix: str = "test") -> dict[str, str]:
    """A fresh raw API key per role, created in the data dir's security store (named
    `<prefix>-<role>`)."""
    from pharmaflow.serve.security.roles import Role
    from pharmaflow.serve.security.store import open_security

    keys, audit = open_security(settings)
    try:
        return {
            role.value: keys.create(f"{prefix}-{role}", role, actor="tests", reason="tests")[1]
            for role in Role
        }
    finally:
        keys.close()
        audit.close()


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}")


@cache
def raw_phi(events: Path) -> tuple[set[str], set[str]]:
    """(values, names) a person must never read in a serving answer: every simulated
    patient's MRN, DOB, phone, e-mail, street and name words (the simulator's pool behind
    `events`), plus every e-mail and phone number written into the raw free text (survey
    comments, exception details) of `events`."""
    values, names = phi_values(patient_pool(SERVED))
    with events.open("rb") as lines:
        for line in lines:
            if b"@" in line:
                values.update(_EMAIL.findall(line.decode("utf-8", "replace")))
            if b'"comment"' in line or b'"detail"' in line:
                try:
                    payload = orjson.loads(line)["payload"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a malformed line (the simulator's faults): quarantined
                for key in ("comment", "detail"):
                    values.update(_PHONE.findall(str(payload.get(key) or "")))
    return values, names


def assert_no_phi(answers: Any, phi: tuple[set[str], set[str]]) -> None:
    text = orjson.dumps(answers, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    assert leaks([text], *phi) == []
