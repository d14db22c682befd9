"""Keys: weak and malformed keys refused in one line, fingerprints that reveal nothing, a data
dir that refuses any key other than the ones it was first used with."""

from __future__ import annotations

import fcntl
import os
import secrets
from datetime import datetime

import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.keyring import ensure_keys, key_status, load_keys
from pharmaflow.ingest.phi.keys import fingerprint, generated_key, parse_key, weakness
from pharmaflow.ingest.phi.protect import ProtectedBatch, Protector
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.phi.vault import Sealer
from pharmaflow.lake.files import write_parquet_atomic


@pytest.fixture
def no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PHARMAFLOW_VAULT_KEY", "PHARMAFLOW_HMAC_KEY", "PHARMAFLOW_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)


def _settings(tmp_path, **keys: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", **keys)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (bytes(32), "all zeros"),
        (b"\x11" * 32, "distinct byte values"),
        (bytes(range(16)) * 2, "16-byte pattern"),
        (bytes(range(100, 132)), "counting sequence"),
        (bytes(range(0, 64, 2)), "counting sequence"),
        (secrets.token_bytes(16), "16 bytes, not 32"),
        (secrets.token_bytes(33), "33 bytes, not 32"),
    ],
)
def test_weak_keys_are_named_for_what_is_wrong(key: bytes, why: str) -> None:
    assert why in (weakness(key) or "")


def test_random_keys_are_never_called_weak() -> None:
    assert not [k for k in (secrets.token_bytes(32) for _ in range(5000)) if weakness(k)]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("00" * 32, "all zeros"),
        ("zz" * 32, "not all hexadecimal"),
        ("abc", "has 3 characters)"),
        ("ab" * 31, "31 bytes"),
    ],
)
def test_bad_key_text_is_one_line_naming_the_variable_not_the_value(text, said) -> None:
    with pytest.raises(PharmaflowError) as info:
        parse_key(text, "PHARMAFLOW_VAULT_KEY")
    message = str(info.value)
    assert "\n" not in message and said in message and message.startswith("PHARMAFLOW_VAULT_KEY")
    assert text not in message
    assert "secrets.token_hex(32)" in message


def test_a_key_from_a_secret_file_may_end_in_a_newline() -> None:
    key = secrets.token_bytes(32)
    assert parse_key(f"  {key.hex()}\n", "x") == key


def test_fingerprints_are_stable_short_and_do_not_reveal_the_key() -> None:
    key = secrets.token_bytes(32)
    fp = fingerprint(key)
    assert fp == fingerprint(key) and len(fp) == 16 and fp not in key.hex()
    assert fp != fingerprint(secrets.token_bytes(32))


def test_a_generated_key_is_created_once_and_private(tmp_path) -> None:
    path = tmp_path / "secrets" / "vault.key"
    first = generated_key(path)
    assert generated_key(path) == first and weakness(first) is None
    assert path.stat().st_mode & 0o077 == 0
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_generated_keys_are_recorded_and_a_later_env_key_is_refused(tmp_path, no_env_keys):
    settings = _settings(tmp_path)
    keys = ensure_keys(settings)
    assert keys.vault.origin.startswith("key file") and keys.vault.path is not None
    assert ensure_keys(settings).vault.value == keys.vault.value  # stable
    other = secrets.token_hex(32)
    for field, variable, fix in (
        ("vault_key", "PHARMAFLOW_VAULT_KEY", "pharmaflow keys rotate"),
        ("hmac_key", "PHARMAFLOW_HMAC_KEY", "cannot be changed"),
    ):
        with pytest.raises(PharmaflowError) as info:
            ensure_keys(_settings(tmp_path, **{field: other}))
        message = str(info.value)
        assert "\n" not in message and message.startswith(variable)
        assert fingerprint(bytes.fromhex(other)) in message and fix in message
        recorded = keys.vault if field == "vault_key" else keys.hmac
        assert recorded.fingerprint in message and other not in message


def test_env_keys_are_recorded_and_a_changed_one_is_refused(tmp_path, no_env_keys):
    vault, hmac_key = secrets.token_hex(32), secrets.token_hex(32)
    ensure_keys(_settings(tmp_path, vault_key=vault, hmac_key=hmac_key))
    assert not (tmp_path / "data" / "secrets").exists()  # nothing generated beside the vault
    with pytest.raises(PharmaflowError, match="is missing and this data dir's vault key has"):
        ensure_keys(_settings(tmp_path, hmac_key=hmac_key))  # forgot the vault key
    assert not (tmp_path / "data" / "secrets" / "vault.key").exists()  # and made none up
    with pytest.raises(PharmaflowError, match=r"^PHARMAFLOW_HMAC_KEY \(fingerprint"):
        ensure_keys(_settings(tmp_path, vault_key=vault, hmac_key=secrets.token_hex(32)))


def test_a_secrets_dir_outside_the_data_dir_holds_the_generated_keys(tmp_path, no_env_keys):
    settings = Settings(data_dir=tmp_path / "data", secrets_dir=tmp_path / "elsewhere")
    keys = ensure_keys(settings)
    assert keys.vault.path == tmp_path / "elsewhere" / "vault.key"
    status = key_status(settings)
    assert not status["keys_inside_data_dir"]
    assert status["vault"]["state"] == "ok" and status["vault"]["fingerprint"] == fingerprint(
        keys.vault.value
    )
    assert key_status(_settings(tmp_path))["keys_inside_data_dir"]


def _legacy_vault(settings: Settings, vault: bytes, hmac_key: bytes) -> None:
    """A data dir as made before fingerprints: a sealed vault record, no keys.json."""
    out = ProtectedBatch()
    Protector(Tokenizer(hmac_key), Sealer(vault), {}).protect_patients(
        [{"order_id": "O1", "patient": {"patient_id": "MRN7", "date_of_birth": "1980-01-01"}}],
        ["e1"],
        [datetime(2026, 1, 1)],
        out,
    )
    write_parquet_atomic(out.patients_table(), settings.vault_dir / "patients" / "part-b1.parquet")


def test_a_data_dir_from_before_fingerprints_is_checked_against_its_vault(tmp_path, no_env_keys):
    vault, hmac_key = secrets.token_bytes(32), secrets.token_bytes(32)
    _legacy_vault(_settings(tmp_path), vault, hmac_key)
    with pytest.raises(PharmaflowError, match="already holds sealed data"):
        ensure_keys(_settings(tmp_path))  # no key given and none to generate: refused
    assert not (tmp_path / "data" / "secrets").exists()
    wrong = secrets.token_hex(32)
    with pytest.raises(PharmaflowError, match="does not open the sealed records"):
        ensure_keys(_settings(tmp_path, vault_key=wrong, hmac_key=hmac_key.hex()))
    with pytest.raises(PharmaflowError, match="does not give the patient keys"):
        ensure_keys(_settings(tmp_path, vault_key=vault.hex(), hmac_key=wrong))
    assert not (tmp_path / "data" / "keys.json").exists()
    keys = ensure_keys(_settings(tmp_path, vault_key=vault.hex(), hmac_key=hmac_key.hex()))
    assert keys.vault.value == vault and (tmp_path / "data" / "keys.json").exists()


def test_a_held_lease_is_released_with_the_keys(tmp_path, no_env_keys):
    settings = _settings(tmp_path)
    keys = load_keys(settings)
    fd = os.open(settings.root / ".keys-in-use.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        keys.release()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
