"""`pharmaflow keys` as an operator runs it: status, a changed key refused in one line, and a
rotation killed with SIGKILL that the next `keys rotate` finishes."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pharmaflow.ingest.phi.rotate import _KILL_AT

KEY_VARS = ("PHARMAFLOW_VAULT_KEY", "PHARMAFLOW_HMAC_KEY", "PHARMAFLOW_SECRETS_DIR")


def run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI with generated keys (none in the environment) unless `env` sets some."""
    base = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env={**base, "COLUMNS": "80", **env},
        timeout=120,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pharmaflow: error:"), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def ingested(faulty_input, tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("keys-cli") / "data"
    result = run(data_dir, "ingest", "--source", str(faulty_input[0]))
    assert result.returncode == 0, result.stderr
    return data_dir


def test_status_names_the_key_files_and_warns_they_are_for_local_use(ingested):
    result = run(ingested, "keys", "status")
    assert result.returncode == 0, result.stderr
    assert f"vault key: key file {ingested}/secrets/vault.key, fingerprint" in result.stdout
    assert "HMAC key: key file" in result.stdout
    assert "for local use only" in result.stderr and "PHARMAFLOW_SECRETS_DIR" in result.stderr


def test_a_changed_key_is_refused_in_one_line_by_ingest_and_status(ingested, faulty_input):
    other = secrets.token_hex(32)
    line = one_error_line(
        run(ingested, "ingest", "--source", str(faulty_input[0]), PHARMAFLOW_VAULT_KEY=other)
    )
    assert "PHARMAFLOW_VAULT_KEY (fingerprint" in line and "pharmaflow keys rotate" in line
    status = run(ingested, "keys", "status", PHARMAFLOW_HMAC_KEY=other)
    assert status.returncode == 1 and "MISMATCH" in status.stdout
    assert other not in status.stdout + status.stderr
    weak = run(ingested, "ingest", "--source", str(faulty_input[0]), PHARMAFLOW_HMAC_KEY="0" * 64)
    assert "PHARMAFLOW_HMAC_KEY is not a usable key (it is all zeros)" in one_error_line(weak)
    assert "all zeros" in run(ingested, "keys", "status", PHARMAFLOW_HMAC_KEY="0" * 64).stdout


def test_rotate_needs_a_requester_and_refuses_the_hmac_key(ingested):
    assert "--requested-by" in one_error_line(run(ingested, "keys", "rotate"))
    line = one_error_line(run(ingested, "keys", "rotate", "--hmac", "--requested-by", "ops"))
    assert "cannot be rotated in place" in line and "patient key" in line


def test_a_killed_rotation_is_finished_by_the_next_keys_rotate(ingested, tmp_path, faulty_input):
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(ingested, data_dir)
    before = run(data_dir, "keys", "status", "--json").stdout
    parts = len(list((data_dir / "vault" / "patients").glob("*.parquet")))
    parts += len(list((data_dir / "lake" / "quarantine").rglob("*.parquet")))
    after_commit = 2 + parts + 3  # journal, new key, staged files, fsync, commit, key file
    killed = run(
        data_dir, "keys", "rotate", "--requested-by", "ops", **{_KILL_AT: str(after_commit)}
    )
    assert killed.returncode == -signal.SIGKILL
    status = run(data_dir, "keys", "status")
    assert "interrupted rotation is committed" in status.stdout
    finished = run(data_dir, "keys", "rotate", "--requested-by", "ops")
    assert finished.returncode == 0, finished.stderr
    assert "finished an interrupted rotation" in finished.stdout
    assert run(data_dir, "keys", "status", "--json").stdout != before
    again = run(data_dir, "ingest", "--source", str(faulty_input[0]))
    assert again.returncode == 0, again.stderr  # the new key file and the record agree
