"""The quixstreams baseline of the realtime bench: events per event type per 1-minute
event-time tumbling window.

Runs in the bench's own throwaway environment (quixstreams pins confluent-kafka < 2.13, the
project uses 2.15), so it imports nothing from pharmaflow: topics come as arguments.

The idiomatic quixstreams pipeline for that KPI: one StreamingDataFrame per domain topic,
concatenated; the event time taken from the payload by a timestamp extractor; `group_by`
the event type (quixstreams keeps window state per message key, and messages are keyed by
order/batch/shipment, so counting per type needs the repartition topic it creates); then
`tumbling_window(60 s, grace 24 h).count()` (grace = the speed layer's allowed lateness;
later records are dropped without a log line each). State lives in RocksDB in this process,
with its changelog topics (the defaults), at-least-once.

Tuned for latency, as the speed layer is: a checkpoint every 0.1 s (default 5 s), a consumer
poll timeout of 20 ms (default 1 s: with concatenated topics quixstreams waits that long
whenever one partition's buffer runs empty), fetch.wait.max.ms 10. `--layout per-topic`
(one group_by + window per topic, no concatenation, no time alignment; the counts are the
same since each event type has one topic) was tried and was no better on Tansu.

Its state is not readable from another process, so the bench measures it through its own
committed offsets on the source topics: quixstreams commits them at a checkpoint, after the
repartitioned records are flushed to Kafka and the state is flushed. The repartition hop
after that point is not included, so for quixstreams the latency figure is a lower bound.

    python bench/realtime_quix.py BOOTSTRAP GROUP STATE_DIR TOPIC[,TOPIC...]

Runs until SIGTERM/SIGINT (the bench stops it by PID); quixstreams stops cleanly on both.
"""

from __future__ import annotations

import argparse
import logging
from datetime import datetime
from typing import Any

from quixstreams import Application

WINDOW_MS = 60_000
LATENESS_MS = 86_400_000  # as the speed layer's default allowed lateness (24 h)


def event_time_ms(value: Any, _headers: Any, timestamp: int, _type: Any) -> int:
    try:
        return int(datetime.fromisoformat(value["event_time"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return timestamp  # not an event: the broker's timestamp (it is counted as _unparsed)


def event_type(value: Any) -> str:
    try:
        return str(value["event_type"])
    except (KeyError, TypeError):
        return "_unparsed"


def quiet(*_args: Any) -> bool:
    return False  # a record later than the grace period: dropped, without a log line each


def suppress(_exc: Exception, _what: Any, _logger: logging.Logger) -> bool:
    return True  # a record that is not JSON: skip it (the plain consumer counts it)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("group")
    parser.add_argument("state_dir")
    parser.add_argument("topics", help="comma-separated")
    parser.add_argument("--commit-interval", type=float, default=0.1)
    parser.add_argument("--poll-timeout", type=float, default=0.02)
    parser.add_argument("--fetch-wait-ms", type=int, default=10)
    parser.add_argument("--layout", choices=("concat", "per-topic"), default="concat")
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        consumer_poll_timeout=args.poll_timeout,
        state_dir=args.state_dir,
        consumer_extra_config={
            "partition.assignment.strategy": "range",  # Tansu: cooperative-sticky stalls
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": args.fetch_wait_ms,
        },
        on_consumer_error=suppress,
        on_processing_error=suppress,
        loglevel="WARNING",
    )
    frames = [
        app.dataframe(app.topic(name, value_deserializer="json", timestamp_extractor=event_time_ms))
        for name in args.topics.split(",")
    ]
    if args.layout == "concat":
        sdf = frames[0]
        for other in frames[1:]:
            sdf = sdf.concat(other)
        frames = [sdf]
    for i, sdf in enumerate(frames):
        grouped = sdf.group_by(event_type, name=f"event_type_{i}")
        window = grouped.tumbling_window(duration_ms=WINDOW_MS, grace_ms=LATENESS_MS, on_late=quiet)
        window.count().final()
    app.run()


if __name__ == "__main__":
    main()
