"""API keys: the raw key is shown once and stored only as a hash; authenticate answers None
for every kind of bad key; create and revoke are audited in the same transaction."""

from __future__ import annotations

import hashlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.security.keys import KeyStore, Principal
from pharmaflow.serve.security.roles import Role


def test_a_created_key_authenticates_as_its_role_and_only_its_hash_is_stored(store):
    info, raw = store.keys.create("dispatch board", "analyst", actor="ops", reason="new board")
    prefix, key_id, secret = raw.split("_", 2)
    assert (prefix, key_id) == ("pf", info.key_id) and len(secret) == 43
    assert store.keys.authenticate(raw) == Principal(info.key_id, "dispatch board", Role.analyst)
    rows = sqlite3.connect(store.path).execute("SELECT * FROM api_keys").fetchall()
    assert len(rows) == 1 and hashlib.sha256(secret.encode()).hexdigest() in rows[0]
    store.db.close()  # checkpoint the WAL: the secret must be in neither file
    blob = b"".join(p.read_bytes() for p in store.path.parent.iterdir() if p.is_file())
    assert secret.encode() not in blob and raw.encode() not in blob


def test_malformed_unknown_wrong_and_revoked_keys_all_answer_none(store):
    info, raw = store.keys.create("qa lead", Role.qa, actor="ops")
    other = store.keys.create("other", Role.qa, actor="ops")[1]
    wrong_secret = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    unknown_id = "pf_000000000000_" + raw.split("_", 2)[2]
    swapped = f"pf_{info.key_id}_{other.split('_', 2)[2]}"  # a real secret, another key's id
    for bad in (
        "",
        "pf_",
        "Bearer " + raw,
        raw + "x",
        raw.upper(),
        wrong_secret,
        unknown_id,
        swapped,
        None,
        42,
    ):
        assert store.keys.authenticate(bad) is None, bad  # type: ignore[arg-type]
    assert store.keys.authenticate(raw) is not None  # cached now
    store.keys.revoke(info.key_id, actor="ops", reason="left the company")
    assert store.keys.authenticate(raw) is None  # revoked through this store: at once


def test_a_revocation_by_another_process_shows_after_the_cache_time(store):
    info, raw = store.keys.create("api", Role.viewer, actor="ops")
    uncached = KeyStore(store.db, store.audit, cache_seconds=0)
    cached = KeyStore(store.db, store.audit, cache_seconds=3600)
    assert uncached.authenticate(raw) and cached.authenticate(raw)
    store.keys.revoke(info.key_id, actor="ops", reason="rotated to a new key")
    assert uncached.authenticate(raw) is None  # looks again on every call
    assert cached.authenticate(raw) is not None  # until its cache entry expires (documented)


def test_revoking_an_unknown_or_revoked_key_is_one_line(store):
    info, _ = store.keys.create("api", Role.viewer, actor="ops")
    with pytest.raises(PharmaflowError, match=r"no API key 'nope'.*apikey list"):
        store.keys.revoke("nope", actor="ops", reason="typo test")
    with pytest.raises(PharmaflowError, match="reason for a revocation must not be blank"):
        store.keys.revoke(info.key_id, actor="ops", reason="  ")
    store.keys.revoke(info.key_id, actor="ops", reason="no longer needed")
    with pytest.raises(PharmaflowError, match=f"{info.key_id} was already revoked at .* by ops"):
        store.keys.revoke(info.key_id, actor="other", reason="again")
    assert [e.action for e in store.audit.entries()] == ["apikey.create", "apikey.revoke"]


def test_create_and_revoke_are_audited_with_who_what_and_why(store):
    info, _ = store.keys.create("plant qa", "qa", actor="alice", reason="QA onboarding")
    store.keys.revoke(info.key_id, actor="bob", reason="access review Q3")
    created, revoked = store.audit.entries()
    assert (created.actor, created.action, created.target, created.reason) == (
        "alice",
        "apikey.create",
        info.key_id,
        "QA onboarding",
    )
    assert created.details == {"name": "plant qa", "role": "qa"}
    assert (revoked.actor, revoked.action, revoked.reason) == (
        "bob",
        "apikey.revoke",
        "access review Q3",
    )
    listed = {i.key_id: i for i in store.keys.list()}
    assert listed[info.key_id].revoked_by == "bob" and not listed[info.key_id].active
    assert store.keys.list(include_revoked=False) == []
    assert "secret" not in str(listed[info.key_id].to_dict()).lower()


def test_a_key_change_whose_audit_entry_fails_is_not_made(store):
    store.tamper("DROP TABLE audit_trail")
    with pytest.raises(sqlite3.OperationalError, match="audit_trail"):
        store.keys.create("ghost", Role.privacy_officer, actor="mallory")
    assert store.keys.list() == []  # the key insert rolled back with the failed audit append


def test_bad_names_and_roles_are_refused(store):
    with pytest.raises(PharmaflowError, match="name must not be blank"):
        store.keys.create(" ", Role.viewer, actor="ops")
    with pytest.raises(PharmaflowError, match="printable"):
        store.keys.create("a\nb", Role.viewer, actor="ops")
    with pytest.raises(PharmaflowError, match="unknown role 'root'"):
        store.keys.create("x", "root", actor="ops")
    with pytest.raises(PharmaflowError, match="actor must not be blank"):
        store.keys.create("x", Role.viewer, actor="")


def test_fifty_threads_authenticate_concurrently(store):
    keys = [store.keys.create(f"client {i}", list(Role)[i % 5], actor="ops") for i in range(5)]
    fresh = KeyStore(store.db, store.audit)  # an empty cache: threads race to fill it

    def check(i: int) -> bool:
        info, raw = keys[i % 5]
        principal = fresh.authenticate(raw)
        return principal is not None and principal.key_id == info.key_id

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(check, range(500)))
