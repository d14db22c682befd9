"""`pharmaflow ingest` when the world changes under it: the source file is truncated while it
is read, the disk fills up, an absurd --workers. Each ends with one line on stderr and a
non-zero exit, keeps what was committed, and the next run lands the rest exactly once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pytest

from pharmaflow.ingest.sources import files
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import SimStats, simulate
from tests.conftest import env_with_keys

# Three read blocks of the file source or more, so a truncation can fall between two reads.
INPUT = SimConfig(seed=23, days=3, scale=0.2)


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimStats]:
    path = tmp_path_factory.mktemp("faults-input") / "events.jsonl"
    stats = simulate(INPUT, path)
    assert path.stat().st_size > 3 * files._BLOCK
    return path, stats


def pharmaflow(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args]


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def landed_ids(data_dir: Path) -> list[str]:
    bronze = ds.dataset(data_dir / "lake" / "bronze", format="parquet", partitioning=None)
    return bronze.to_table(columns=["event_id"])["event_id"].to_pylist()


def distinct_valid_ids(path: Path, stats: SimStats) -> int:
    """Distinct genuine events of the file (the simulator's own count, checked on the file)."""
    ids = set()
    for line in path.read_bytes().splitlines():
        try:
            ids.add(orjson.loads(line)["event_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    assert len(ids) >= stats.valid_unique  # malformed copies carry ids of their own
    return stats.valid_unique


def test_a_file_truncated_while_read_gives_one_line_and_a_rerun_lands_the_rest(
    tmp_path: Path, big_input: tuple[Path, SimStats]
) -> None:
    original, stats = big_input
    path = tmp_path / "events.jsonl"
    shutil.copyfile(original, path)
    data_dir, hook = tmp_path / "data", tmp_path / "hook"
    hook.mkdir()
    env = env_with_keys(PHARMAFLOW_TEST_READ_PAUSE=str(hook))
    command = pharmaflow(data_dir, "ingest", "--source", str(path), "--batch-size", "2000")
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (hook / "paused").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the file source never reached its second read"
            time.sleep(0.02)
        size = path.stat().st_size
        with open(path, "r+b") as fh:  # cut it mid-line, well before what was read
            fh.truncate(size // 2 + 17)
        (hook / "resume").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = stderr_lines(err)
    assert proc.returncode != 0, out
    assert len(lines) == 1, err
    assert "changed while it was read" in lines[0] and "truncated from" in lines[0]
    assert "Traceback" not in err
    committed = landed_ids(data_dir)
    assert 0 < len(committed) < stats.valid_unique  # what was committed stayed

    shutil.copyfile(original, path)  # restore it and run again
    again = subprocess.run(
        [*command, "--json"], env=env_with_keys(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    result = orjson.loads(again.stdout.strip().splitlines()[-1])
    assert result["input"] == stats.lines
    assert (
        result["input"]
        == result["landed"] + result["duplicates"] + result["quarantined"] + result["replayed"]
    )
    ids = landed_ids(data_dir)
    assert len(ids) == len(set(ids)) == distinct_valid_ids(path, stats)  # nothing doubled


def test_disk_full_during_ingest_gives_one_line_and_the_next_run_recovers(
    tmp_path: Path, big_input: tuple[Path, SimStats]
) -> None:
    path, stats = big_input
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    command = " ".join(
        pharmaflow(data_dir, "ingest", "--source", str(path), "--batch-size", "2000")
    )
    # A tmpfs too small for the lake, then one with room: the same data dir both times.
    # The tmpfs lives only in the namespace, so the lake is copied out before it ends.
    saved = tmp_path / "saved"
    script = (
        f"mount -t tmpfs -o size=3m none {data_dir} && {{ {command}; echo rc=$? >&2; }}; "
        f"cp -a {data_dir} {saved}"
    )
    try:
        full = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script],
            env=env_with_keys(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    except OSError as exc:
        pytest.skip(f"cannot run unshare: {exc}")
    if "mount" in full.stderr and "rc=" not in full.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {full.stderr.strip()}")
    lines = stderr_lines(full.stderr)
    assert lines[-1] != "rc=0", full.stderr[-2000:]
    message = lines[:-1]
    assert len(message) <= 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    assert any("disk" in line.lower() or "space" in line.lower() for line in message), message

    # The next run, with room (the tmpfs's contents copied to the real disk): it recovers.
    shutil.rmtree(data_dir)
    shutil.copytree(saved, data_dir, symlinks=True)
    again = subprocess.run(
        [*pharmaflow(data_dir, "ingest", "--source", str(path), "--batch-size", "2000"), "--json"],
        env=env_with_keys(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    result = orjson.loads(again.stdout.strip().splitlines()[-1])
    assert (
        result["input"]
        == stats.lines
        == result["landed"] + result["duplicates"] + result["quarantined"] + result["replayed"]
    )
    ids = landed_ids(data_dir)
    assert len(ids) == len(set(ids)) == stats.valid_unique


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--workers", "100000"], {}, "--workers 100000"),
        ([], {"PHARMAFLOW_INGEST_WORKERS": "5000"}, "PHARMAFLOW_INGEST_WORKERS=5000"),
    ],
)
def test_workers_over_the_cap_are_refused_in_one_line(
    tmp_path: Path, big_input: tuple[Path, SimStats], args: list[str], env: dict, named: str
) -> None:
    path, _ = big_input
    for source in (str(path), "kafka://127.0.0.1:9?topics=pharma.sales"):
        result = subprocess.run(
            [*pharmaflow(tmp_path / "data", "ingest", "--source", source), *args],
            env=env_with_keys(PHARMAFLOW_MAX_WORKERS="16", **env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = stderr_lines(result.stderr)
        assert result.returncode != 0
        assert len(lines) == 1, result.stderr
        assert named in lines[0] and "cap of 16" in lines[0]
        assert "PHARMAFLOW_MAX_WORKERS" in lines[0]
    assert not (tmp_path / "data" / "lake").exists()  # refused before anything started
