"""`pharmaflow build` under operator mistakes: a reader holding the warehouse, a full disk,
and `sql` / `trace` on a read-only copy of the data dir.

One small warehouse is built once for the module (simulated input, every fault knob on); each
test runs the CLI in a subprocess, as an operator would. Read-only and disk-full conditions
are real: a read-only bind mount or a small tmpfs in a user + mount namespace (`unshare -rm`,
the helpers below), since as root `chmod` stops nothing.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from pharmaflow.warehouse import build_state
from tests.conftest import env_with_keys

pytestmark = pytest.mark.slow

SMALL = SimConfig(seed=11, days=3, scale=0.05, duplicate_rate=0.02, malformed_rate=0.01)
PHARMAFLOW = [sys.executable, "-m", "pharmaflow"]


def cli(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PHARMAFLOW, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=timeout,
    )


def command(data_dir: Path, *args: str) -> str:
    """The shell command running `pharmaflow --data-dir data_dir args...`."""
    return shlex.join([*PHARMAFLOW, "--data-dir", str(data_dir), *args])


def in_namespace(script: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """`script` (sh) in a new user + mount namespace, where mounts need no privilege and
    vanish with the process."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace: {probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=timeout,
    )


def read_only_mount(path: Path) -> str:
    return f"mount --bind {path} {path} && mount -o remount,bind,ro {path}"


def last_json(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A data dir with a lake and a built warehouse, and that build's JSON result."""
    root = tmp_path_factory.mktemp("build-faults")
    events = root / "events.jsonl"
    simulate(SMALL, events)
    data = root / "data"
    ingest = cli(data, "ingest", "--source", str(events))
    assert ingest.returncode == 0, ingest.stderr
    build = cli(data, "build", "--json")
    assert build.returncode == 0, build.stderr
    result = last_json(build)
    assert result["success"] and result["tables"]["gold.dim_lot"] > 0
    return data, result


def hold_the_warehouse_open(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process reading the warehouse (as a long `pharmaflow sql` does): a read-only
    DuckDB connection held for `seconds`; prints "open" once it holds it."""
    code = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(path)!r}, read_only=True)\n"
        "print('open', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
    return reader


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def test_a_build_beside_a_reader_refuses_or_waits_and_never_forces_a_full_refresh(built):
    data, _ = built
    warehouse = data / "warehouse" / "pharmaflow.duckdb"
    state = warehouse.parent / "duckdb-build-state.json"
    recorded = state.read_bytes()

    reader = hold_the_warehouse_open(warehouse, 60)
    try:
        refused = cli(data, "build", "--wait", "0")
    finally:
        stop(reader)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert f"PID {reader.pid}" in lines[0] and "nothing was changed" in lines[0]
    assert state.read_bytes() == recorded  # the build state is untouched
    assert build_state.needs_full_refresh(warehouse.parent, "duckdb", "") is not None
    assert not (warehouse.parent / "duckdb-build-unfinished").exists()

    # a reader that stops once the build says it is waiting for it
    reader = hold_the_warehouse_open(warehouse, 600)
    waiting = subprocess.Popen(
        [*PHARMAFLOW, "--data-dir", str(data), "build", "--json", "--wait", "90"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_keys(),
    )
    try:
        assert waiting.stderr is not None
        said = waiting.stderr.readline()
        stop(reader)
        out, rest = waiting.communicate(timeout=120)
    finally:
        stop(reader)
        stop(waiting)
    assert waiting.returncode == 0, said + rest
    assert said.startswith("pharmaflow: waiting up to 90 s for") and f"PID {reader.pid}" in said
    result = json.loads(out.strip().splitlines()[-1])
    assert result["success"] and result["full_refresh"] is False  # still incremental


def test_sql_and_trace_read_a_read_only_copy_of_the_data_dir(built, tmp_path):
    data, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    lot = last_json(cli(copy, "sql", "--json", "select min(lot_number) l from gold.dim_lot"))
    lot_number = lot[0]["l"]

    script = " && ".join(
        [
            read_only_mount(copy),
            f"cd {copy}",  # DuckDB's default spill folder for in-memory catalogs is the cwd
            command(copy, "sql", "--json", "select count(*) n from gold.fact_order_lifecycle"),
            command(copy, "sql", "--json", "select count(*) n from lake.bronze"),
            command(copy, "trace", "lot", lot_number, "--json"),
        ]
    )
    result = in_namespace(script)
    assert result.returncode == 0, result.stderr
    order_count, bronze_count, trace = (
        json.loads(line) for line in result.stdout.strip().splitlines()
    )
    assert order_count[0]["n"] > 0 and bronze_count[0]["n"] > 0
    assert trace["lots"] == [lot_number]
    # and on a writable data dir a reader adds nothing either (no dbt project copy, no spill)
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before


def test_a_full_disk_stops_the_build_in_one_line_and_the_next_build_recovers(built, tmp_path):
    data, clean = built
    mount = tmp_path / "small-disk"
    mount.mkdir()
    seed = tmp_path / "seed"
    for part in ("lake", "vault", "secrets"):
        if (data / part).exists():
            shutil.copytree(data / part, seed / part)
    disk = mount / "data"
    filler = mount / "filler"
    build = command(disk, "build", "--json")
    script = " && ".join(
        [
            f"mount -t tmpfs -o size=48m none {mount}",
            f"cp -r {seed} {disk}",
            # leave ~22 MB: dbt starts and builds, but a first build of this lake needs ~30 MB
            f"head -c {25 * 2**20} /dev/zero > {filler}",
            f"{{ {build} > {tmp_path}/full.out 2> {tmp_path}/full.err; "
            f"echo $? > {tmp_path}/full.rc; }}",
            f"rm {filler}",
            f"{build} > {tmp_path}/again.out 2> {tmp_path}/again.err",
        ]
    )
    result = in_namespace(script)
    full_err = (tmp_path / "full.err").read_text()
    assert (tmp_path / "full.rc").read_text().strip() == "1", full_err
    lines = full_err.strip().splitlines()
    assert len(lines) == 1, full_err[:3000]
    assert "disk full" in lines[0] and str(disk / "warehouse") in lines[0]
    assert "dbt.log" in lines[0]
    assert (tmp_path / "full.out").read_text().strip() == ""

    assert result.returncode == 0, (tmp_path / "again.err").read_text()[:3000]
    again = json.loads((tmp_path / "again.out").read_text().strip().splitlines()[-1])
    assert again["success"] and again["tests_failed"] == 0
    # the failed build had changed tables, so this one rebuilt from bronze, and says why
    assert again["full_refresh_reason"] == build_state.UNFINISHED, full_err
    assert again["tables"] == clean["tables"]
