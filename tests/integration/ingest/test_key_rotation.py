"""`keys rotate`: a kill -9 at any step leaves exactly one key opening everything, and the next
run (or a re-run) finishes or undoes the rotation; it never runs beside an ingest."""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import shutil
import signal
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.keyring import ensure_keys, load_keys
from pharmaflow.ingest.phi.keys import fingerprint
from pharmaflow.ingest.phi.rotate import _KILL_AT, pending, rotate_vault_key, sealed_columns
from pharmaflow.ingest.phi.vault import PhiVault, Sealer
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.lake.writers import WriterLock

ENV_KEYS = ("PHARMAFLOW_VAULT_KEY", "PHARMAFLOW_HMAC_KEY", "PHARMAFLOW_SECRETS_DIR")


@pytest.fixture(scope="module")
def ingested(faulty_input, tmp_path_factory) -> Path:
    """A data dir with generated keys: vault and quarantine parts from several batches."""
    data_dir = tmp_path_factory.mktemp("rotation") / "data"
    saved = {k: os.environ.pop(k) for k in ENV_KEYS if k in os.environ}
    try:
        settings = Settings(data_dir=data_dir, batch_size=15_000)
        engine = IngestEngine(settings)
        engine.run(open_sources(str(faulty_input[0]), engine.registry))
        engine.keys.release()
    finally:
        os.environ.update(saved)
    return data_dir


@pytest.fixture
def no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_KEYS:
        monkeypatch.delenv(name, raising=False)


def _copy(ingested: Path, tmp_path: Path, name: str = "data") -> Settings:
    target = tmp_path / name
    shutil.copytree(ingested, target)
    return Settings(data_dir=target)


def _sealed(settings: Settings) -> list[tuple[bytes, bytes]]:
    """Every sealed value of the data dir with its associated data."""
    out = []
    for where in sealed_columns(settings):
        for path in sorted(where.folder.rglob("part-*.parquet")):
            table = pq.read_table(path)
            aads = table[where.aad_column].to_pylist() if where.aad_column else [None] * len(table)
            for value, aad in zip(table[where.column].to_pylist(), aads, strict=True):
                out.append((value, aad.encode() if aad else b""))
    return out


def _opening(settings: Settings, *keys: bytes) -> list[int]:
    """For each key, how many sealed values it opens."""
    counts = []
    for key in keys:
        sealer, n = Sealer(key), 0
        for value, aad in _sealed(settings):
            try:
                sealer.open(value, aad)
                n += 1
            except PharmaflowError:
                pass
        counts.append(n)
    return counts


def _parts(settings: Settings) -> int:
    return sum(len(list(w.folder.rglob("part-*.parquet"))) for w in sealed_columns(settings))


def _rotations_logged(settings: Settings) -> list[dict]:
    log = settings.vault_dir / "access_log.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return [e for e in map(orjson.loads, lines) if e.get("action") == "rotate_vault_key"]


def _rotate_killed_at(settings: Settings, step: int, new_key_hex: str | None = None) -> int:
    """Run a rotation in a child process that SIGKILLs itself at `step`; its exit code."""

    def child() -> None:
        os.environ[_KILL_AT] = str(step)
        rotate_vault_key(settings, requested_by="ops", new_key_hex=new_key_hex)

    proc = mp.get_context("fork").Process(target=child)
    proc.start()
    proc.join(timeout=60)
    return proc.exitcode


def test_a_rotation_re_seals_everything_and_is_logged(ingested, tmp_path, no_env_keys):
    settings = _copy(ingested, tmp_path)
    old = ensure_keys(settings)
    total = len(_sealed(settings))
    assert total > 100 and len(list((settings.lake_dir / "quarantine").rglob("*.parquet"))) > 1
    patient_key = pq.read_table(next((settings.vault_dir / "patients").glob("*.parquet")))[
        "patient_key"
    ][0].as_py()
    before = PhiVault(settings.vault_dir, old.vault.value).reidentify(
        patient_key, requested_by="qa", reason="before"
    )
    done = rotate_vault_key(settings, requested_by="ops.alice")
    new = ensure_keys(settings)
    assert new.vault.fingerprint == done.new_fingerprint != old.vault.fingerprint
    assert new.hmac.value == old.hmac.value  # the HMAC key never changes
    assert _opening(settings, old.vault.value, new.vault.value) == [0, total]
    assert done.records == total and not (settings.root / ".key-rotation").exists()
    after = PhiVault(settings.vault_dir, new.vault.value).reidentify(
        patient_key, requested_by="qa", reason="after"
    )
    assert after == before
    [entry] = _rotations_logged(settings)
    assert entry["requested_by"] == "ops.alice" and entry["records"] == total
    assert (entry["old_fingerprint"], entry["new_fingerprint"]) == (
        old.vault.fingerprint,
        new.vault.fingerprint,
    )
    assert old.vault.value.hex() not in (settings.vault_dir / "access_log.jsonl").read_text()


