"""The security store: API keys and the audit trail in one database, so a key change and its
audit entry commit in one transaction.

SQLite (WAL) under `<data_dir>/serve/security.db` by default; a `postgresql://` URL
(`PHARMAFLOW_SECURITY_STORE`) in production, where the tables are created by an owner role and
the API connects as an application role given only what it needs (`grant_app_role`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.db import Database
from pharmaflow.serve.security.audit import TABLE as AUDIT_TABLE
from pharmaflow.serve.security.audit import AuditTrail
from pharmaflow.serve.security.keys import KEYS_TABLE, REVOCATIONS_TABLE, KeyStore

if TYPE_CHECKING:
    from pharmaflow.config import Settings

SETTING = "PHARMAFLOW_SECURITY_STORE"
_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def open_security(settings: Settings, *, create: bool = True) -> tuple[KeyStore, AuditTrail]:
    """The key store and the audit trail over the configured security store (tables created
    if missing). `create=False`: refuse, in one line, a SQLite store that does not exist yet
    (commands that only read must not leave an empty store behind)."""
    url = settings.security_store_url
    db = Database(url, name="security store", setting=SETTING)
    if not create and not db.postgres and not Path(url).is_file():
        raise PharmaflowError(
            f"no security store at {url}: create an API key first (`pharmaflow apikey create`), "
            f"or point {SETTING} at the store"
        )
    try:
        audit = AuditTrail(db)
        return KeyStore(db, audit), audit
    except BaseException:
        db.close()
        raise


def grant_app_role(db: Database, role: str) -> list[str]:
    """Give a PostgreSQL application role exactly what the API needs: SELECT and INSERT on
    the audit trail (no UPDATE, DELETE or TRUNCATE), SELECT on the key tables (key changes
    are made with the owner's credentials, by `pharmaflow apikey`), and USAGE on the schema.
    No sequence is involved (the trail numbers its own entries). Run it as the tables' owner.
    Returns the statements run."""
    if not db.postgres:
        raise PharmaflowError(
            f"grant-app-role is for a PostgreSQL security store; {db.description} is SQLite "
            "(protect the file with file permissions instead)"
        )
    if not _ROLE_NAME.fullmatch(role):
        raise PharmaflowError(f"{role!r} is not a plain PostgreSQL role name")
    KeyStore(db, AuditTrail(db))  # creates the tables if this is the first use
    quoted = f'"{role}"'
    with db.transaction() as tx:
        if not tx.query("SELECT 1 FROM pg_roles WHERE rolname = ?", (role,)):
            raise PharmaflowError(
                f"no PostgreSQL role {role}: create it first (CREATE ROLE {role} LOGIN ...)"
            )
        schema = str(tx.query("SELECT current_schema()")[0][0]).replace('"', '""')
        tables = f"{AUDIT_TABLE}, {KEYS_TABLE}, {REVOCATIONS_TABLE}"
        statements = [
            f"REVOKE ALL ON {tables} FROM {quoted}",
            f'GRANT USAGE ON SCHEMA "{schema}" TO {quoted}',
            f"GRANT SELECT, INSERT ON {AUDIT_TABLE} TO {quoted}",
            f"GRANT SELECT ON {KEYS_TABLE}, {REVOCATIONS_TABLE} TO {quoted}",
        ]
        for statement in statements:
            tx.execute(statement)
    return statements
