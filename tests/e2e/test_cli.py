"""The CLI as a user runs it: bad arguments get one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import env_with_keys


def run(*args: str, data_dir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["simulate", "--days", "0"], "--days"),
        (["simulate", "--scale", "lots"], "--scale"),
        (["simulate", "--start", "yesterday"], "--start"),
        (["ingest"], "--source"),
        (["ingest", "--source", "/no/such/file.jsonl"], "source not found"),
        (["ingest", "--source", "nats://127.0.0.1:4222/events"], "not supported"),
        (["ingest", "--source", "kafka://"], "KAFKA_BOOTSTRAP_SERVERS"),
        (["ingest", "--source", "kafka://localhost"], "HOST:PORT"),
        (["ingest", "--source", "kafka://127.0.0.1:9092?topic=x"], "unknown kafka:// parameter"),
        (["ingest", "--source", "kafka://127.0.0.1:9092?max_wait_ms=-1"], "positive integer"),
        (["ingest", "--source", "kafka://127.0.0.1:9092", "--workers", "0"], "--workers"),
        (["ingest", "--source", "/etc/hostname", "--idle-exit", "3"], "apply to kafka://"),
        (["ingest", "--source", "/etc/hostname"], "unknown file type"),
        (["sql", "select 1"], "no warehouse"),
        (["teleport"], "No such command"),
    ],
)
def test_bad_arguments_get_one_line(tmp_path, args, expected):
    result = run(*args, data_dir=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pharmaflow: error:") and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_setting_in_the_environment_gets_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "simulate", "--days", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_with_keys(PHARMAFLOW_BATCH_SIZE="many", PHARMAFLOW_DATA_DIR=str(tmp_path)),
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("pharmaflow: error: invalid setting batch_size")


def test_a_command_that_fails_exits_non_zero(tmp_path):
    """`status` of a broker that is not running exits 3; exit codes must reach the shell."""
    result = run("broker", "status", data_dir=tmp_path)
    assert result.returncode == 3 and "not running" in result.stdout


@pytest.mark.parametrize("command", ["serve", "dashboard"])
def test_a_busy_port_is_one_line(command: str, busy_port: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(tmp_path / "d"), command,
         "--port", str(busy_port)],
        capture_output=True, text=True, env=env_with_keys(), timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"pharmaflow: error: cannot serve on 127.0.0.1:{busy_port}: Address already in use; "
        "pick another --port"
    ), result.stderr
