"""The plain per-record speed layer the realtime bench compares against.

What a careful engineer writes first for "events per event type per 1-minute event-time
window, exactly once": confluent-kafka `consume()` batches, `orjson.loads` and a dict per
record, `datetime.fromisoformat` for the event time, a Python dict of window deltas, then ONE
SQLite transaction (WAL) per poll batch holding the additive window upserts AND the
per-partition offsets, so a crash neither loses nor doubles a batch. On (re)assignment it
seeks to the stored offsets, not the group's Kafka commits (which it never makes).

It does less than the speed layer: no validation against contracts, no dedupe, no PHI
protection, no keyed state, one KPI. Records that are not JSON events are counted per topic
as `_unparsed` and their offsets still committed.

    python bench/realtime_plain.py BOOTSTRAP GROUP STORE.db TOPIC[,TOPIC...]

Runs until SIGTERM/SIGINT (the bench stops it by PID).
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

WINDOW_S = 60
BATCH = 10_000  # most records one consume() returns
WAIT_S = 0.02  # longest consume() waits for a batch to fill: bounds the latency it adds

SCHEMA = """
CREATE TABLE IF NOT EXISTS window_counts (
    event_type TEXT NOT NULL, window_start INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (event_type, window_start));
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, last_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""
UPSERT_COUNT = (
    "INSERT INTO window_counts (event_type, window_start, n) VALUES (?, ?, ?) "
    "ON CONFLICT (event_type, window_start) DO UPDATE SET n = window_counts.n + excluded.n"
)
UPSERT_OFFSET = (
    "INSERT INTO offsets (topic, partition, last_offset) VALUES (?, ?, ?) "
    "ON CONFLICT (topic, partition) DO UPDATE SET last_offset = excluded.last_offset"
)
READ_OFFSETS = "SELECT topic, partition, last_offset FROM offsets"  # the bench reader's query


def open_store(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def run(bootstrap: str, group: str, store: str, topics: list[str]) -> None:
    conn = open_store(store)
    stored = {(t, p): o for t, p, o in conn.execute(READ_OFFSETS).fetchall()}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 10,
        }
    )

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:  # resume after the last offset committed with the aggregates
            last = stored.get((tp.topic, tp.partition))
            tp.offset = OFFSET_BEGINNING if last is None else last + 1
        c.assign(partitions)

    stop = False

    def on_signal(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    consumer.subscribe(topics, on_assign=on_assign)
    try:
        while not stop:
            messages = consumer.consume(BATCH, WAIT_S)
            if not messages:
                continue
            deltas: dict[tuple[str, int], int] = defaultdict(int)
            last: dict[tuple[str, int], int] = {}
            for message in messages:
                if message.error() is not None:
                    continue
                tp = (message.topic(), message.partition())
                last[tp] = message.offset()
                try:
                    doc = orjson.loads(message.value())
                    event_type = doc["event_type"]
                    at = datetime.fromisoformat(doc["event_time"]).timestamp()
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    deltas[(f"_unparsed:{tp[0]}", 0)] += 1
                    continue
                deltas[(event_type, int(at // WINDOW_S) * WINDOW_S)] += 1
            if not last:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(UPSERT_COUNT, [(t, w, n) for (t, w), n in deltas.items()])
                conn.executemany(UPSERT_OFFSET, [(t, p, o) for (t, p), o in last.items()])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            stored.update(last)
    finally:
        consumer.close()
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("group")
    parser.add_argument("store")
    parser.add_argument("topics", help="comma-separated")
    args = parser.parse_args()
    run(args.bootstrap, args.group, args.store, args.topics.split(","))


if __name__ == "__main__":
    main()
