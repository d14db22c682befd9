"""API load benchmark: KPI and timeline routes of a real uvicorn server, at concurrency 1, 10, 50.

One run, twice over the same data dir: the API with its answer cache off
(`PHARMAFLOW_API_CACHE_SECONDS=0`) and on (the default, 2 s), each a fresh uvicorn process
with one worker on loopback. Per server:

1. every distinct request (the daily KPIs, KPI series, the live windows, order and shipment
   timelines, facility metrics; ids read from the served warehouse snapshot) is answered once,
   serially: those bodies are the reference;
2. for each concurrency level, a load generator, ANOTHER process, keeps that many requests in
   flight (asyncio + httpx, closed loop, requests drawn at random from the set) for
   `--seconds`, and compares every body with the serial one for the same request (every one
   must be equal: threads sharing a DuckDB connection would return someone else's numbers).

Printed per level: requests, requests/s, p50/p95/p99 latency (ms, measured by the client from
send to last byte), errors (non-200, transport), "equal serial", and the cores each side used.
On a machine with two or more cores the server is pinned to one core and the load generator
to another, so neither starves the other; the table says which each had. The target of the
serving issue: p99 < 30 ms at concurrency 50 (cache on).

    python bench/api_load.py [--data-dir DIR] [--seconds 10] [--levels 1,10,50] [--json]

Without `--data-dir` a small data dir is simulated, ingested, counted live and built in a
temp dir first (seed 42, 7 days, scale 0.3: the served data of the tests). With it, the data
dir is only read: API keys go to a security store in the bench's own temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench_keys import KEYS
from pharmaflow.broker.embedded import free_port
from pharmaflow.config import Settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LEVELS = "1,10,50"
P99_TARGET_MS = 30.0
TARGET_LEVEL = 50
CACHE_ON_SECONDS = 2.0
READY_TIMEOUT_S = 60.0
SAMPLE_IDS = 20  # orders and shipments with a timeline in the request set
API_FACTORY = "pharmaflow.serve.api.app:app_from_env"
_TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- data


def make_data_dir(folder: Path) -> Path:
    """Simulate, ingest, count live and build a small data dir (the tests' served data)."""
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.realtime.workers import run_realtime_worker
    from pharmaflow.simulate.config import SimConfig
    from pharmaflow.simulate.simulator import simulate
    from pharmaflow.warehouse.runner import build

    events = folder / "events.jsonl"
    simulate(SimConfig(seed=42, days=7, scale=0.3), events)
    settings = data_settings(folder / "data")
    run_ingest(settings, str(events))
    run_realtime_worker(settings, str(events))
    result = build(settings)
    if not result.success:
        raise SystemExit(f"the build failed: {result.failures}")
    return settings.root


def data_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        hmac_key=KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=KEYS["PHARMAFLOW_VAULT_KEY"],
        **extra,
    )


def create_key(data_dir: Path, store: str) -> str:
    """An analyst key (aggregates and row-level routes) in the bench's own security store."""
    from pharmaflow.serve.security.store import open_security

    keys, audit = open_security(data_settings(data_dir, security_store=store))
    try:
        return keys.create("api-load-bench", "analyst", actor="bench/api_load.py")[1]
    finally:
        keys.close()
        audit.close()


def sample_ids(data_dir: Path) -> dict[str, list[str]]:
    """Orders, shipments and facilities the served snapshot holds (read once, then closed)."""
    from pharmaflow.serve.query.base import QueryContext

    ctx = QueryContext(data_settings(data_dir))
    try:
        with ctx.reading() as q:
            return {
                "orders": _column(q, "order_id", "gold.fact_order_lifecycle"),
                "shipments": _column(q, "shipment_id", "gold.fact_shipment"),
                "facilities": _column(q, "facility_id", "gold.dim_facility where is_current"),
            }
    finally:
        ctx.close()


def _column(q: Any, column: str, source: str) -> list[str]:
    # Spread over the table (every n-th id), not the first few: old and recent rows alike.
    sql = (
        f"select {column} from (select {column}, row_number() over (order by {column}) as n, "
        f"count(*) over () as total from {source}) "
        f"where n % greatest(1, total // {SAMPLE_IDS}) = 0 order by {column} limit {SAMPLE_IDS}"
    )
    return [r[column] for r in q.rows(f"bench:{column}", sql)]


