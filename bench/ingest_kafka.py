"""Kafka-ingest benchmark: the pharmaflow worker against a plain per-record consumer.

One run: simulate ≥ N events (all fault knobs on), publish them once to an embedded broker
(Tansu, loopback), then consume the same topics with two fresh consumer groups:

(a) baseline — confluent-kafka `consume()`, then per record: `orjson.loads`, a dict walk
    validating every field against the same contracts, a `set` for dedupe; valid rows and
    quarantined ones collected and written to Parquet through Arrow every batch, then the
    offsets committed. No PHI protection, no dead-letter topic: it does less than the worker.
(b) pharmaflow — `pharmaflow ingest --source kafka://… --workers W`, the real CLI.

Both run as separate processes, timed from the first record read to the last commit (group
join and the idle wait at the end are excluded alike); peak RSS is the largest process's.
The figures that matter are the ratio and the counts, not absolute times.

    python bench/ingest_kafka.py [--events 200000] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer

from bench_keys import KEYS
from pharmaflow.broker.embedded import EmbeddedBroker
from pharmaflow.broker.topics import DOMAIN_TOPICS
from pharmaflow.contracts.registry import default_registry
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.publish import publish
from pharmaflow.simulate.simulator import SimOutput, generate
from plain_checks import check_event

BATCH = 100_000
IDLE_EXIT = 3.0


def make_output(events: int) -> SimOutput:
    scale = events / 348_585 * 1.02
    while True:
        output = generate(SimConfig(seed=7, days=7, scale=scale))
        if len(output) >= events:
            return output
        scale *= events / len(output) * 1.05


# --------------------------------------------------------------------------- baseline


def baseline(bootstrap: str, out: Path, expected: int) -> dict[str, Any]:
    """The plain consumer (run in its own process: `--baseline`)."""
    registry = default_registry()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-baseline",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe(list(DOMAIN_TOPICS.values()))
    seen: set[str] = set()
    counts = {"input": 0, "landed": 0, "duplicates": 0, "quarantined": 0}
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    first = None
    part = 0
    out.mkdir(parents=True, exist_ok=True)

    def flush() -> None:
        nonlocal rows, bad, part
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), out / f"landed-{part}.parquet")
        if bad:
            pq.write_table(pa.Table.from_pylist(bad), out / f"quarantine-{part}.parquet")
        if rows or bad:
            consumer.commit(asynchronous=False)
        rows, bad, part = [], [], part + 1

    idle_since = time.monotonic()
    while counts["input"] < expected or time.monotonic() - idle_since < IDLE_EXIT:
        messages = consumer.consume(10_000, 0.2)
        if not messages:
            if counts["input"] >= expected:
                break
            continue
        idle_since = time.monotonic()
        if first is None:
            first = time.perf_counter()
        for message in messages:
            if message.error() is not None:
                continue
            counts["input"] += 1
            value = message.value()
            try:
                doc = orjson.loads(value)
                reason = None if isinstance(doc, dict) else "not_an_object"
            except orjson.JSONDecodeError:
                doc, reason = None, "malformed_json"
            if reason is None:
                reason = check_event(doc, registry)
            if reason is not None:
                counts["quarantined"] += 1
                bad.append(
                    {
                        "topic": message.topic(),
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "reason": reason,
                        "raw": value,
                    }
                )
                continue
            if doc["event_id"] in seen:
                counts["duplicates"] += 1
                continue
            seen.add(doc["event_id"])
            record = {spec.name: doc.get(spec.name) for spec in registry.envelope}
            record["payload"] = orjson.dumps(doc["payload"]).decode()
            record["partition"] = message.partition()
            record["offset"] = message.offset()
            rows.append(record)
            counts["landed"] += 1
        if len(rows) + len(bad) >= BATCH:
            flush()
    flush()
    seconds = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    return {"counts": counts, "seconds": seconds}


# --------------------------------------------------------------------------- pharmaflow


def measured(command: list[str], what: str) -> tuple[dict[str, Any], float]:
    """Run a command; its last stdout line as JSON, and the peak RSS (MB) of it and all its
    descendants (Linux `wait4` reports the largest resident set among them)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, **KEYS})
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{what} failed:\n{err.read().decode()[-3000:]}")
        lines = [line for line in out.read().decode().splitlines() if line.strip()]
    return json.loads(lines[-1]), usage.ru_maxrss / 1024


