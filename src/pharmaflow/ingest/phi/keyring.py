"""The keys of one data dir: where they come from, and proof they are the ones it started with.

A key change must never be silently accepted: records sealed under two vault keys, or one MRN
under two patient keys, cannot be told apart afterwards. So the data dir records a fingerprint
of each key the first time it is used (`<data_dir>/keys.json`; a fingerprint does not reveal
the key) and every later start compares against it, refusing with one line that names the key,
both fingerprints and the fix. A data dir made before fingerprints existed is checked against
what it already holds (a sealed record must open; its patient key must be the HMAC of its MRN)
before its fingerprints are recorded.

`ensure_keys` does all of this under an exclusive lock of the data dir, so processes starting
together agree; `load_keys` also holds a shared *in-use* lease for the caller's lifetime, which
`keys rotate` needs exclusively: a rotation never runs beside a process holding the old key.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.keys import (
    HMAC,
    VAULT,
    KeySpec,
    fingerprint,
    generated_key,
    parse_key,
    read_key_file,
)
from pharmaflow.lake.files import write_bytes_atomic
from pharmaflow.locks import locked

if TYPE_CHECKING:
    from pharmaflow.config import Settings

RECORD = "keys.json"
DATA_DIR_LOCK = ".keys.lock"
IN_USE_LOCK = ".keys-in-use.lock"


@dataclass(frozen=True)
class LoadedKey:
    spec: KeySpec
    value: bytes = field(repr=False)
    origin: str  # "PHARMAFLOW_VAULT_KEY", or "key file <path>"
    path: Path | None  # the generated key file, when the key is not from the environment

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)


class _Lease:
    """A shared flock on the data dir's in-use lock, released when closed or collected."""

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None  # set first: `__del__` runs even if the open fails
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits while a rotation runs

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


@dataclass(frozen=True)
class Keys:
    """Both keys, checked against the data dir. `lease` is held while this object lives."""

    vault: LoadedKey
    hmac: LoadedKey
    lease: _Lease | None = field(default=None, repr=False, compare=False)

    def release(self) -> None:
        if self.lease is not None:
            self.lease.close()


def record_path(settings: Settings) -> Path:
    return settings.root / RECORD


def read_record(settings: Settings) -> dict[str, Any] | None:
    path = record_path(settings)
    if not path.exists():
        return None
    try:
        record = orjson.loads(path.read_bytes())
        if not isinstance(record, dict):
            raise ValueError("not an object")
    except ValueError:
        raise PharmaflowError(
            f"{path} is damaged: restore it from a backup (it holds only key fingerprints)"
        ) from None
    return record


def write_record(settings: Settings, record: dict[str, Any]) -> None:
    write_bytes_atomic(orjson.dumps(record, option=orjson.OPT_INDENT_2), record_path(settings))


def recorded(record: dict[str, Any] | None, spec: KeySpec) -> str | None:
    entry = (record or {}).get(spec.name)
    return entry.get("fingerprint") if isinstance(entry, dict) else None


def with_fingerprint(record: dict[str, Any] | None, spec: KeySpec, fp: str) -> dict[str, Any]:
    out = dict(record or {"format": 1})
    out[spec.name] = {"fingerprint": fp, "since": datetime.now(UTC).isoformat()}
    return out


def configured(settings: Settings, spec: KeySpec) -> str | None:
    secret = settings.vault_key if spec is VAULT else settings.hmac_key
    return secret.get_secret_value() if secret is not None else None


def key_file(settings: Settings, spec: KeySpec) -> Path:
    return settings.key_dir / spec.file


def _resolve(settings: Settings, spec: KeySpec, *, create: bool) -> LoadedKey | None:
    """The key from the environment, else from its key file (generated if `create`)."""
    text = configured(settings, spec)
    if text is not None:
        return LoadedKey(spec, parse_key(text, spec.env), spec.env, None)
    path = key_file(settings, spec)
    if path.exists():
        return LoadedKey(spec, read_key_file(path), f"key file {path}", path)
    if not create:
        return None
    return LoadedKey(spec, generated_key(path), f"key file {path}", path)


