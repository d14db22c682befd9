"""Keys are created exactly once however many processes start together on a fresh data dir."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.phi.keyring import ensure_keys, load_keys

PROCESSES = 6
ROUNDS = 10


def _start(data_dir: Path, start_at: float, lease: bool, out: mp.Queue) -> None:
    """One process of the race: wait for the common start time, then load the keys."""
    try:
        settings = Settings(data_dir=data_dir)
        while time.time() < start_at:
            pass  # spin: all processes leave within microseconds of each other
        keys = load_keys(settings) if lease else ensure_keys(settings)
        out.put((keys.vault.fingerprint, keys.hmac.fingerprint))
    except BaseException as exc:  # reported to the test, not lost in a child's stderr
        out.put(("error", repr(exc)))


@pytest.fixture
def no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PHARMAFLOW_VAULT_KEY", "PHARMAFLOW_HMAC_KEY", "PHARMAFLOW_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_processes_starting_together_on_a_fresh_data_dir_all_get_the_same_keys(
    tmp_path: Path, no_env_keys: None
) -> None:
    ctx = mp.get_context("fork")
    for round_ in range(ROUNDS):
        data_dir = tmp_path / f"round{round_}"
        out: mp.Queue = ctx.Queue()
        start_at = time.time() + 0.3
        procs = [
            ctx.Process(target=_start, args=(data_dir, start_at, i % 2 == 0, out))
            for i in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=20) for _ in procs]
        for p in procs:
            p.join(timeout=20)
        assert [p.exitcode for p in procs] == [0] * PROCESSES
        assert not [r for r in results if r[0] == "error"], results
        assert len(set(results)) == 1, results  # one vault key and one HMAC key for all
        on_disk = Settings(data_dir=data_dir)
        assert ensure_keys(on_disk).vault.fingerprint == results[0][0]
        secrets = sorted(p.name for p in on_disk.key_dir.iterdir())
        assert secrets == [".keys.lock", "hmac.key", "vault.key"]  # no stray temporaries
