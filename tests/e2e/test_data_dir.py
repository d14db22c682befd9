"""The data dir as an operator meets it: mistyped, read-only, shared host, stray `.env`."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import env_with_keys


def pharmaflow(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", *args],
        capture_output=True,
        text=True,
        env=env_with_keys(**env),
        cwd=cwd,
        timeout=180,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pharmaflow: error: ")
    return lines[0]


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "oops"
    target.write_text("not a folder")
    line = one_error_line(pharmaflow("--data-dir", str(target), "sql", "select 1"))
    assert "is a file" in line and str(target) in line


def test_no_arguments_shows_the_help_and_says_what_is_missing():
    result = pharmaflow()
    assert result.returncode == 2
    assert "Commands" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["pharmaflow: error: no command given: pick one of the commands above"]


def test_a_stray_env_file_is_read_only_when_asked(tmp_path):
    elsewhere = tmp_path / "from-dotenv"
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(f"PHARMAFLOW_DATA_DIR={elsewhere}\n")
    env = {k: v for k, v in env_with_keys().items() if k != "PHARMAFLOW_DATA_DIR"}
    run = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "simulate", "--days", "1", "--scale", "0.01",
         "--out", str(tmp_path / "a.jsonl")],
        capture_output=True, text=True, env=env, cwd=work, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert not elsewhere.exists() and (work / "data").is_dir()  # the default, not .env's
    asked = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--env-file", str(work / ".env"), "simulate",
         "--days", "1", "--scale", "0.01", "--out", str(tmp_path / "b.jsonl")],
        capture_output=True, text=True, env=env, cwd=work, timeout=120,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert (elsewhere / "logs" / "pharmaflow.log").is_file()
    missing = one_error_line(pharmaflow("--env-file", str(tmp_path / "none.env"), "sql", "x"))
    assert "--env-file" in missing


def _open_to_others(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 and not path.is_symlink():
            found.append(f"{oct(mode)} {path.relative_to(root)}")
    return found


def test_everything_a_run_creates_is_owner_only(tmp_path, faulty_input):
    data_dir = tmp_path / "data"
    source, _ = faulty_input
    result = pharmaflow("--data-dir", str(data_dir), "ingest", "--source", str(source))
    assert result.returncode == 0, result.stderr
    assert (data_dir / "lake" / "bronze").is_dir() and (data_dir / "vault").is_dir()
    assert _open_to_others(data_dir) == []


def test_an_old_data_dir_open_to_others_is_closed(tmp_path):
    data_dir = tmp_path / "old"
    (data_dir / "lake").mkdir(parents=True)
    data_dir.chmod(0o755)
    result = pharmaflow("--data-dir", str(data_dir), "sql", "select 1")
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700, result.stderr


def _in_read_only_mount(directory: Path, command: list[str]) -> subprocess.CompletedProcess:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    script = (
        f'mount --bind "{directory}" "{directory}" && '
        f'mount -o remount,bind,ro "{directory}" && exec "$@"'
    )
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *command],
        capture_output=True, text=True, env=env_with_keys(), timeout=180,
    )  # fmt: skip
    if "unshare:" in result.stderr and result.returncode != 0:
        pytest.skip(f"no mount namespace here: {result.stderr.strip()}")
    return result


def test_writing_into_a_read_only_copy_is_one_line(tmp_path, faulty_input):
    data_dir = tmp_path / "copy"
    data_dir.mkdir()
    source, _ = faulty_input
    result = _in_read_only_mount(
        data_dir,
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "ingest", "--source",
         str(source)],
    )  # fmt: skip
    line = one_error_line(result)
    assert "read-only" in line
    assert os.listdir(data_dir) == []


def test_a_bad_log_level_is_one_line_and_case_does_not_matter(tmp_path):
    line = one_error_line(pharmaflow("--data-dir", str(tmp_path), "sql", "select 1",
                                     PHARMAFLOW_LOG_LEVEL="LOUD"))  # fmt: skip
    assert "log_level" in line and "DEBUG" in line
    ok = pharmaflow("--data-dir", str(tmp_path), "simulate", "--days", "1", "--scale", "0.01",
                    "--out", str(tmp_path / "x.jsonl"), PHARMAFLOW_LOG_LEVEL="warning")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
