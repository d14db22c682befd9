"""A security store (keys and audit trail) in a fresh SQLite file per test."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pharmaflow.realtime.db import Database
from pharmaflow.serve.security.audit import AuditTrail
from pharmaflow.serve.security.keys import KeyStore


@dataclass
class Store:
    path: Path
    db: Database
    audit: AuditTrail
    keys: KeyStore

    def tamper(self, *statements: str) -> None:
        """Change the file behind the store's back, as someone holding it could: drop the
        append-only triggers (they guard against bugs, not people), then run `statements`."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("DROP TRIGGER IF EXISTS audit_trail_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_trail_no_delete")
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "security.db"
    db = Database(path, name="security store", setting="PHARMAFLOW_SECURITY_STORE")
    audit = AuditTrail(db)
    keys = KeyStore(db, audit)
    yield Store(path, db, audit, keys)
    db.close()