def request_set(ids: dict[str, list[str]], paths: set[str]) -> list[str]:
    """The distinct requests (path + query) the load draws from; routes the API does not
    have (its OpenAPI document) are left out."""
    requests = ["/v1/kpis/daily", "/v1/kpis/realtime", "/v1/kpis/realtime?width_s=300"]
    requests += [f"/v1/kpis/timeseries?metric=orders_placed&interval={i}" for i in ("hour", "day")]
    requests += [
        f"/v1/kpis/daily?pharmacy_id={f}" for f in ids["facilities"] if f.startswith("PH")
    ][:3]
    wanted = {
        "/v1/orders/{order_id}/timeline": [f"/v1/orders/{o}/timeline" for o in ids["orders"]],
        "/v1/shipments/{shipment_id}/timeline": [
            f"/v1/shipments/{s}/timeline" for s in ids["shipments"]
        ],
        "/v1/facilities/{facility_id}/metrics": [
            f"/v1/facilities/{f}/metrics" for f in ids["facilities"]
        ],
    }
    for route, concrete in wanted.items():
        if route in paths:
            requests += concrete
    return requests


# --------------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICK


def core_plan() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load cores): one core each when there are two or more, else shared."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    half = len(cores) // 2
    return set(cores[:half]), set(cores[half:])


def describe(cores: set[int] | None) -> str:
    if cores is None:
        return f"shared ({len(os.sched_getaffinity(0))})"
    return f"{len(cores)} (cpu {','.join(map(str, sorted(cores)))})"


@dataclass
class ApiServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_api(env: dict[str, str], work: Path, cores: set[int] | None) -> ApiServer:
    port = free_port()
    log = work / f"api-{port}.log"
    command = [
        sys.executable, "-m", "uvicorn", "--factory", API_FACTORY, "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=ROOT, start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )  # fmt: skip
    server = ApiServer(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(
                    f"the API exited with {proc.returncode}: {log.read_text()[-2000:]}"
                )
            try:
                if client.get(server.url + "/ready").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    server.stop()
    raise SystemExit(f"the API did not get ready in {READY_TIMEOUT_S:.0f} s: {log.read_text()}")


# --------------------------------------------------------------------------- load generator


def serial_answers(url: str, key: str, requests: list[str]) -> dict[str, str]:
    """Each request answered once, one after another: request -> sha256 of its body."""
    answers = {}
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30.0) as client:
        for path in requests:
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
            answers[path] = hashlib.sha256(response.content).hexdigest()
    return answers


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on one connection: GET, read the status line,
    headers and a Content-Length body. A load generator in Python must spend little CPU per
    request, or it measures itself: httpx.AsyncClient costs ~2 ms of CPU per request here,
    and ~9 ms with 50 connections in its pool (the `--client httpx` option shows it)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nX-API-Key: {key}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n".encode() + self.head)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                raise ConnectionError("an answer without Content-Length")
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            await self.close()
            raise ConnectionError(str(exc)) from exc
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.reader = self.writer = None


async def _load(
    url: str, key: str, expected: dict[str, str], concurrency: int, seconds: float, seed: int,
    client_kind: str = "raw",
) -> dict[str, Any]:  # fmt: skip
    requests = sorted(expected)
    latencies: list[float] = []
    attempts = errors = mismatches = 0
    examples: list[str] = []
    parts = httpx.URL(url)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    shared = httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": key}, timeout=30.0, limits=limits
    )
    stop_at = time.perf_counter() + seconds

    def note(text: str) -> None:
        if len(examples) < 5:
            examples.append(text)

    async def one_client(rnd: random.Random) -> None:
        nonlocal attempts, errors, mismatches
        raw = RawConnection(parts.host, parts.port or 80, key)
        try:
            while time.perf_counter() < stop_at:
                path = rnd.choice(requests)
                attempts += 1
                started = time.perf_counter()
                try:
                    if client_kind == "raw":
                        status, body = await raw.get(path)
                    else:
                        response = await shared.get(path)
                        status, body = response.status_code, response.content
                except (OSError, httpx.HTTPError) as exc:
                    errors += 1
                    note(f"GET {path}: {type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors += 1
                    note(f"GET {path}: {status}")
                elif hashlib.sha256(body).hexdigest() != expected[path]:
                    mismatches += 1
                    note(f"GET {path}: body differs from the serial answer")
        finally:
            await raw.close()

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one_client(random.Random(seed + i)) for i in range(concurrency)))
    finally:
        await shared.aclose()
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000.0 if latencies else np.array([0.0])
    return {
        "requests": attempts,
        "answered": len(latencies),
        "seconds": round(elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "errors": errors,
        "mismatches": mismatches,
        "examples": examples,
    }


def load_worker(argv: list[str]) -> None:
    """`api_load.py --load SPEC.json`: the load generator process; prints its figures (JSON)."""
    spec = json.loads(Path(argv[0]).read_text())
    figures = asyncio.run(
        _load(spec["url"], spec["key"], spec["expected"], spec["concurrency"], spec["seconds"],
              spec["seed"], spec["client"])
    )  # fmt: skip
    print(json.dumps(figures))


def run_level(
    server: ApiServer, key: str, expected: dict[str, str], concurrency: int, seconds: float,
    cores: set[int] | None, work: Path, client: str,
) -> dict[str, Any]:  # fmt: skip
    spec = work / f"load-{server.proc.pid}-{concurrency}.json"
    load = {"url": server.url, "key": key, "expected": expected, "seed": 7, "client": client}
    spec.write_text(json.dumps({**load, "concurrency": concurrency, "seconds": seconds}))
    server_before = cpu_seconds(server.proc.pid)
    children_before = _children_cpu()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--load", str(spec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
    )  # fmt: skip
    RUNNING.append(proc)
    try:
        out, err = proc.communicate(timeout=seconds + 120)
    finally:
        RUNNING.remove(proc)
    load_cpu = _children_cpu() - children_before  # the load generator, reaped above
    server_cpu = cpu_seconds(server.proc.pid) - server_before
    if proc.returncode != 0:
        raise SystemExit(f"the load generator failed: {err.decode(errors='replace')[-2000:]}")
    figures = json.loads(out.decode().strip().splitlines()[-1])
    wall = figures["seconds"] or seconds
    figures["requests_per_s"] = round(figures["answered"] / wall, 1)
    figures["server_cores_used"] = round(server_cpu / wall, 2)
    figures["load_cores_used"] = round(load_cpu / wall, 2)
    figures["concurrency"] = concurrency
    figures["equal_serial"] = figures["mismatches"] == 0 and figures["errors"] == 0
    return figures


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children (the servers are not reaped yet)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


