"""The security store on the real PostgreSQL: keys and the audit trail work as on SQLite, the
trail refuses UPDATE, DELETE and TRUNCATE even for its owner, and an application role given
`grant_app_role` can read keys and append entries but change nothing.

Each test gets a throwaway schema in database `test` (`options=-csearch_path=<schema>` in the
store's URL) and, where it needs one, a LOGIN role with a unique name; both are dropped after.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.db import Database
from pharmaflow.serve.security.audit import AuditTrail
from pharmaflow.serve.security.keys import KeyStore
from pharmaflow.serve.security.roles import Role
from pharmaflow.serve.security.store import grant_app_role
from tests.pg import PG_DSN, execute

pytestmark = pytest.mark.timeout(300)


def store_url(schema: str, user: str | None = None) -> str:
    """The test database's URL selecting `schema`, connecting as `user` (trust auth)."""
    url = PG_DSN
    if user is not None:
        parts = urlsplit(PG_DSN)
        url = urlunsplit(parts._replace(netloc=f"{user}@{parts.netloc.rpartition('@')[2]}"))
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def schema() -> Iterator[str]:
    try:
        execute("select 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}); start it or set PHARMAFLOW_TEST_PG_DSN")
    name = f"sec_t_{uuid.uuid4().hex[:12]}"
    execute(f'create schema "{name}"')
    try:
        yield name
    finally:
        execute(f'drop schema if exists "{name}" cascade')


@pytest.fixture
def owner(schema: str) -> Iterator[tuple[Database, AuditTrail, KeyStore]]:
    db = Database(store_url(schema), name="security store", setting="PHARMAFLOW_SECURITY_STORE")
    audit = AuditTrail(db)
    keys = KeyStore(db, audit)
    yield db, audit, keys
    db.close()


@pytest.fixture
def app_role(schema: str) -> Iterator[str]:
    name = f"pf_app_{uuid.uuid4().hex[:12]}"
    execute(f'create role "{name}" login')
    try:
        yield name
    finally:
        execute(f'drop schema if exists "{schema}" cascade')  # its grants go with it
        execute(f'drop role if exists "{name}"')


def test_keys_and_the_trail_work_and_concurrent_appends_keep_one_chain(owner):
    _, audit, keys = owner
    info, raw = keys.create("board", Role.analyst, actor="ops", reason="launch")
    assert keys.authenticate(raw).role is Role.analyst
    keys.revoke(info.key_id, actor="ops", reason="rotated")
    assert keys.authenticate(raw) is None

    def work(t: int) -> None:
        for i in range(10):
            audit.append(actor=f"t{t}", action="test", target=str(i), reason="load")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    result = audit.verify()
    assert (result.ok, result.entries, result.head_seq) == (True, 42, 42)
    assert [e.action for e in audit.entries(limit=2)] == ["apikey.create", "apikey.revoke"]


def test_even_the_owner_cannot_update_delete_or_truncate_the_trail(owner, schema):
    _, audit, _ = owner
    audit.append(actor="a", action="x", target="t", reason="r")
    for statement in (
        f"update \"{schema}\".audit_trail set reason = 'edited'",
        f'delete from "{schema}".audit_trail',
        f'truncate "{schema}".audit_trail',
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            execute(statement)
    assert audit.verify().entries == 1


def test_verify_names_an_edit_made_with_the_trigger_disabled(owner, schema):
    _, audit, _ = owner
    for i in range(3):
        audit.append(actor="a", action="x", target=str(i), reason="r")
    table = f'"{schema}".audit_trail'
    with psycopg.connect(PG_DSN, autocommit=True) as conn:  # what only the owner could do
        conn.execute(f"alter table {table} disable trigger audit_trail_no_change")
        conn.execute(f"update {table} set target = 'other' where seq = 2")
    assert audit.verify().problems == [
        "entry seq 2 was edited: its hash does not match its content"
    ]


def test_the_application_role_may_insert_and_select_but_not_change(owner, schema, app_role):
    db, audit, keys = owner
    info, raw = keys.create("api", Role.qa, actor="ops")
    statements = grant_app_role(db, app_role)
    assert any("GRANT SELECT, INSERT ON audit_trail" in s for s in statements)

    app_db = Database(store_url(schema, app_role))
    try:
        app_audit = AuditTrail(app_db)  # the tables exist: it creates nothing
        app_keys = KeyStore(app_db, app_audit)
        assert app_keys.authenticate(raw).key_id == info.key_id  # SELECT on the keys
        entry = app_audit.append(actor="api", action="reidentify", target="pk_x", reason="r")
        assert entry.seq == 2 and app_audit.verify().ok  # INSERT and SELECT on the trail
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_keys.create("escalate", Role.privacy_officer, actor="api")  # no INSERT on keys
    finally:
        app_db.close()

    with psycopg.connect(store_url(schema, app_role), autocommit=True) as conn:
        for statement in (
            "update audit_trail set reason = 'edited'",
            "delete from audit_trail",
            "truncate audit_trail",
            "update api_keys set role = 'privacy_officer'",
            f"insert into api_key_revocations values ('{info.key_id}', 'now', 'x', 'y')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(statement)
    assert audit.verify().entries == 2 and keys.authenticate(raw) is not None


def test_grant_app_role_refuses_sqlite_bad_names_and_unknown_roles(owner, tmp_path):
    db, _, _ = owner
    with pytest.raises(PharmaflowError, match="is not a plain PostgreSQL role name"):
        grant_app_role(db, 'x"; drop table audit_trail; --')
    with pytest.raises(PharmaflowError, match="no PostgreSQL role pf_nobody_here"):
        grant_app_role(db, "pf_nobody_here")
    lite = Database(tmp_path / "s.db")
    with pytest.raises(PharmaflowError, match="is for a PostgreSQL security store"):
        grant_app_role(lite, "app")
    lite.close()
