"""Key material for tokens and the vault.

Production passes keys through the environment (from a secret manager). Local runs get a random
key generated once per data dir, written with owner-only permissions, so tokens are stable across
runs of the same data dir and useless anywhere else.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from pharmaflow.errors import PharmaflowError


def load_key(configured: SecretStr | None, path: Path, name: str) -> bytes:
    """The configured 32-byte key (64 hex characters), or the data dir's own generated one."""
    if configured is not None:
        return _parse(configured.get_secret_value(), name)
    if path.exists():
        return _parse(path.read_text().strip(), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    os.replace(tmp, path)
    return key


def _parse(text: str, name: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PharmaflowError(f"{name} key must be 64 hexadecimal characters") from None
    if len(key) != 32:
        raise PharmaflowError(f"{name} key must be 32 bytes (64 hexadecimal characters)")
    return key