RUNNING: list[subprocess.Popen[bytes]] = []


# --------------------------------------------------------------------------- report


def report(figures: dict[str, Any]) -> None:
    runs = figures["runs"]
    print()
    print(f"requests: {figures['distinct_requests']} distinct ({figures['request_kinds']}); "
          f"{figures['seconds']} s per level; server: uvicorn, 1 worker, {figures['server_cores']}"
          f" core(s); load generator: its own process, {figures['load_cores']} core(s), "
          f"client {figures['client']}; load average before: {figures['loadavg']}")  # fmt: skip
    head = (f"{'cache':<6}{'conc.':>6}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'p99 ms':>9}{'errors':>8}  {'equal serial':<13}{'cores srv/load':>15}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for run in runs:
        for level in run["levels"]:
            equal = "yes" if level["equal_serial"] else f"NO ({level['mismatches']})"
            print(f"{run['cache']:<6}{level['concurrency']:>6}{level['answered']:>10,}"
                  f"{level['requests_per_s']:>9,.0f}{level['p50_ms']:>9.1f}{level['p95_ms']:>9.1f}"
                  f"{level['p99_ms']:>9.1f}{level['errors']:>8}  {equal:<13}"
                  f"{level['server_cores_used']:>7.2f}/{level['load_cores_used']:.2f}")  # fmt: skip
            for example in level["examples"]:
                print(f"      {example}")
    by = {(r["cache"], lv["concurrency"]): lv for r in runs for lv in r["levels"]}
    print()
    for level in figures["levels"]:
        off, on = by.get(("off", level)), by.get(("on", level))
        if off and on and off["requests_per_s"]:
            print(f"concurrency {level:>3}: cache on/off = "
                  f"{on['requests_per_s'] / off['requests_per_s']:.1f}x requests/s, "
                  f"p99 {off['p99_ms']:.1f} -> {on['p99_ms']:.1f} ms")  # fmt: skip
    floor = figures["floor"]
    print(f"floor (GET /health, no query, same server) at concurrency {floor['concurrency']}: "
          f"{floor['requests_per_s']:,.0f} req/s, p50 {floor['p50_ms']:.1f} ms, "
          f"p99 {floor['p99_ms']:.1f} ms; in a closed loop, latency ~ concurrency / "
          f"throughput, so p99 < {P99_TARGET_MS:.0f} ms at {TARGET_LEVEL} in flight needs "
          f"> {TARGET_LEVEL / P99_TARGET_MS * 1000:,.0f} answers/s")  # fmt: skip
    target = by.get(("on", TARGET_LEVEL))
    if target:
        met = target["p99_ms"] < P99_TARGET_MS
        print(f"target p99 < {P99_TARGET_MS:.0f} ms at concurrency {TARGET_LEVEL} (cache on): "
              f"{'met' if met else 'NOT met'} ({target['p99_ms']:.1f} ms)")  # fmt: skip
    print("answers equal serial at every level: "
          f"{'yes' if all(lv['equal_serial'] for lv in by.values()) else 'NO'}; "
          f"cache off and on gave the same serial answers: "
          f"{'yes' if figures['serial_answers_agree'] else 'NO'}")  # fmt: skip


# --------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="a built data dir (default: make one)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per level")
    parser.add_argument("--levels", default=LEVELS, help="concurrency levels, comma-separated")
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw",
        help="load generator's HTTP client: raw asyncio keep-alive connections (default; "
        "cheap per request) or httpx.AsyncClient (shows what the client itself costs)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print figures as JSON last line")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",") if v.strip()]
    # A SIGTERM (e.g. from `timeout`) unwinds like an error, so `finally` stops the servers.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))

    work = Path(tempfile.mkdtemp(prefix="pharmaflow-apibench-"))
    servers: list[ApiServer] = []
    try:
        if args.data_dir is None:
            started = time.perf_counter()
            print("making a data dir (simulate, ingest, speed layer, build) ...", flush=True)
            data_dir = make_data_dir(work)
            print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
        else:
            data_dir = args.data_dir.expanduser().resolve()
        store = str(work / "security.db")
        key = create_key(data_dir, store)
        ids = sample_ids(data_dir)
        server_cores, load_cores = core_plan()
        loadavg = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PHARMAFLOW_")}
        base_env |= {**KEYS, "PHARMAFLOW_DATA_DIR": str(data_dir),
                     "PHARMAFLOW_SECURITY_STORE": store}  # fmt: skip
        runs, serials, requests = [], [], []
        floor_figures: dict[str, Any] = {}
        for cache, cache_s in (("off", 0.0), ("on", CACHE_ON_SECONDS)):
            env = {**base_env, "PHARMAFLOW_API_CACHE_SECONDS": str(cache_s)}
            server = start_api(env, work, server_cores)
            servers.append(server)
            if not requests:
                paths = set(httpx.get(server.url + "/openapi.json").json()["paths"])
                requests = request_set(ids, paths)
            expected = serial_answers(server.url, key, requests)
            serials.append(expected)
            run = {"cache": cache, "cache_seconds": cache_s, "levels": []}
            for level in levels:
                figures = run_level(
                    server, key, expected, level, args.seconds, load_cores, work, args.client
                )
                run["levels"].append(figures)
                print(f"[cache {cache}] concurrency {level}: {figures['requests_per_s']:,.0f} "
                      f"req/s, p99 {figures['p99_ms']} ms, equal serial "
                      f"{figures['equal_serial']}", flush=True)  # fmt: skip
            runs.append(run)
            if cache == "on":
                floor = serial_answers(server.url, key, ["/health"])
                top = max(levels)
                floor_figures = run_level(
                    server, key, floor, top, args.seconds, load_cores, work, args.client
                )
            server.stop()
        kinds: dict[str, int] = {}
        for path in requests:
            parts = path.split("?")[0].split("/")
            kind = f"{parts[2]} {parts[-1]}"
            kinds[kind] = kinds.get(kind, 0) + 1
        figures = {
            "data_dir": str(data_dir),
            "seconds": args.seconds,
            "levels": levels,
            "distinct_requests": len(requests),
            "request_kinds": ", ".join(f"{k} {n}" for k, n in kinds.items()),
            "server_cores": describe(server_cores),
            "load_cores": describe(load_cores),
            "client": args.client,
            "loadavg": loadavg,
            "serial_answers_agree": serials[0] == serials[-1],
            "runs": runs,
            "floor": floor_figures,
            "p99_target_ms": P99_TARGET_MS,
        }
        report(figures)
        if args.json:
            print(json.dumps(figures))
    finally:
        for proc in RUNNING:
            proc.kill()
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
