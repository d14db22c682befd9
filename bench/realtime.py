"""Realtime benchmark: event-to-KPI latency and the highest sustained rate, per system.

One run, per system in turn, each against a fresh embedded Tansu broker (loopback, started
and stopped here):

1. This process publishes simulated pharmaflow events (a `pharmaflow.simulate` window, all
   fault knobs on) to their domain topics (`topic_for`, key = envelope key) at FIXED rates,
   paced by a token bucket in 10 ms slices, step by step (`--rates`, `--seconds` each). Each
   message's (topic, partition, offset) and produce timestamp come from its delivery report.
   The window is replayed as often as a run needs, each pass with fresh event ids; every
   event's time is rewritten to "sent now minus how late the simulator made it arrive", so
   event time follows the wall clock as in a live stream and the simulator's late and
   out-of-order events stay late and out of order (duplicates keep their original's time).
2. The system under test consumes and computes windowed counts (events per event type per
   1-minute event-time window at least), committing them with its offsets to a store.
3. `bench/realtime_reader.py`, ANOTHER process, polls the store's committed offsets every
   10 ms and records when each offset first became visible. A message's event-to-KPI latency
   = that time - its produce timestamp.

A step is SUSTAINED when the producer reached >= 95% of the rate, every message became
visible, p99 < 1 s, and the lag (messages produced, not yet visible, sampled every 0.1 s)
did not grow: its least-squares trend over the step adds up to < 0.25 s of traffic.
The rate steps up until a step is not sustained; a step that kept up (lag flat, all
visible) but missed the latency does not stop the climb (the throughput figure needs it). A
20k/s step always runs (its p50/p99 are the headline); if no step holds, lower rates are
probed (half the lowest tried, or 80% of the rate the system worked its backlog off at) so
every system gets a number.

Every step starts from scratch (fresh broker, system, store, reader; a warm-up until a
first batch is visible): Tansu's in-memory log slows down as it fills (the plain consumer's
p99 at a steady 60k/s went 179 ms -> 1.1 s over 2.4M messages), so no step may inherit the
previous steps' data. While the bench waits for the last offsets, a trickle of 1,000
events/s flows, unmeasured: streams do not stop, and quixstreams releases a record only once
newer ones arrive on its other partitions.

Where the 2 cores go is part of the result: per step, the cores used by the producer (this
process), the broker, the reader and the system are recorded. The system runs at nice 5,
below the producer and the broker (in production those are other machines), so a system
that cannot keep up shows as growing lag rather than as a starved producer. On this machine
the producer reaches about 140k events/s into a fresh Tansu beside a consumer.

Systems (`--systems`, each plugs in through one small function returning a `System`):
  plain       bench/realtime_plain.py: confluent-kafka + orjson + dicts, one SQLite (WAL)
              transaction of window upserts + offsets per poll batch
  quix        bench/realtime_quix.py: quixstreams tumbling window in its own uv environment
              (skipped, with the reason, if it does not install); measured by its own
              committed source offsets (its state is RocksDB, in-process)
  pharmaflow  `pharmaflow realtime` (skipped until the CLI exists); see `pharmaflow_system`

    python bench/realtime.py [--systems plain,quix,pharmaflow] [--rates 20000,40000,...]
                             [--seconds 8] [--partitions 6] [--json]
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Message, Producer
from rich.console import Console
from rich.table import Table

from bench_keys import KEYS
from pharmaflow.broker.embedded import EmbeddedBroker
from pharmaflow.broker.topics import DOMAIN_TOPICS, ensure_topics, topic_for
from pharmaflow.errors import PharmaflowError
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.publish import PRODUCER_DEFAULTS
from pharmaflow.simulate.simulator import generate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOPICS = list(DOMAIN_TOPICS.values())
DEFAULT_RATES = "20000,40000,60000,80000,100000,120000,140000"
REFERENCE_RATE = 20_000  # the headline p50/p99 are measured at this rate
P99_LIMIT_S = 1.0
MIN_ACHIEVED = 0.95  # the producer must reach this share of a step's rate
MAX_LAG_GROWTH_S = 0.25  # lag trend over a step, in seconds of traffic
PACE_S = 0.01  # token-bucket slice
BURST_S = 0.25  # how far the producer may catch up after falling behind (a preempted slice)
READ_INTERVAL_S = 0.01
DRAIN_TIMEOUT_S = 5.0  # after a step: long enough to judge p99 < 1 s, not to wait out a backlog
MIN_PROBE_RATE = 2_000
TRICKLE_RATE = 1_000  # events/s while the bench waits (warm-up, last offsets)
READY_TIMEOUT_S = 90.0
DAY_MS = 86_400_000
# The system under test runs at a lower priority than the producer and the broker (which
# stand for other machines in production): on 2 shared cores a system that cannot keep up
# then shows as growing lag, not as a starved producer.
SUT_NICE = 5
QUIX_ENV = Path("/tmp/pf-bench-quix")
# The producer favours latency a little over publish()'s throughput defaults (linger 20 ms).
PRODUCER = {**PRODUCER_DEFAULTS, "linger.ms": 5, "queue.buffering.max.messages": 2_000_000}


class Skip(Exception):
    """A system cannot run here; the message says why (shown in the table)."""


@dataclass
class System:
    """A system under test: the consumer command, and how the reader sees its commits."""

    name: str
    command: list[str]
    reader: list[str]  # realtime_reader.py arguments (everything but --out)
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""  # how its latency is measured, if not through its own store


# --------------------------------------------------------------------------- systems


def plain_system(bootstrap: str, group: str, work: Path) -> System:
    from realtime_plain import READ_OFFSETS

    store = str(work / "plain.db")
    topics = ",".join(TOPICS)
    return System(
        name="plain",
        command=[sys.executable, str(HERE / "realtime_plain.py"), bootstrap, group, store, topics],
        reader=["--kind", "sqlite", "--path", store, "--query", READ_OFFSETS],
    )


def quix_system(bootstrap: str, group: str, work: Path) -> System:
    python, script, topics = str(quix_python()), str(HERE / "realtime_quix.py"), ",".join(TOPICS)
    return System(
        name="quix",
        command=[python, script, bootstrap, group, str(work / "state"), topics],
        reader=["--kind", "kafka", "--bootstrap", bootstrap, "--group", group, "--topics", topics],
        note="committed source offsets (checkpoint every 0.1 s; excludes the repartition hop)",
    )  # fmt: skip


# The speed layer's adapter: the one place that knows how pharmaflow is started and read.
# - `python -m pharmaflow --data-dir D realtime --source kafka://HOST:PORT?group=G&...
#   --workers N --idle-exit S` consumes the domain topics from the group's start (earliest, or
#   its stored offsets) and runs until SIGTERM; it is started in a session of its own and the
#   whole process group is signalled (SIGTERM, SIGKILL after 15 s), so workers stop too. Alerts
#   are evaluated as deployed (no --no-alerts).
# - its store is `D/realtime/state.db` (SQLite, WAL), read from the reader process through
#   `StateReader(Database(path), RealtimeConfig()).committed_offsets(G)` -> {(topic,
#   partition): last offset committed with the state} (realtime_reader.pharmaflow_reader).
# - `max_wait_ms` bounds how long a partial batch waits (the source's default, 1 s, would be
#   the whole latency budget).
PHARMAFLOW_MAX_WAIT_MS = 250
PHARMAFLOW_WORKERS = 1


@functools.cache
def pharmaflow_missing() -> str | None:
    """Why the speed layer cannot run here, or None."""
    probe = subprocess.run(
        [sys.executable, "-m", "pharmaflow", "realtime", "--help"],
        capture_output=True, text=True, env={**os.environ, **KEYS}, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return "`pharmaflow realtime` is not available"
    try:
        import pharmaflow.realtime.reader  # noqa: F401
    except ImportError as exc:
        return f"pharmaflow.realtime.reader not importable: {exc}"
    return None


def pharmaflow_system(bootstrap: str, group: str, work: Path) -> System:
    missing = pharmaflow_missing()
    if missing:
        raise Skip(missing)
    data_dir = work / "data"
    url = (f"kafka://{bootstrap}?group={group}&session_timeout_ms=6000"
           f"&max_wait_ms={PHARMAFLOW_MAX_WAIT_MS}")  # fmt: skip
    return System(
        name="pharmaflow",
        command=[sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "realtime",
                 "--source", url, "--workers", str(PHARMAFLOW_WORKERS), "--idle-exit", "3600"],
        reader=["--kind", "pharmaflow", "--path", str(data_dir / "realtime" / "state.db"),
                "--group", group],
        env=KEYS,
    )  # fmt: skip


SYSTEMS: dict[str, Callable[[str, str, Path], System]] = {
    "plain": plain_system,
    "quix": quix_system,
    "pharmaflow": pharmaflow_system,
}


@functools.cache
def quix_python() -> Path:
    """The quixstreams environment's python, created with uv on first use; Skip if it does
    not install (quixstreams pins confluent-kafka < 2.13, so never in the project's env)."""
    python = QUIX_ENV / "bin" / "python"
    check = [str(python), "-c", "import quixstreams, orjson"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    uv = ROOT / ".tools" / "bin" / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd is None:
        raise Skip("uv not found (looked in .tools/bin and PATH)")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    steps = [
        [uv_cmd, "venv", str(QUIX_ENV), "--python", "python3.11"],
        [uv_cmd, "pip", "install", "--python", str(python), "quixstreams", "orjson"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise Skip(f"quixstreams does not install: {lines[-1] if lines else 'uv failed'}")
    return python


# --------------------------------------------------------------------------- input


@dataclass
class Pool:
    """The simulated window, cut for fast rewriting. Per message: topic, key, and either its
    bytes as is (`head` None: not an event) or the pieces around its event id's first 8
    characters and its event time (`head`, `mid`, `tail`), and how late the simulator made it
    arrive (`delay_ms`)."""

    topics: list[str]
    keys: list[bytes]
    values: list[bytes]
    heads: list[bytes | None]
    mids: list[bytes]
    tails: list[bytes]
    delay_ms: np.ndarray
    line: list[int]  # index of its line: a duplicate shares its original's
    shared: list[bool]  # its line is sent more than once (a duplicate or its original)

    def __len__(self) -> int:
        return len(self.values)


def make_pool(events: int) -> Pool:
    scale = events / 348_585 * 1.02
    output = generate(SimConfig(seed=7, days=7, scale=scale))
    rows = output.rows.tolist()
    topic_of_type = {t: topic_for(t) for t in output.table.types}
    keys = [k.encode() for k in output.keys()]  # noqa: SIM118 - a method, not a dict
    topics = [topic_of_type[t] for t in output.event_types()]
    pool = Pool(topics, keys, [], [], [], [], np.zeros(len(rows), np.int64), rows, [])
    counts = np.bincount(output.rows)
    id_mark, time_mark = b'"event_id":"', b'"event_time":"'
    for i, (row, arrived) in enumerate(zip(rows, output.arrival_ms.tolist(), strict=True)):
        value = output.lines[row]
        pool.values.append(value)
        pool.shared.append(bool(counts[row] > 1))
        a, b = value.find(id_mark), value.find(time_mark)
        head = None
        if a >= 0 and b > a:
            a, b = a + len(id_mark), b + len(time_mark)
            c = value.find(b'"', b)
            try:
                orjson.loads(value)
                at = datetime.fromisoformat(value[b:c].decode())
                pool.delay_ms[i] = min(max(0, arrived - int(at.timestamp() * 1000)), 7 * DAY_MS)
                head = value[:a]
            except ValueError:  # malformed (orjson.JSONDecodeError is a ValueError)
                pass
        pool.heads.append(head)
        pool.mids.append(b"" if head is None else value[a + 8 : b])
        pool.tails.append(b"" if head is None else b"Z" + value[c:])
    return pool


# --------------------------------------------------------------------------- producer


class Publisher:
    """Sends pool messages in order (replaying the pool with fresh ids) at a paced rate and
    records every delivery: topic, partition, offset, produce timestamp (ms)."""

    def __init__(self, bootstrap: str, pool: Pool) -> None:
        self.pool = pool
        self.sent = 0  # messages handed to the producer in this run (index into the replay)
        self.failed = 0
        self.records: list[tuple[str, int, int, tuple[int, int]]] = []
        self._cycle = -1
        self._prefix = b""
        self._cache: dict[int, bytes] = {}
        self.producer = Producer(
            {**PRODUCER, "bootstrap.servers": bootstrap, "on_delivery": self._delivered}
        )

    def _delivered(self, err: Any, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            return
        self.records.append((msg.topic(), msg.partition(), msg.offset(), msg.timestamp()))

    def take(self) -> dict[str, np.ndarray]:
        """The deliveries recorded since the last take."""
        records, self.records = self.records, []
        return {
            "topic": np.asarray([r[0] for r in records], dtype=object),
            "partition": np.asarray([r[1] for r in records], dtype=np.int64),
            "offset": np.asarray([r[2] for r in records], dtype=np.int64),
            "ts": np.asarray([r[3][1] for r in records], dtype=np.float64) / 1000,
        }

    def send(self, count: int) -> None:
        """The next `count` messages, their event times rewritten to now - their delay."""
        pool, n = self.pool, len(self.pool)
        heads, mids, tails, values = pool.heads, pool.mids, pool.tails, pool.values
        topics, keys, shared, line = pool.topics, pool.keys, pool.shared, pool.line
        produce, poll = self.producer.produce, self.producer.poll
        now_ms = int(time.time() * 1000)
        j, end = self.sent, self.sent + count
        while j < end:
            cycle, lo = divmod(j, n)
            hi = min(n, lo + end - j)
            if cycle != self._cycle:
                self._cycle, self._prefix, self._cache = cycle, b"%08x" % cycle, {}
            prefix, cache = self._prefix, self._cache
            stamps = np.datetime_as_string(
                (now_ms - pool.delay_ms[lo:hi]).astype("datetime64[ms]"), unit="ms"
            )
            for i, stamp in zip(range(lo, hi), stamps.astype("S23").tolist(), strict=True):
                head = heads[i]
                if head is None:
                    value = values[i]
                else:
                    if shared[i]:  # a duplicate carries its original's event time
                        stamp = cache.setdefault(line[i], stamp)
                    value = b"".join((head, prefix, mids[i], stamp, tails[i]))
                while True:
                    try:
                        produce(topics[i], value, keys[i])
                        break
                    except BufferError:
                        poll(0.01)
            j += hi - lo
        self.sent = end
        poll(0)

    def paced(self, rate: float, seconds: float) -> None:
        """`rate` messages/s for `seconds`: a token bucket refilled every PACE_S, a slice of
        messages sent each time. A producer that falls behind may catch up by at most BURST_S
        (so a slow producer shows as a lower achieved rate, not as bursts)."""
        total = round(rate * seconds)
        collecting = gc.isenabled()
        gc.disable()  # a full collection over the growing delivery records stalls the producer
        try:
            self._paced(rate, total)
        finally:
            if collecting:
                gc.enable()

    def _paced(self, rate: float, total: int) -> None:
        began = time.monotonic()
        done = 0
        while done < total:
            now = time.monotonic()
            behind = (now - began - BURST_S) * rate - done
            if behind > 0:
                began += behind / rate
            due = min(total, round((now - began) * rate))
            want = min(rate * PACE_S, total - done)
            if due - done < want:
                self.producer.poll(max(0.0, began + (done + want) / rate - now))
                continue
            self.send(due - done)
            done = due

    def flush(self) -> None:
        left = self.producer.flush(60)
        self.failed += left


# --------------------------------------------------------------------------- measuring


class Observations:
    """The reader's output, read back: per (topic, partition), when which offset first became
    visible."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
        raw: dict[tuple[str, int], tuple[list[float], list[int]]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                parts = line.split()
                if len(parts) != 4:
                    continue  # a line being written
                times, offsets = raw.setdefault((parts[1], int(parts[2])), ([], []))
                times.append(float(parts[0]))
                offsets.append(int(parts[3]))
        return {
            tp: (np.asarray(t, dtype=np.float64), np.maximum.accumulate(np.asarray(o)))
            for tp, (t, o) in raw.items()
        }

    def latest(self) -> dict[tuple[str, int], int]:
        return {tp: int(o[-1]) for tp, (_t, o) in self.load().items() if len(o)}


def visible_times(deliveries: dict[str, np.ndarray], observations: Observations) -> np.ndarray:
    """Per delivered message, when its offset first became visible (inf: never)."""
    seen = observations.load()
    visible = np.full(len(deliveries["offset"]), np.inf)
    keys = np.char.add(deliveries["topic"].astype(str), "/")
    keys = np.char.add(keys, deliveries["partition"].astype(str))
    for key in np.unique(keys):
        topic, partition = key.rsplit("/", 1)
        obs = seen.get((topic, int(partition)))
        if obs is None:
            continue
        times, offsets = obs
        mask = keys == key
        idx = np.searchsorted(offsets, deliveries["offset"][mask], side="left")
        got = idx < len(offsets)
        vis = np.full(int(mask.sum()), np.inf)
        vis[got] = times[idx[got]]
        visible[mask] = vis
    return visible


def wait_visible(deliveries: dict[str, np.ndarray], observations: Observations, timeout: float,
                 tick: Callable[[], None]) -> None:  # fmt: skip
    """Until every delivered offset is visible, or `timeout`; `tick()` between looks."""
    last: dict[tuple[str, int], int] = {}
    for t, p, o in zip(deliveries["topic"], deliveries["partition"].tolist(),
                       deliveries["offset"].tolist(), strict=True):  # fmt: skip
        if o > last.get((t, p), -1):
            last[(t, p)] = o
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = observations.latest()
        if all(seen.get(tp, -1) >= o for tp, o in last.items()):
            return
        tick()


def step_figures(rate: float, deliveries: dict[str, np.ndarray], visible: np.ndarray,
                 failed: int) -> dict[str, Any]:  # fmt: skip
    ts = deliveries["ts"]
    n = len(ts)
    latency = visible - ts
    span = float(ts.max() - ts.min()) if n > 1 else 0.0
    achieved = (n - 1) / span if span > 0 else 0.0
    unseen = int(np.isinf(visible).sum())
    # lag = produced and not yet visible, sampled every 0.1 s over the producing span
    grid = np.arange(ts.min(), ts.max(), 0.1) if span > 0 else np.asarray([ts.min()])
    lag = np.searchsorted(np.sort(ts), grid, side="right") - np.searchsorted(
        np.sort(visible), grid, side="right"
    )
    p50, p99, p999, worst = (
        float(np.percentile(latency, q, method="higher")) for q in (50, 99, 99.9, 100)
    )
    # Growth over the step: the least-squares slope of the lag times the step's span, in
    # seconds of traffic. The lag first fills up to about rate x latency; that ramp (a tenth
    # of the step, or the median latency if longer, at most half the step) is left out.
    settle = min(max(span / 10, p50 if np.isfinite(p50) else span), span / 2)
    tail = grid >= grid[0] + settle
    growth_s = 0.0
    if tail.sum() > 2:
        slope = float(np.polyfit(grid[tail] - grid[0], lag[tail].astype(np.float64), 1)[0])
        growth_s = slope * span / rate
    why_not = []
    if failed:
        why_not.append(f"{failed:,} deliveries failed")
    if achieved < MIN_ACHIEVED * rate:
        why_not.append(f"producer reached only {achieved:,.0f}/s")
    if unseen:
        why_not.append(f"{unseen:,} not visible {DRAIN_TIMEOUT_S:g} s after the step")
    if not p99 < P99_LIMIT_S:
        why_not.append(f"p99 {_ms(p99)} ms" if np.isfinite(p99) else "p99 unknown (> 1% unseen)")
    if not growth_s < MAX_LAG_GROWTH_S:
        why_not.append(f"lag grew {growth_s:.2f} s")
    # A system that fell behind worked through its backlog at its capacity: the rate at which
    # offsets became visible from a quarter into the step until the last one seen.
    capacity = None
    finite = visible[np.isfinite(visible)]
    kept_up = not failed and not unseen and growth_s < MAX_LAG_GROWTH_S
    if not kept_up and len(finite) and span > 0:
        t1, t2 = float(ts.min()) + span / 4, float(finite.max())
        if t2 > t1:
            capacity = round(int(((finite >= t1) & (finite <= t2)).sum()) / (t2 - t1))
    return {
        "rate": int(rate),
        "messages": n,
        "achieved_rate": round(achieved),
        "p50_ms": _ms(p50),
        "p99_ms": _ms(p99),
        "p999_ms": _ms(p999),
        "max_ms": _ms(worst),
        "unseen": unseen,
        "failed_deliveries": failed,
        "mean_lag_messages": round(float(lag.mean())),
        "lag_growth_s": round(growth_s, 3),
        "sustained": not why_not,
        "kept_up": kept_up,  # lag flat and everything visible, whatever the latency
        "why_not": why_not,
        "consumed_while_behind_per_s": capacity,
    }


def _ms(seconds: float) -> float | None:
    return None if not np.isfinite(seconds) else round(seconds * 1000, 1)


class CpuMeter:
    """CPU seconds used by each process group (the producer is this process; the broker, the
    reader and the system are groups of their own), so a step can say where the 2 cores went."""

    _TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups  # name -> process group id
        self._last = self._sample()
        self._at = time.monotonic()

    def _sample(self) -> dict[str, float]:
        used = dict.fromkeys(self.groups, 0.0)
        used["producer"] = sum(os.times()[:2])
        by_group = {pgid: name for name, pgid in self.groups.items()}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited meanwhile
                continue
            name = by_group.get(int(fields[2]))  # field 5: process group
            if name is not None:
                used[name] += (int(fields[11]) + int(fields[12])) / self._TICK  # utime + stime
        return used

    def lap(self) -> dict[str, float]:
        """Cores used by each since the last lap (1.0 = one core busy)."""
        now, at = self._sample(), time.monotonic()
        cores = {k: round(max(0.0, v - self._last.get(k, 0.0)) / (at - self._at), 2)
                 for k, v in now.items()}  # fmt: skip
        self._last, self._at = now, at
        return cores


# --------------------------------------------------------------------------- one system


class Running:
    """The processes of one system's run, stopped (by PID / own process group) on exit."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, what: str, command: list[str], env: dict[str, str], nice: int = 0
    ) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{what}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
            start_new_session=True, cwd=self.work,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )  # fmt: skip
        log.close()
        self.procs.append((what, proc))
        return proc

    def check(self) -> None:
        for what, proc in self.procs:
            if proc.poll() is not None:
                tail = (self.work / f"{what}.log").read_text(errors="replace")[-2000:]
                last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), "")
                raise RuntimeError(f"{what} exited with {proc.returncode}: {last}\n{tail}")

    def stop(self) -> None:
        for _what, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _what, proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs = []


def run_system(name: str, pool: Pool, rates: list[int], seconds: float, partitions: int,
               work: Path, say: Callable[[str], None],
               keep: bool = False) -> dict[str, Any]:  # fmt: skip
    """Step the rate up until a step is not sustained (probing lower if not even the
    reference rate holds); every step on a fresh broker, system and store (see run_step)."""
    steps: list[dict[str, Any]] = []
    note = ""
    queue = sorted(set(rates) | {REFERENCE_RATE})
    best, probing = 0, False
    while queue:
        rate = queue.pop(0)
        figures, note = run_step(name, pool, rate, seconds, partitions,
                                 work / f"step-{len(steps)}", keep)  # fmt: skip
        figures["probe"] = probing
        steps.append(figures)
        say(f"[{name}] {rate:>7,}/s: achieved {figures['achieved_rate']:,}/s, "
            f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
            f"lag growth {figures['lag_growth_s']} s, cores {figures['cores']}"
            f" -> {'; '.join(figures['why_not']) or 'sustained'}")  # fmt: skip
        if figures["sustained"]:
            best = max(best, rate)
            if probing:
                break
            continue
        if rate < REFERENCE_RATE and not probing:
            continue  # below the reference rate: the reference step runs regardless
        if figures["kept_up"] and not probing:
            continue  # only the latency failed: go on up, for the throughput figure
        # Nothing held yet: probe below the lowest rate tried, at half of it, or at 80% of the
        # rate the system worked its backlog off at if that is lower.
        lowest = min(s["rate"] for s in steps)
        behind = figures["consumed_while_behind_per_s"] or lowest
        probe = int(min(lowest // 2, 0.8 * behind) // 500 * 500)
        if best == 0 and probe >= MIN_PROBE_RATE:
            probing, queue = True, [probe]
            continue
        break
    return summary(name, steps, note)


def run_step(name: str, pool: Pool, rate: int, seconds: float, partitions: int, work: Path,
             keep: bool = False) -> tuple[dict[str, Any], str]:  # fmt: skip
    """One step from scratch: a fresh broker (Tansu's in-memory log slows down as it holds
    more: at a steady 60k/s, p99 of the plain consumer went 179 -> 1,118 ms over 2.4M
    messages, so no step may inherit the previous ones' data), system, store and reader;
    warm up; `rate` for `seconds`; wait for the last offsets; stop everything."""
    work.mkdir(parents=True)
    broker = EmbeddedBroker(work / "broker")
    running = Running(work)
    publisher: Publisher | None = None
    try:
        info = broker.start()
        ensure_topics(info.bootstrap, partitions=partitions)
        system = SYSTEMS[name](info.bootstrap, f"bench-{name}", work)
        seen_file = work / "visible.txt"
        observations = Observations(seen_file)
        reader = running.start("reader", [sys.executable, str(HERE / "realtime_reader.py"),
                                 "--out", str(seen_file), "--interval", str(READ_INTERVAL_S),
                                 *system.reader], {})  # fmt: skip
        sut = running.start(name, system.command, system.env, nice=SUT_NICE)
        publisher = Publisher(info.bootstrap, pool)
        cpu = CpuMeter({"broker": info.pid, "reader": reader.pid, "system": sut.pid})

        def trickle(seconds: float = 0.05) -> None:
            """A stream never stops: while the bench waits, TRICKLE_RATE events/s keep
            flowing (not measured), so a system that releases records only when newer ones
            arrive (quixstreams aligns partitions by time) is not judged on a silence."""
            running.check()
            publisher.paced(TRICKLE_RATE, seconds)

        began = time.monotonic()
        while True:  # warm-up: small batches until one is visible end to end
            running.check()
            publisher.paced(2_000, 0.5)
            publisher.flush()
            warm = publisher.take()
            wait_visible(warm, observations, 5.0, trickle)
            if np.isfinite(visible_times(warm, observations)).all():
                break
            if time.monotonic() - began > READY_TIMEOUT_S:
                raise RuntimeError(f"{name} committed nothing within {READY_TIMEOUT_S:.0f} s")
        ready_s = round(time.monotonic() - began, 1)
        trickle(0.5)
        publisher.flush()
        publisher.take()  # the warm-up's and the trickle's: not measured
        cpu.lap()
        publisher.paced(rate, seconds)
        cores = cpu.lap()
        publisher.flush()
        deliveries = publisher.take()
        wait_visible(deliveries, observations, DRAIN_TIMEOUT_S, trickle)
        trickle(0.1)  # the reader's last observations
        figures = step_figures(
            rate, deliveries, visible_times(deliveries, observations), publisher.failed
        )
        figures["ready_s"] = ready_s  # start to first batch visible (join, warm-up)
        figures["cores"] = cores  # while producing the step
        return figures, system.note
    finally:
        if publisher is not None:
            publisher.producer.close()
        running.stop()
        if broker.info() is not None:
            broker.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def summary(name: str, steps: list[dict[str, Any]], note: str) -> dict[str, Any]:
    reference = next((s for s in steps if s["rate"] == REFERENCE_RATE), None)
    best = max((s["rate"] for s in steps if s["sustained"]), default=0)
    failed = [s for s in steps if not s["sustained"] and s["rate"] > best]
    stop = min(failed, key=lambda s: s["rate"]) if failed else None
    kept_up = max((s["achieved_rate"] for s in steps if s["kept_up"]), default=0)
    behind = max((s["consumed_while_behind_per_s"] or 0 for s in steps), default=0)
    return {
        "status": "ok",
        "p50_ms_at_20k": reference and reference["p50_ms"],
        "p99_ms_at_20k": reference and reference["p99_ms"],
        "highest_sustained_rate": best,  # p99 < 1 s and lag flat: THE figure
        "stopped_at": stop and {"rate": stop["rate"], "why": stop["why_not"]},
        # Throughput whatever the latency: the highest rate it kept up with (lag flat), or the
        # rate it worked a backlog off at when it could not keep up, whichever is higher.
        "highest_rate_kept_up": kept_up,
        "consumed_while_behind_per_s": behind or None,
        "throughput_per_s": max(kept_up, behind),
        "latency_measured_by": note or "its store's committed offsets (committed with the windows)",
        "steps": steps,
    }


# --------------------------------------------------------------------------- output


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok" or not b[key]:
        return None
    return round(a[key] / b[key], 2)


def report(console: Console, figures: dict[str, Any]) -> None:
    systems = figures["systems"]
    table = Table(
        title=f"event-to-KPI latency; highest rate sustained with p99 < 1 s and flat lag; "
        f"throughput whatever the latency ({figures['partitions']} partitions, "
        f"{figures['seconds']:g} s steps)"
    )
    for column in ("system", "p50 @20k/s ms", "p99 @20k/s ms", "sustained /s", "vs quix",
                   "vs plain", "throughput /s", "vs quix ", "vs plain ",
                   "next step failed on"):  # fmt: skip
        table.add_column(column, justify="left" if column[0] in "sn" else "right")
    for name, result in systems.items():
        if result["status"] != "ok":
            table.add_row(name, *["-"] * 8, f"{result['status']}: {result['reason']}")
            continue
        stop = result["stopped_at"]
        table.add_row(
            name, _latency(result["p50_ms_at_20k"]), _latency(result["p99_ms_at_20k"]),
            f"{result['highest_sustained_rate']:,}", _cell(result["ratio_vs_quix"], "x"),
            _cell(result["ratio_vs_plain"], "x"), f"{result['throughput_per_s']:,}",
            _cell(result["throughput_ratio_vs_quix"], "x"),
            _cell(result["throughput_ratio_vs_plain"], "x"),
            f"{stop['rate']:,}/s: {'; '.join(stop['why'])}" if stop else "- (all rates held)",
        )  # fmt: skip
    console.print(table)
    steps = Table(title="steps (cores: while producing the step)")
    for column in ("system", "rate /s", "achieved /s", "p50 ms", "p99 ms", "max ms",
                   "lag growth s", "behind /s", "cores sys/broker/prod", "sustained"):  # fmt: skip
        steps.add_column(column, justify="left" if column[0] in "s" else "right")
    for name, result in systems.items():
        for s in result.get("steps", []):
            verdict = "; ".join(["yes"] if s["sustained"] else s["why_not"])
            cores = s.get("cores", {})
            steps.add_row(
                name + (" (probe)" if s.get("probe") else ""), f"{s['rate']:,}",
                f"{s['achieved_rate']:,}", _latency(s["p50_ms"]), _latency(s["p99_ms"]),
                _latency(s["max_ms"]), f"{s['lag_growth_s']:.3f}",
                _cell(s["consumed_while_behind_per_s"]),
                "/".join(f"{cores.get(k, 0):.2f}" for k in ("system", "broker", "producer")),
                verdict,
            )  # fmt: skip
    console.print(steps)
    for name, result in systems.items():
        if result["status"] == "ok":
            console.print(
                f"{name}: latency = produce timestamp -> visible in "
                f"{result['latency_measured_by']}, polled every "
                f"{figures['reader_interval_ms']:g} ms from another process",
                markup=False,
                highlight=False,
            )


def _latency(ms: float | None) -> str:
    return f"> {DRAIN_TIMEOUT_S:g} s" if ms is None else f"{ms:,.0f}"


def _cell(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="plain,quix,pharmaflow")
    parser.add_argument("--rates", default=DEFAULT_RATES, help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="per step")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--pool", type=int, default=350_000, help="simulated events replayed")
    parser.add_argument("--json", action="store_true", help="print figures as JSON last line")
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the temp dir (logs, stores) to look into"
    )
    args = parser.parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds like an error, so every broker, reader and system
    # this bench started is stopped by its `finally` blocks rather than left running.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    rates = sorted({int(float(r)) for r in args.rates.split(",") if r.strip()})
    console = Console(width=max(Console().width, 150))

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    work = Path(tempfile.mkdtemp(prefix="pharmaflow-rtbench-"))
    try:
        started = time.perf_counter()
        pool = make_pool(args.pool)
        gc.freeze()  # the pool lives for the whole run: keep it out of every collection
        say(f"simulated {len(pool):,} messages in {time.perf_counter() - started:.1f} s "
            f"(replayed with fresh ids as often as needed)")  # fmt: skip
        systems: dict[str, dict[str, Any]] = {}
        for name in names:
            try:
                systems[name] = run_system(name, pool, rates, args.seconds, args.partitions,
                                           work / name, say, args.keep_work)  # fmt: skip
            except Skip as exc:
                say(f"[{name}] skipped: {exc}")
                systems[name] = {"status": "skipped", "reason": str(exc)}
            except (RuntimeError, PharmaflowError) as exc:  # it crashed: say so, run the others
                say(f"[{name}] failed: {exc}")
                systems[name] = {"status": "failed", "reason": str(exc).splitlines()[0]}
            finally:
                if not args.keep_work:
                    shutil.rmtree(work / name, ignore_errors=True)
        for result in systems.values():
            if result["status"] == "ok":
                for other in ("quix", "plain"):
                    for key, label in (
                        ("highest_sustained_rate", ""),
                        ("throughput_per_s", "throughput_"),
                    ):
                        result[f"{label}ratio_vs_{other}"] = ratio(result, systems.get(other), key)
        figures = {
            "partitions": args.partitions,
            "seconds": args.seconds,
            "rates": rates,
            "p99_limit_ms": P99_LIMIT_S * 1000,
            "reader_interval_ms": READ_INTERVAL_S * 1000,
            "pool_messages": len(pool),
            "run_seconds": round(time.perf_counter() - started, 1),
            "systems": systems,
        }
        report(console, figures)
        if args.json:
            print(json.dumps(figures))
    finally:
        if args.keep_work:
            say(f"kept {work} (logs, stores); remove it when done")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