def _mismatch(key: LoadedKey, expected: str, settings: Settings) -> PharmaflowError:
    if key.spec is VAULT:
        fix = (
            "set the data dir's key again; to change it, run `pharmaflow keys rotate` with that "
            "key in place"
        )
    else:
        fix = (
            "set the data dir's key again (the HMAC key cannot be changed on a data dir: patient "
            "keys and name tokens would change; docs/keys.md)"
        )
    return PharmaflowError(
        f"{key.origin} (fingerprint {key.fingerprint}) is not the {key.spec.label} of this data "
        f"dir (fingerprint {expected}, recorded in {record_path(settings)}): {fix}"
    )


def _missing(settings: Settings, spec: KeySpec, why: str) -> PharmaflowError:
    return PharmaflowError(
        f"{spec.label} file {key_file(settings, spec)} is missing and {why}: restore the file, "
        f"or set {spec.env} to the key this data dir was created with"
    )


def ensure_keys(settings: Settings) -> Keys:
    """Both keys of this data dir, generated if it has none yet, and checked against the
    fingerprints it recorded; refuses (one line) a key that differs. Safe to call from many
    processes at once: all of them end with the same keys. Call it once before forking
    workers that each load the keys."""
    from pharmaflow.ingest.phi.rotate import recover

    settings.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with locked(settings.root / DATA_DIR_LOCK):
        recover(settings)  # an interrupted `keys rotate` is finished or rolled back first
        return checked_keys(settings)


def checked_keys(settings: Settings) -> Keys:
    """The body of `ensure_keys`; the caller holds the data dir's key lock."""
    from pharmaflow.ingest.phi.rotate import sealed_sample

    record = read_record(settings)
    sample = sealed_sample(settings) if record is None else None
    keys: dict[str, LoadedKey] = {}
    for spec in (VAULT, HMAC):
        expected = recorded(record, spec)
        key = _resolve(settings, spec, create=expected is None and sample is None)
        if key is None:
            why = (
                f"this data dir's {spec.label} has fingerprint {expected}"
                if expected
                else "this data dir already holds sealed data"
            )
            raise _missing(settings, spec, why)
        if expected is not None and key.fingerprint != expected:
            raise _mismatch(key, expected, settings)
        keys[spec.name] = key
    if sample is not None:
        sample.verify(keys["vault"], keys["hmac"])
    missing = [s for s in (VAULT, HMAC) if recorded(record, s) is None]
    for spec in missing:
        record = with_fingerprint(record, spec, keys[spec.name].fingerprint)
    if missing and record is not None:
        write_record(settings, record)
    return Keys(keys["vault"], keys["hmac"])


def load_keys(settings: Settings) -> Keys:
    """`ensure_keys`, plus a shared in-use lease on the data dir held while the returned
    object lives (it waits for a running `keys rotate`, and makes a new one refuse to start)."""
    lease = _Lease(settings.root / IN_USE_LOCK)
    keys = ensure_keys(settings)
    return Keys(keys.vault, keys.hmac, lease)


def inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def key_status(settings: Settings) -> dict[str, Any]:
    """Where each key comes from and whether it matches the data dir; creates nothing."""
    record = read_record(settings)
    out: dict[str, Any] = {"data_dir": str(settings.root), "record": str(record_path(settings))}
    local = False
    for spec in (VAULT, HMAC):
        expected = recorded(record, spec)
        entry: dict[str, Any] = {"recorded_fingerprint": expected}
        try:
            key = _resolve(settings, spec, create=False)
        except PharmaflowError as exc:
            entry.update(source=None, fingerprint=None, state="unusable", problem=str(exc))
        else:
            if key is None:
                entry.update(
                    source=f"key file {key_file(settings, spec)} (not created yet)",
                    fingerprint=None,
                    state="missing" if expected else "not created",
                )
            else:
                match = expected is None or key.fingerprint == expected
                entry.update(
                    source=key.origin,
                    fingerprint=key.fingerprint,
                    state="ok" if match else "mismatch",
                )
        if configured(settings, spec) is None and inside(settings.key_dir, settings.root):
            local = True
        out[spec.name] = entry
    out["keys_inside_data_dir"] = local
    from pharmaflow.ingest.phi.rotate import pending

    out["rotation_pending"] = pending(settings)
    return out
