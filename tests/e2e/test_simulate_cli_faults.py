"""`pharmaflow simulate` with arguments an operator gets wrong: one line, a non-zero exit,
and nothing written (never a traceback, never a device or folder replaced)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = ["--days", "1", "--scale", "0.01"]


def simulate(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "simulate"]
    return subprocess.run([*command, *SMALL, *args], capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--seed", "-5"], "--seed"),
        (["--start", "9999-12-31"], "--start 9999-12-31 is out of range"),
        (["--start", "1969-12-31"], "--start 1969-12-31 is out of range"),
        (["--scale", "0"], "--scale"),
        (["--days", "0"], "--days"),
        (["--scale", "1000", "--days", "366"], "GiB of memory"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    assert says in one_line(simulate(tmp_path / "data", "--out", str(tmp_path / "o.jsonl"), *args))
    assert not (tmp_path / "o.jsonl").exists()


def test_out_that_is_a_folder_a_pipe_or_under_a_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a folder" in one_line(simulate(tmp_path / "d", "--out", str(folder)))
    assert folder.is_dir() and not any(folder.iterdir())
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert "not a regular file" in one_line(simulate(tmp_path / "d", "--out", str(pipe)))
    assert pipe.is_fifo()  # not renamed over
    a_file = tmp_path / "file"
    a_file.write_text("keep\n")
    line = one_line(simulate(tmp_path / "d", "--out", str(a_file / "x.jsonl")))
    assert "a part of that path is a file" in line and a_file.read_text() == "keep\n"


def test_a_missing_parent_is_created(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "events.jsonl"
    result = simulate(tmp_path / "d", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


def in_namespace(setup: str) -> list[str]:
    """A command prefix running the rest after `setup` in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    return ["unshare", "-rm", "sh", "-c", f'{setup} && "$@"', "sh"]


def test_a_read_only_or_full_parent_is_one_line(tmp_path: Path) -> None:
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    wrap = in_namespace(f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro}")
    result = subprocess.run(
        [*wrap, sys.executable, "-m", "pharmaflow", "--data-dir", str(tmp_path / "d"),
         "simulate", *SMALL, "--out", str(ro / "x.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "read-only or not permitted" in one_line(result)
    wrap = in_namespace(f"mount -t tmpfs -o size=64k none {full}")
    result = subprocess.run(
        [*wrap, sys.executable, "-m", "pharmaflow", "--data-dir", str(tmp_path / "d"),
         "simulate", "--days", "1", "--scale", "0.05", "--out", str(full / "x.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = one_line(result)
    assert "No space left on device" in line and "nothing was written" in line
