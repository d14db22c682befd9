"""`pharmaflow broker` as an operator breaks it: a corrupt or foreign state file, a port in
use or out of range, a read-only or impossible state dir. Each is one line (a warning when
pharmaflow could fix it, an error when the operator must), never a traceback, and no process
that is not this data dir's broker is ever signalled. One real Tansu broker for the module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pharmaflow.broker.embedded import STATE_ENV
from tests.conftest import env_with_keys

pytestmark = pytest.mark.slow


def cli(data_dir: Path, *args: str, wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "broker", *args]
    return subprocess.run(
        [*(wrap or []), *command], capture_output=True, text=True, timeout=60, env=env_with_keys()
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def one_error(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = lines(result.stderr)
    assert line.startswith("pharmaflow: error: ")
    return line.removeprefix("pharmaflow: error: ")


def one_warning(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr
    (line,) = lines(result.stderr)
    assert line.startswith("pharmaflow: warning: ")
    return line.removeprefix("pharmaflow: warning: ")


def brokers_of(data_dir: Path) -> list[int]:
    """PIDs of live Tansu processes started for this data dir (from /proc, as pharmaflow)."""
    marker = f"{STATE_ENV}={(data_dir / 'broker').resolve()}".encode()
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") and (
                b"tansu" in Path(f"/proc/{entry}/cmdline").read_bytes()
            ):
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_a_corrupt_or_foreign_record_never_loses_or_mistakes_the_broker(tmp_path: Path) -> None:
    record = tmp_path / "broker" / "broker.json"
    record.parent.mkdir()
    record.write_bytes(b"")  # a crash while it was written
    started = cli(tmp_path, "start", "--partitions", "1", "--json")
    try:
        assert started.returncode == 0, started.stderr
        assert "is unreadable (empty file); no broker of this data dir is running" in (
            one_warning(started)
        )
        info = json.loads(lines(started.stdout)[-1])
        pid = info["pid"]
        assert brokers_of(tmp_path) == [pid]
        assert json.loads(record.read_bytes())["pid"] == pid  # a whole record, not half

        record.write_bytes(b'{"pid": ' + str(pid).encode())  # truncated
        status = cli(tmp_path, "status", "--json")
        assert status.returncode == 0
        assert json.loads(lines(status.stdout)[-1])["bootstrap"] == info["bootstrap"]
        assert one_warning(status).endswith(
            f"found this data dir's broker running as pid {pid} and recorded it"
        )
        assert json.loads(record.read_bytes())["pid"] == pid  # repaired

        record.unlink()  # lost altogether: found again, quietly
        status = cli(tmp_path, "status")
        assert status.returncode == 0 and status.stderr == ""
        assert f"(pid {pid})" in status.stdout

        record.write_text(json.dumps({"pid": 1, "host": "127.0.0.1", "port": 1, "started_at": 0}))
        again = cli(tmp_path, "start", "--json")  # still idempotent: the same broker
        assert again.returncode == 0, again.stderr
        assert json.loads(lines(again.stdout)[-1]) == {**info, "created_topics": []}
        assert "names pid 1, which is not this data dir's broker" in one_warning(again)

        other_port = info["bootstrap"].rsplit(":", 1)[1] + "1"
        moved = cli(tmp_path, "start", "--port", str(int(other_port) % 65535 + 1))
        assert "already runs at " + info["bootstrap"] in one_error(moved)

        record.write_bytes(b"[]")  # and stop still finds and stops exactly it
        stopped = cli(tmp_path, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped (pid {pid})" in stopped.stdout
        assert "expected a JSON object, found list" in one_warning(stopped)
        assert brokers_of(tmp_path) == [] and not record.exists()
        assert Path("/proc/1/cmdline").read_bytes()  # PID 1 was never ours to touch
    finally:
        for leftover in brokers_of(tmp_path):  # only this test's broker, by PID
            os.kill(leftover, 9)


def test_start_on_a_port_in_use_is_one_line_and_leaves_nothing(
    tmp_path: Path, busy_port: int
) -> None:
    result = cli(tmp_path, "start", "--port", str(busy_port))
    assert one_error(result) == (
        f"port {busy_port} on 127.0.0.1 is in use by another process; "
        "pick another --port or stop it"
    )
    assert brokers_of(tmp_path) == []
    assert not (tmp_path / "broker" / "broker.json").exists()


@pytest.mark.parametrize("port", ["0", "70000", "-5", "ninety"])
def test_a_port_out_of_range_is_one_line(tmp_path: Path, port: str) -> None:
    assert "--port" in one_error(cli(tmp_path, "start", "--port", port), code=2)
    assert not (tmp_path / "broker").exists()


def test_stop_and_status_with_nothing_running(tmp_path: Path) -> None:
    assert one_error(cli(tmp_path, "stop")) == "no embedded broker is running for this data dir"
    status = cli(tmp_path, "status")
    assert status.returncode == 3 and status.stderr == ""
    (tmp_path / "broker").mkdir()
    (tmp_path / "broker" / "broker.json").write_text('{"pid": 1, "host": "127.0.0.1"}')
    stopped = one_error(cli(tmp_path, "stop"))
    assert stopped.startswith("no embedded broker is running for this data dir (broker state ")
    assert "is unreadable (missing or invalid 'port')" in stopped


def test_a_state_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broker").write_text("in the way")
    assert one_error(cli(tmp_path, "start")).startswith(
        f"cannot write the broker state in {tmp_path / 'broker'} ("
    )
    assert cli(tmp_path, "status").returncode == 3


def test_a_read_only_data_dir_is_one_line(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    data_dir = tmp_path / "copy"
    (data_dir / "broker").mkdir(parents=True)
    (data_dir / "broker" / "broker.json").write_bytes(b"{")
    read_only = [
        "unshare", "-rm", "sh", "-c",
        f'mount --bind "{data_dir}" "{data_dir}" && '
        f'mount -o remount,bind,ro "{data_dir}" && exec "$@"',
        "sh",
    ]  # fmt: skip
    status = cli(data_dir, "status", wrap=read_only)
    if "unshare:" in status.stderr and status.returncode != 0:
        pytest.skip(f"no mount namespace here: {status.stderr.strip()}")
    assert status.returncode == 3 and "not running" in status.stdout
    warning = [line for line in lines(status.stderr) if "pharmaflow: warning: broker" in line]
    assert len(warning) == 1 and warning[0].endswith(f"remove {data_dir / 'broker/broker.json'}")
    started = cli(data_dir, "start", wrap=read_only)
    assert started.returncode == 1 and "Traceback" not in started.stderr
    assert (
        f"pharmaflow: error: cannot write the broker state in {data_dir / 'broker'} "
        "(Read-only file system)" in started.stderr
    )
    assert brokers_of(data_dir) == []
    time.sleep(0)  # nothing was started, so nothing to stop
