"""The bench's outside reader: polls a system's committed offsets from ANOTHER process.

Why a process of its own: "event-to-KPI latency" means the time until a KPI is committed and
visible to someone else (an API, a dashboard, the alert evaluator), not until the consumer
thinks it is done. So this process polls what the system under test has committed, every
`--interval` seconds, and writes one line each time a (topic, partition)'s committed offset
changes: `<epoch seconds> <topic> <partition> <last offset included>`. The orchestrator
(`bench/realtime.py`) turns those lines into per-message visibility times.

Offsets are normalised to "the last offset whose effects are visible" (the realtime store's
convention); a Kafka committed offset (the NEXT offset to read) is therefore reported minus 1.

Kinds (the `--kind` argument; one small function each, so a new system plugs in here):
  sqlite      a SQLite file and a query returning (topic, partition, last_offset) rows
  pharmaflow  `pharmaflow.realtime.reader.StateReader(...).committed_offsets(group)`
  kafka       a consumer group's committed offsets on the broker (quixstreams commits there)

Stops on SIGTERM/SIGINT (the orchestrator sends it by PID) after flushing its output.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Offsets = dict[tuple[str, int], int]


def sqlite_reader(path: str, query: str) -> Callable[[], Offsets]:
    """Poll a SQLite (WAL) file; each poll is one read transaction. Until the system has
    created the file and its table, a poll sees nothing."""
    conn: sqlite3.Connection | None = None

    def read() -> Offsets:
        nonlocal conn
        if conn is None:
            if not Path(path).exists():
                return {}
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=1000")
        try:
            rows = conn.execute(query).fetchall()
        except sqlite3.OperationalError:  # table not created yet, or a transient lock
            return {}
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    return read


def pharmaflow_reader(path: str, group: str) -> Callable[[], Offsets]:
    """The speed layer's own read API, the contract other processes (API, CLI, alerts) use:
    `StateReader.committed_offsets(group)`, one read transaction per poll."""
    from pharmaflow.realtime.config import RealtimeConfig
    from pharmaflow.realtime.db import Database
    from pharmaflow.realtime.reader import StateReader

    state: dict[str, Any] = {}

    def read() -> Offsets:
        try:
            if "reader" not in state:
                if not Path(path).exists():  # not created yet: let the speed layer create it
                    return {}
                state["reader"] = StateReader(Database(path), RealtimeConfig())
            offsets = state["reader"].committed_offsets(group)
        except Exception:  # schema being created / a transient lock: poll again
            return {}
        return {(str(t), int(p)): int(o) for (t, p), o in offsets.items()}

    return read


def kafka_reader(bootstrap: str, group: str, topics: list[str]) -> Callable[[], Offsets]:
    """A consumer group's committed offsets, fetched without joining the group (an
    OffsetFetch request, as `kafka-consumer-groups --describe` does)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    metadata = consumer.list_topics(timeout=10).topics
    tps = [TopicPartition(t, p) for t in topics for p in sorted(metadata[t].partitions)]

    def read() -> Offsets:
        try:
            committed = consumer.committed(tps, timeout=1.0)
        except Exception:  # group not known yet / broker busy: poll again
            return {}
        return {(tp.topic, tp.partition): tp.offset - 1 for tp in committed if tp.offset >= 0}

    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("sqlite", "pharmaflow", "kafka"), required=True)
    parser.add_argument("--out", required=True, help="file the observations are appended to")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between polls")
    parser.add_argument("--path", help="store file (sqlite, pharmaflow)")
    parser.add_argument("--query", help="sqlite: SELECT topic, partition, last_offset ...")
    parser.add_argument("--group", help="pharmaflow, kafka: the consumer group")
    parser.add_argument("--bootstrap", help="kafka: HOST:PORT")
    parser.add_argument("--topics", help="kafka: comma-separated topics")
    args = parser.parse_args()
    if args.kind == "sqlite":
        read = sqlite_reader(args.path, args.query)
    elif args.kind == "pharmaflow":
        read = pharmaflow_reader(args.path, args.group)
    else:
        read = kafka_reader(args.bootstrap, args.group, args.topics.split(","))

    stop = False

    def on_signal(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    seen: Offsets = {}
    with open(args.out, "a", buffering=1) as out:  # line-buffered: the orchestrator tails it
        print("ready", file=sys.stderr, flush=True)
        next_poll = time.monotonic()
        while not stop:
            offsets = read()
            now = time.time()
            for tp, offset in offsets.items():
                if offset > seen.get(tp, -1):
                    seen[tp] = offset
                    out.write(f"{now:.6f} {tp[0]} {tp[1]} {offset}\n")
            next_poll += args.interval
            delay = next_poll - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_poll = time.monotonic()


if __name__ == "__main__":
    main()
