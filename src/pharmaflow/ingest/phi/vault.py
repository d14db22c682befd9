"""The PHI vault: the only place original patient identifiers are kept, encrypted.

Each original patient record is sealed with AES-256-GCM, bound (as associated data) to its
patient key so a ciphertext cannot be passed off as another patient's. Reading it back is one
explicit call, `reidentify`, which requires a requester and a reason and appends an access
record (without the PHI) to an append-only log: the authorised path Safe Harbor allows.
Quarantined raw events, and the dead letters sent back to Kafka, are sealed with the same key
(no associated data), since a malformed event may carry PHI; `open_reject` reads one back under
the same logged access rule.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pharmaflow.errors import PharmaflowError

_NONCE = 12
# How a sealed reject is protected (the `value_protection` header of a dead letter): AES-256-GCM
# under the vault key, 12-byte random nonce in front, no associated data.
SEALED_REJECT = "aes-256-gcm:vault:v1"


class Sealer:
    """AES-GCM encryption with a random nonce stored in front of the ciphertext."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes = b"") -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except InvalidTag:
            raise PharmaflowError("vault record does not decrypt with this key") from None


PATIENTS_SCHEMA = pa.schema(
    [
        ("patient_key", pa.string()),
        ("order_id", pa.string()),
        ("event_id", pa.string()),
        ("event_time", pa.timestamp("us")),
        ("sealed", pa.binary()),
    ]
)
NAME_TOKENS_SCHEMA = pa.schema([("order_id", pa.string()), ("name_token", pa.string())])


class PhiVault:
    """Sealed originals under `<data_dir>/vault/`, plus the name tokens used for scrubbing."""

    def __init__(self, root: Path, key: bytes) -> None:
        self.root = root
        self.patients_dir = root / "patients"
        self.name_tokens_dir = root / "name_tokens"
        self.access_log = root / "access_log.jsonl"
        self.sealer = Sealer(key)

    def load_name_tokens(self) -> dict[str, frozenset[str]]:
        """order_id → tokens of that order's patient's names (from committed batches). The
        protector matches free text against the union of all of them (`names.NameIndex`)."""
        if not any(self.name_tokens_dir.glob("*.parquet")):
            return {}
        table = ds.dataset(self.name_tokens_dir, format="parquet").to_table()
        out: dict[str, set[str]] = {}
        for order_id, token in zip(
            table["order_id"].to_pylist(), table["name_token"].to_pylist(), strict=True
        ):
            out.setdefault(order_id, set()).add(token)
        return {k: frozenset(v) for k, v in out.items()}

    def reidentify(self, patient_key: str, *, requested_by: str, reason: str) -> dict[str, Any]:
        """The patient's original identifiers (latest record), for an authorised, logged purpose."""
        if not requested_by.strip() or not reason.strip():
            raise PharmaflowError("re-identification needs who is asking and why")
        records = self._records(patient_key)
        self._log_access(patient_key, requested_by, reason, found=bool(records))
        if not records:
            raise PharmaflowError(f"no vault record for patient key {patient_key}")
        latest = max(records, key=lambda r: r["event_time"])
        return orjson.loads(self.sealer.open(latest["sealed"], patient_key.encode()))

    def open_reject(self, sealed: bytes, *, requested_by: str, reason: str) -> bytes:
        """The original bytes of a quarantined record or dead letter, for an authorised, logged
        repair (`raw_encrypted`, or a dead letter's value)."""
        if not requested_by.strip() or not reason.strip():
            raise PharmaflowError("opening a sealed reject needs who is asking and why")
        self._log_access("reject", requested_by, reason, found=True)
        return self.sealer.open(sealed)

    def _records(self, patient_key: str) -> list[dict[str, Any]]:
        if not any(self.patients_dir.glob("*.parquet")):
            return []
        dataset = ds.dataset(self.patients_dir, format="parquet")
        table = dataset.to_table(filter=pc.field("patient_key") == patient_key)
        return table.to_pylist()

    def _log_access(self, patient_key: str, requested_by: str, reason: str, found: bool) -> None:
        append_access(
            self.access_log,
            {
                "at": datetime.now(UTC).isoformat(),
                "patient_key": patient_key,
                "requested_by": requested_by,
                "reason": reason,
                "found": found,
            },
        )


def append_access(access_log: Path, entry: dict[str, Any]) -> None:
    """Append one entry to the vault's access log, durably (re-identifications, openings of
    sealed rejects, key rotations)."""
    access_log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(access_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def access_logged(access_log: Path, field: str, value: str) -> bool:
    """True if some entry of the access log has `field` == `value` (a rotation re-run after a
    crash must not log the same rotation twice)."""
    if not access_log.exists():
        return False
    needle = json.dumps(value)
    with open(access_log, encoding="utf-8") as fh:
        for line in fh:
            if needle in line and json.loads(line).get(field) == value:
                return True
    return False
