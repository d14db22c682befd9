"""API keys: created and revoked by an operator, checked on every API request.

A key is `pf_<key_id>_<secret>`: `key_id` (12 hex characters) names it in lists, logs and the
audit trail; `secret` is 256 random bits (`secrets.token_urlsafe(32)`) shown once, when it is
created. The store keeps only the SHA-256 of the secret. A slow password hash (bcrypt,
argon2) exists to make guessing a *low-entropy* password expensive; a 256-bit random secret
cannot be guessed at any speed, so a fast hash loses nothing and keeps each request cheap.

Every create and revoke appends an audit entry in the same transaction as the key change:
either both are recorded or neither. A revocation is a row of its own (never an UPDATE of the
key), so the store stays insert-only, which is what PostgreSQL's grants enforce.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.security.roles import Role, parse_role

if TYPE_CHECKING:
    from pharmaflow.realtime.db import Database, Row
    from pharmaflow.serve.security.audit import AuditTrail

KEYS_TABLE = "api_keys"
REVOCATIONS_TABLE = "api_key_revocations"
_KEY = re.compile(r"pf_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NAME_MAX = 100
_CACHE_MAX = 10_000
_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (
        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {REVOCATIONS_TABLE} (
        key_id TEXT PRIMARY KEY REFERENCES {KEYS_TABLE} (key_id),
        revoked_at TEXT NOT NULL, revoked_by TEXT NOT NULL, reason TEXT NOT NULL)""",
)
_PG_CREATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.api_keys'))"
_SELECT = (
    f"SELECT k.key_id, k.name, k.role, k.created_at, k.created_by, r.revoked_at, r.revoked_by, "
    f"k.secret_sha256 FROM {KEYS_TABLE} k "
    f"LEFT JOIN {REVOCATIONS_TABLE} r ON r.key_id = k.key_id"
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, its name (a person or a system) and its role."""

    key_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"{self.name} (API key {self.key_id})"


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret nor the secret's hash."""

    key_id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "active": self.active,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _info(row: Row) -> KeyInfo:
    key_id, name, role, created_at, created_by, revoked_at, revoked_by = row[:7]
    return KeyInfo(
        key_id,
        name,
        Role(role),
        datetime.fromisoformat(created_at),
        created_by,
        datetime.fromisoformat(revoked_at) if revoked_at else None,
        revoked_by,
    )


def _required(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise PharmaflowError(f"{what} must not be blank")
    return value


class KeyStore:
    """API keys in the security store, next to (and sharing transactions with) the audit trail.

    `authenticate` runs on every request, from many threads: a verified key is remembered for
    `cache_seconds` (default 5) keyed by its hash, so a revocation made by another process
    (`pharmaflow apikey revoke` beside a running API) takes effect within that time; one made
    through this object takes effect at once. Failed look-ups are never cached.
    """

    def __init__(self, db: Database, audit: AuditTrail, cache_seconds: float = 5.0) -> None:
        if audit.db is not db:
            raise ValueError("the key store and its audit trail must share one Database")
        self.db, self.audit, self.cache_seconds = db, audit, cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._create()

    def _create(self) -> None:
        with self.db.transaction() as tx:
            if self.db.postgres:
                tx.execute(_PG_CREATE_LOCK)
                # checked first: CREATE ... IF NOT EXISTS needs CREATE rights the app role lacks
                missing = tx.query(
                    f"SELECT to_regclass('{KEYS_TABLE}') IS NULL "
                    f"OR to_regclass('{REVOCATIONS_TABLE}') IS NULL"
                )[0][0]
                if not missing:
                    return
            for statement in _DDL:
                tx.execute(statement)

    def create(
        self, name: str, role: Role | str, *, actor: str, reason: str = ""
    ) -> tuple[KeyInfo, str]:
        """A new key. Returns its info and the raw key, which is never shown again."""
        name = _required(name, "the key's name")
        if len(name) > _NAME_MAX or not name.isprintable():
            raise PharmaflowError(f"the key's name must be printable, at most {_NAME_MAX} chars")
        role = role if isinstance(role, Role) else parse_role(role)
        actor = _required(actor, "the actor")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        created_at = _now()
        with self.db.transaction() as tx:
            tx.execute(
                f"INSERT INTO {KEYS_TABLE} (key_id, name, role, secret_sha256, created_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, role.value, _digest(secret), created_at, actor),
            )
            self.audit.append(
                actor=actor,
                action="apikey.create",
                target=key_id,
                reason=(reason or "").strip(),
                details={"name": name, "role": role.value},
                tx=tx,
            )
        info = KeyInfo(key_id, name, role, datetime.fromisoformat(created_at), actor, None, None)
        return info, f"pf_{key_id}_{secret}"

    def revoke(self, key_id: str, *, actor: str, reason: str) -> KeyInfo:
        """Revoke a key for good (a revoked key cannot be restored: create a new one)."""
        actor = _required(actor, "the actor")
        reason = _required(reason, "the reason for a revocation")
        key_id = key_id.strip()
        revoked_at = _now()
        with self.db.transaction() as tx:
            rows = tx.query(f"{_SELECT} WHERE k.key_id = ?", (key_id,))
            if not rows:
                raise PharmaflowError(
                    f"no API key {key_id!r}: `pharmaflow apikey list` shows the keys"
                )
            before = _info(rows[0])
            if not before.active:
                raise PharmaflowError(
                    f"API key {key_id} was already revoked at {before.revoked_at:%Y-%m-%d %H:%M} "
                    f"UTC by {before.revoked_by}"
                )
            tx.execute(
                f"INSERT INTO {REVOCATIONS_TABLE} (key_id, revoked_at, revoked_by, reason) "
                "VALUES (?, ?, ?, ?)",
                (key_id, revoked_at, actor, reason),
            )
            self.audit.append(
                actor=actor,
                action="apikey.revoke",
                target=key_id,
                reason=reason,
                details={"name": before.name, "role": before.role.value},
                tx=tx,
            )
        with self._lock:
            for digest in [d for d, (p, _) in self._cache.items() if p.key_id == key_id]:
                del self._cache[digest]
        return KeyInfo(
            key_id,
            before.name,
            before.role,
            before.created_at,
            before.created_by,
            datetime.fromisoformat(revoked_at),
            actor,
        )

    def list(self, include_revoked: bool = True) -> list[KeyInfo]:
        """Keys oldest first (without secrets or hashes)."""
        where = "" if include_revoked else " WHERE r.key_id IS NULL"
        with self.db.reading() as tx:
            rows = tx.query(f"{_SELECT}{where} ORDER BY k.created_at, k.key_id")
        return [_info(r) for r in rows]

    def authenticate(self, raw: str) -> Principal | None:
        """The caller a raw key belongs to; None for a malformed, unknown, revoked or wrong key
        (one answer for all, so a caller learns nothing about which)."""
        match = _KEY.fullmatch(raw) if isinstance(raw, str) else None
        if match is None:
            return None
        key_id, digest = match[1], _digest(match[2])
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now and hit[0].key_id == key_id:
            return hit[0]
        with self.db.reading() as tx:
            rows = tx.query(f"{_SELECT} WHERE k.key_id = ?", (key_id,))
        if not rows or rows[0][5] is not None:  # unknown, or revoked
            return None
        if not hmac.compare_digest(rows[0][7], digest):
            return None
        principal = Principal(key_id, rows[0][1], Role(rows[0][2]))
        with self._lock:
            if len(self._cache) >= _CACHE_MAX:
                self._cache = {d: v for d, v in self._cache.items() if v[1] > now}
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
            self._cache[digest] = (principal, now + self.cache_seconds)
        return principal

    def close(self) -> None:
        self.db.close()