def test_a_kill_at_any_step_leaves_one_key_and_the_next_run_finishes(
    ingested, tmp_path, no_env_keys
):
    probe = _copy(ingested, tmp_path, "probe")
    # journal, new key file, one per staged file, fsync, commit, key file, fingerprint, one per
    # renamed file, access log, journal removed: the step after the last one is a clean finish
    steps = 2 * _parts(probe) + 8
    assert _rotate_killed_at(_copy(ingested, tmp_path, "last"), steps) == -signal.SIGKILL
    assert _rotate_killed_at(_copy(ingested, tmp_path, "past"), steps + 1) == 0
    total = len(_sealed(probe))
    old = ensure_keys(probe).vault.value
    outcomes = set()
    for k in range(1, steps):
        settings = _copy(ingested, tmp_path, f"k{k}")
        assert _rotate_killed_at(settings, k) == -signal.SIGKILL
        state = pending(settings)
        if state != "committed":  # before the commit point nothing in use has changed
            assert _opening(settings, old) == [total], (k, steps, state)
        # the next run finishes a committed rotation or undoes one that was not
        current = ensure_keys(settings).vault.value
        assert _opening(settings, current) == [total]
        if current != old:
            assert _opening(settings, old) == [0]
        assert pending(settings) is None and not (settings.root / ".key-rotation").exists()
        assert len(_rotations_logged(settings)) == (current != old)
        outcomes.add(current != old)
        # and a re-run rotates from whichever key is in place, logged exactly once more
        rotate_vault_key(settings, requested_by="ops")
        final = ensure_keys(settings).vault.value
        assert final != current and _opening(settings, final, current) == [total, 0]
        assert len(_rotations_logged(settings)) == 1 + (current != old)
        assert [p.name for p in settings.key_dir.iterdir() if "next" in p.name] == []
    assert outcomes == {False, True}


def test_with_env_keys_the_new_key_comes_from_the_environment(ingested, tmp_path, no_env_keys):
    generated = _copy(ingested, tmp_path)
    keys = ensure_keys(generated)
    shutil.rmtree(generated.key_dir)  # the operator moves the keys into a secret manager
    env = {"vault_key": keys.vault.value.hex(), "hmac_key": keys.hmac.value.hex()}
    settings = Settings(data_dir=generated.data_dir, **env)
    with pytest.raises(PharmaflowError, match="PHARMAFLOW_NEW_VAULT_KEY"):
        rotate_vault_key(settings, requested_by="ops")
    with pytest.raises(PharmaflowError, match="not a usable key"):
        rotate_vault_key(settings, requested_by="ops", new_key_hex="00" * 32)
    new_hex = secrets.token_hex(32)
    # killed right after the commit point (journal, staged files, fsync, commit): the next run
    # completes the rotation...
    commit = 1 + _parts(settings) + 2
    assert _rotate_killed_at(settings, commit, new_hex) == -signal.SIGKILL
    assert pending(settings) == "committed"
    with pytest.raises(PharmaflowError, match=r"^PHARMAFLOW_VAULT_KEY \(fingerprint"):
        ensure_keys(settings)  # ...and refuses the old secret from then on
    total = len(_sealed(settings))
    assert _opening(settings, bytes.fromhex(new_hex), keys.vault.value) == [total, 0]
    moved = Settings(data_dir=generated.data_dir, vault_key=new_hex, hmac_key=env["hmac_key"])
    assert ensure_keys(moved).vault.fingerprint == fingerprint(bytes.fromhex(new_hex))
    assert not generated.key_dir.exists()  # no key file was written beside the vault
    assert len(_rotations_logged(settings)) == 1


def test_a_rotation_refuses_to_run_beside_an_ingest(ingested, tmp_path, no_env_keys):
    settings = _copy(ingested, tmp_path)
    before = ensure_keys(settings).vault.fingerprint
    with (
        WriterLock(settings.lake_dir, "kafka-0"),
        pytest.raises(PharmaflowError, match="writer 'kafka-0'"),
    ):
        rotate_vault_key(settings, requested_by="ops")
    keys = load_keys(settings)  # an ingest engine holds this while it lives
    with pytest.raises(PharmaflowError, match="an ingest is running"):
        rotate_vault_key(settings, requested_by="ops")
    keys.release()
    assert ensure_keys(settings).vault.fingerprint == before
    rotate_vault_key(settings, requested_by="ops")
    assert ensure_keys(settings).vault.fingerprint != before
