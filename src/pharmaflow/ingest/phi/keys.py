"""Key material for tokens and the vault: parsing, strength, fingerprints, generated key files.

Production passes keys through the environment (from a secret manager). Local runs get a random
key generated once per key dir (`settings.key_dir`), written owner-only, so tokens are stable
across runs of the same data dir and useless anywhere else. What a data dir was first used with
is checked by `keyring` (fingerprints); this module holds the primitives it builds on.

Generated keys are created exactly once however many processes start together: creation runs
under an exclusive `flock` of the key dir's lock file, and the key is published by `link()`ing
a complete, fsynced temporary file to the final name (which fails if the name exists), so no
reader ever sees a half-written key and no two processes can both win.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from pydantic import SecretStr

from pharmaflow.datadir import fsync_dir
from pharmaflow.errors import PharmaflowError
from pharmaflow.locks import locked

KEY_BYTES = 32
_FINGERPRINT_INFO = b"pharmaflow key fingerprint v1"
_MIN_DISTINCT = 16  # a random 32-byte key has ~30 distinct byte values; 16 is ~never reached
_MAX_PERIOD = 16
_HOW_TO_MAKE = 'generate one with: python -c "import secrets; print(secrets.token_hex(32))"'
KEY_DIR_LOCK = ".keys.lock"


@dataclass(frozen=True)
class KeySpec:
    """One of the two keys: how it is named to the operator and where it can come from."""

    name: str  # "vault" | "hmac": its entry in the data dir's fingerprint record
    label: str  # "vault key" | "HMAC key"
    env: str  # the environment variable that sets it
    file: str  # the generated key file's name in the key dir


VAULT = KeySpec("vault", "vault key", "PHARMAFLOW_VAULT_KEY", "vault.key")
HMAC = KeySpec("hmac", "HMAC key", "PHARMAFLOW_HMAC_KEY", "hmac.key")


def fingerprint(key: bytes) -> str:
    """A short name for a key that does not reveal it (HMAC of a constant under the key)."""
    return hmac.digest(key, _FINGERPRINT_INFO, "sha256").hex()[:16]


def weakness(key: bytes) -> str | None:
    """Why `key` is unfit as a 256-bit key, or None. Catches typed or placeholder keys (zeros,
    one byte repeated, a short pattern, a counting sequence), never a random one in practice."""
    if len(key) != KEY_BYTES:
        return f"it is {len(key)} bytes, not {KEY_BYTES} (64 hexadecimal characters)"
    if not any(key):
        return "it is all zeros"
    distinct = len(set(key))
    if distinct < _MIN_DISTINCT:
        return f"it has only {distinct} distinct byte values (a random key has about 30)"
    for period in range(1, _MAX_PERIOD + 1):
        if key[period:] == key[:-period]:
            return f"it repeats a {period}-byte pattern"
    if len({(b - a) % 256 for a, b in pairwise(key)}) == 1:
        return "it is a counting sequence"
    return None


def parse_key(text: str, origin: str) -> bytes:
    """A key from its hex text (surrounding whitespace ignored: secret files end in newlines).
    Every failure is one line naming `origin` and never repeating the value."""
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        hexadecimal = all(c in "0123456789abcdefABCDEF" for c in text)
        raise PharmaflowError(
            f"{origin} must be 64 hexadecimal characters (it has {len(text)} characters"
            f"{'' if hexadecimal else ', not all hexadecimal'}); {_HOW_TO_MAKE}"
        ) from None
    problem = weakness(key)
    if problem:
        raise PharmaflowError(f"{origin} is not a usable key ({problem}); {_HOW_TO_MAKE}")
    return key


def new_key() -> bytes:
    """A fresh random key (re-drawn in the ~impossible case that it looks weak)."""
    while True:
        key = secrets.token_bytes(KEY_BYTES)
        if weakness(key) is None:
            return key


def write_key_file(path: Path, key: bytes, *, replace: bool = False) -> None:
    """Write `key` to `path` durably and atomically. Without `replace` the name must be new
    (exclusive: `FileExistsError` if it exists); with it, it is renamed over the old file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and fails if another process published first
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def read_key_file(path: Path) -> bytes:
    return parse_key(path.read_text(encoding="ascii", errors="replace"), f"key file {path}")


def generated_key(path: Path) -> bytes:
    """The key in `path`, created there first if missing: exactly once across processes."""
    if path.exists():
        return read_key_file(path)
    with locked(path.parent / KEY_DIR_LOCK):
        if not path.exists():  # re-check under the lock: another process may have won
            write_key_file(path, new_key())
    return read_key_file(path)


def load_key(configured: SecretStr | None, path: Path, name: str) -> bytes:
    """The configured key (64 hex characters), or the generated one in `path` (created once).
    Low level: `keyring.load_keys` adds the check against the data dir's fingerprints."""
    if configured is not None:
        spec = VAULT if name.lower() == "vault" else HMAC
        return parse_key(configured.get_secret_value(), spec.env)
    return generated_key(path)
