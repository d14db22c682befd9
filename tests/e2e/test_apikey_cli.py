"""`pharmaflow apikey` and `pharmaflow audit` as an operator runs them: a key printed once and
never listed, revocation, the OS user as the actor, and `audit verify` exiting 1 naming the
entry after the SQLite file was tampered with by the sqlite3 shell."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import env_with_keys

PHARMAFLOW = str(Path(sys.executable).parent / "pharmaflow")


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PHARMAFLOW, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(COLUMNS="200"),
        timeout=120,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pharmaflow: error:"), result.stderr
    return lines[0]


def sqlite(db: Path, sql: str) -> None:
    """Tamper as someone holding the file would: with the sqlite3 shell, triggers dropped."""
    script = (
        "DROP TRIGGER IF EXISTS audit_trail_no_update; "
        f"DROP TRIGGER IF EXISTS audit_trail_no_delete; {sql}"
    )
    subprocess.run(["sqlite3", str(db), script], check=True, timeout=30)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_a_key_is_shown_once_listed_without_secrets_and_revoked(data_dir):
    assert "no security store at" in one_error_line(run(data_dir, "apikey", "list"))
    created = run(
        data_dir,
        "apikey",
        "create",
        "--name",
        "ops board",
        "--role",
        "analyst",
        "--reason",
        "ops dashboard launch",
    )
    assert created.returncode == 0, created.stderr
    raw = created.stdout.strip()
    key_id, secret = raw.split("_", 2)[1:]
    assert raw.startswith("pf_") and "shown only once" in created.stderr

    listed = run(data_dir, "apikey", "list")
    assert listed.returncode == 0 and key_id in listed.stdout and "ops board" in listed.stdout
    assert "1 keys (1 active)" in listed.stdout
    as_json = run(data_dir, "apikey", "list", "--json")
    (entry,) = json.loads(as_json.stdout)
    assert entry["key_id"] == key_id and entry["role"] == "analyst" and entry["active"]
    assert entry["created_by"] == getpass.getuser()
    store = (data_dir / "serve" / "security.db").read_bytes()
    for text in (listed.stdout, as_json.stdout):
        assert secret not in text and "sha256" not in text
    assert secret.encode() not in store

    assert "--reason" in one_error_line(run(data_dir, "apikey", "revoke", key_id))
    revoked = run(data_dir, "apikey", "revoke", key_id, "--reason", "board retired")
    assert revoked.returncode == 0 and f"revoked API key {key_id}" in revoked.stdout
    again = one_error_line(run(data_dir, "apikey", "revoke", key_id, "--reason", "twice over"))
    assert f"API key {key_id} was already revoked" in again
    assert "no API key 'abc'" in one_error_line(
        run(data_dir, "apikey", "revoke", "abc", "--reason", "unknown key")
    )
    assert "0 active" in run(data_dir, "apikey", "list").stdout
    assert run(data_dir, "apikey", "list", "--active", "--json").stdout.strip() == "[]"
    bad_role = run(data_dir, "apikey", "create", "--name", "x", "--role", "root")
    assert bad_role.returncode == 2 and "root" in one_error_line(bad_role)


def test_audit_verify_passes_then_names_each_tampered_entry(data_dir):
    for name in ("a", "b", "c"):
        created = run(data_dir, "apikey", "create", "--name", name, "--role", "viewer")
        assert created.returncode == 0, created.stderr
    listing = run(data_dir, "audit", "list", "--json")
    entries = json.loads(listing.stdout)
    assert [(e["seq"], e["action"], e["actor"]) for e in entries] == [
        (i, "apikey.create", getpass.getuser()) for i in (1, 2, 3)
    ]
    assert "apikey.create" in run(data_dir, "audit", "list", "--limit", "2").stdout

    ok = run(data_dir, "audit", "verify")
    head = entries[-1]["hash"]
    assert ok.returncode == 0 and f"head hash: {head}" in ok.stdout, ok.stderr
    assert run(data_dir, "audit", "verify", "--expect-head", head).returncode == 0
    assert "64 hex" in one_error_line(run(data_dir, "audit", "verify", "--expect-head", "abc"))

    db = data_dir / "serve" / "security.db"
    sqlite(db, "DELETE FROM audit_trail WHERE seq = 3;")  # the newest entry
    assert run(data_dir, "audit", "verify").returncode == 0  # a chain alone cannot tell
    cut = run(data_dir, "audit", "verify", "--expect-head", head)
    assert cut.returncode == 1 and "is not in the trail (the trail ends at seq 2)" in cut.stdout

    sqlite(db, "UPDATE audit_trail SET actor = 'someone else' WHERE seq = 1;")
    edited = run(data_dir, "audit", "verify")
    assert edited.returncode == 1
    assert "TAMPERED: entry seq 1 was edited" in edited.stdout
    assert "verification failed: 1 problems in 2 entries" in edited.stderr
    report = json.loads(run(data_dir, "audit", "verify", "--json").stdout)
    assert report["ok"] is False and report["problems"][0].startswith("entry seq 1 was edited")


def test_grant_app_role_needs_postgresql(data_dir):
    line = one_error_line(run(data_dir, "audit", "grant-app-role", "pharmaflow_api"))
    assert "is for a PostgreSQL security store" in line
    assert not (data_dir / "serve" / "security.db").exists()