def pharmaflow(bootstrap: str, data_dir: Path, workers: int) -> tuple[dict[str, Any], float]:
    url = f"kafka://{bootstrap}?group=bench-pharmaflow&session_timeout_ms=6000"
    command = [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "ingest"]
    command += ["--source", url, "--workers", str(workers), "--idle-exit", str(IDLE_EXIT)]
    result, rss = measured(
        [*command, "--json"],
        "pharmaflow ingest",
    )
    counts = {k: result[k] for k in ("input", "landed", "duplicates", "quarantined")}
    return {"counts": counts, "seconds": result["busy_seconds"]}, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2, help="pharmaflow worker processes")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print figures as JSON last line")
    parser.add_argument(
        "--baseline", nargs=3, metavar=("BOOTSTRAP", "OUT", "N"), help=argparse.SUPPRESS
    )
    parser.add_argument("--publish", metavar="BOOTSTRAP", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        bootstrap, out, n = args.baseline
        print(json.dumps(baseline(bootstrap, Path(out), int(n))))
        return
    if args.publish:
        output = make_output(args.events)
        stats = publish(output, args.publish, partitions=args.partitions)
        print(json.dumps({"events": len(output), "seconds": stats.seconds}))
        return

    work = Path(tempfile.mkdtemp(prefix="pharmaflow-kbench-"))
    broker = EmbeddedBroker(work / "broker")
    try:
        info = broker.start()
        # Simulating 2M events takes GBs; in a process of its own, so that memory is neither
        # held by this one nor counted in the children's peak RSS (Linux keeps it across exec).
        published, _ = measured(
            [sys.executable, __file__, "--publish", info.bootstrap, "--events", str(args.events),
             "--partitions", str(args.partitions)],
            "publish",
        )  # fmt: skip
        events = published["events"]
        out = str(work / "baseline")
        base, base_rss = measured(
            [sys.executable, __file__, "--baseline", info.bootstrap, out, str(events)], "baseline"
        )
        flow, flow_rss = pharmaflow(info.bootstrap, work / "pharmaflow", args.workers)
        figures = {
            "events": events,
            "workers": args.workers,
            "publish_events_per_s": round(events / published["seconds"]),
            "baseline_events_per_s": round(events / base["seconds"]),
            "pharmaflow_events_per_s": round(events / flow["seconds"]),
            "ratio": round(base["seconds"] / flow["seconds"], 2),
            "baseline_peak_rss_mb": round(base_rss),
            "pharmaflow_peak_rss_mb": round(flow_rss),
            "baseline_counts": base["counts"],
            "pharmaflow_counts": flow["counts"],
        }
        print(
            f"{events:,} events, {args.partitions} partitions, pharmaflow workers: {args.workers}"
        )
        print(f"{'':<12}{'seconds':>10}{'events/s':>12}")
        print(f"{'baseline':<12}{base['seconds']:>10.2f}{figures['baseline_events_per_s']:>12,}")
        print(
            f"{'pharmaflow':<12}{flow['seconds']:>10.2f}{figures['pharmaflow_events_per_s']:>12,}"
        )
        print(f"ratio pharmaflow/baseline: {figures['ratio']}x")
        print(f"counts baseline   {base['counts']}\ncounts pharmaflow {flow['counts']}")
        print(f"peak RSS (largest process) MB: baseline {figures['baseline_peak_rss_mb']}, "
              f"pharmaflow {figures['pharmaflow_peak_rss_mb']}")  # fmt: skip
        if args.json:
            print(json.dumps(figures))
    finally:
        if broker.info() is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
