#!/usr/bin/env python3
"""Write a `.env` for docker-compose.yml from `.env.example`, every `change-me` replaced.

`make compose-env` runs it. Each placeholder gets a fresh random value of the kind its
variable needs, because a wrong kind fails only at run time, inside a container: the
pharmaflow keys must be 64 hex characters (and not weak), Airflow's Fernet key must be 32
bytes in URL-safe base64, and the database passwords go into connection URLs, so they are hex
(URL-safe). Every other line is copied unchanged. Standard library only: it runs before any
environment exists.

An existing `.env` is never overwritten (it holds the keys of a data volume: a new HMAC key
would make the volume's patient keys unusable); the file is created owner-only (0600).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
from pathlib import Path

PLACEHOLDER = "change-me"
_LINE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def fernet_key() -> str:
    """A Fernet key: 32 random bytes, URL-safe base64 (what Airflow's fernet_key expects)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def secret_for(name: str) -> str:
    """A random value suited to variable `name`."""
    if name.endswith("FERNET_KEY"):
        return fernet_key()
    return secrets.token_hex(32)  # 64 hex chars: the pharmaflow keys' format, URL-safe


def render(example: str) -> str:
    """The example's text with every `NAME=change-me` line given a fresh value."""
    out = []
    for line in example.splitlines(keepends=True):
        match = _LINE.match(line.rstrip("\n"))
        if match and match["value"].strip() == PLACEHOLDER:
            line = f"{match['name']}={secret_for(match['name'])}\n"
        out.append(line)
    return "".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: make_env.py .env.example .env", file=sys.stderr)
        return 2
    example, target = Path(argv[1]), Path(argv[2])
    if target.exists():
        print(f"{target} exists: not overwritten (it holds the stack's keys)", file=sys.stderr)
        return 1
    text = render(example.read_text())
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    print(f"wrote {target} (mode 600) with fresh secrets", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
