"""consumer_lag: how far each of the platform's consumer groups is behind, from the broker.

Lag of a group = the sum over the partitions of its topics of (high watermark - committed
offset); a partition of such a topic that the group never committed counts whole (high - low
watermark: a new group starts from the earliest record, so all of it is unread). It is what the
group has not yet *committed*, which for ingest means not yet landed in the lake (offsets are
committed after the manifest), so a healthy ingest lags by up to one batch while a batch forms.

Everything goes through one AdminClient, all requests in flight together, under one deadline
(`check_kafka_timeout_s`): a broker that does not answer in time makes the rule unknown, never
a breach, and never a hang of /metrics. librdkafka's own log lines go to the run log, not the
terminal.

The groups: `check_groups`, or by default every group the platform's commands use by default
(`PLATFORM_GROUPS`) that has committed offsets on the broker. Tansu (the embedded broker)
reports a high watermark that trails the true end by the size of the partition's last record
batch; lag is never below 0 (a committed offset past that watermark counts 0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pharmaflow.config import Settings
from pharmaflow.orchestrate.check import CheckResult
from pharmaflow.orchestrate.checks.judge import judged, unknown

RULE, UNIT = "consumer_lag", "records"

# The default groups of `pharmaflow ingest` (ingest.sources.kafka.DEFAULT_GROUP), `pharmaflow
# realtime` (realtime.workers.REALTIME_GROUP) and `pharmaflow up` (orchestrate.local.GROUPS);
# written out, as importing those modules costs most of a second (a unit test keeps them equal).
PLATFORM_GROUPS = (
    "pharmaflow-ingest",
    "pharmaflow-realtime",
    "pharmaflow-up-ingest",
    "pharmaflow-up-realtime",
)

_CLIENT_LOG = logging.getLogger("pharmaflow.check.kafka")


class Unreachable(Exception):
    """The broker did not answer within the timeout (the message says which request)."""


def consumer_lag(settings: Settings, now: datetime) -> list[CheckResult]:
    """One result per group (see the module docstring)."""
    limit = float(settings.check_consumer_max_lag)
    explicit = settings.check_groups
    groups = list(explicit) if explicit else list(PLATFORM_GROUPS)
    bootstrap = (settings.kafka_bootstrap_servers or "").strip()
    if not bootstrap:
        return [
            unknown(RULE, g, "no Kafka configured (KAFKA_BOOTSTRAP_SERVERS)", limit, UNIT)
            for g in (groups if explicit else ["kafka"])
        ]
    timeout = settings.check_kafka_timeout_s
    try:
        lags = group_lags(_admin(settings, bootstrap, timeout), groups, timeout)
    except Unreachable as exc:
        return [
            unknown(RULE, g, str(exc), limit, UNIT) for g in (groups if explicit else ["kafka"])
        ]
    results = []
    for group in groups:
        lag = lags.get(group)
        if lag is None:
            if explicit:
                results.append(
                    unknown(RULE, group, "no committed offsets on the broker", limit, UNIT)
                )
            continue
        total, partitions, topics = lag
        results.append(
            judged(
                RULE, group, total, limit, UNIT,
                f"{total:,} records not yet committed over {partitions} partition(s) of "
                f"{topics} topic(s)",
            )
        )  # fmt: skip
    if not results:
        names = ", ".join(groups)
        detail = f"none of the groups {names} has committed offsets"
        return [unknown(RULE, "kafka", detail, limit, UNIT)]
    return results


def _admin(settings: Settings, bootstrap: str, timeout: float) -> Any:
    from confluent_kafka.admin import AdminClient

    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
        "logger": _CLIENT_LOG,
    }
    if settings.kafka_username or settings.kafka_security_protocol != "PLAINTEXT":
        # the one place the platform turns settings into librdkafka security (imported only
        # when needed: that module loads the whole ingest path)
        from pharmaflow.ingest.sources.kafka import kafka_security

        config |= kafka_security(settings)
    return AdminClient(config)


def group_lags(
    admin: Any, groups: Iterable[str], timeout: float
) -> dict[str, tuple[int, int, int]]:
    """group -> (lag, partitions, topics) for every group with committed offsets."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    deadline = time.monotonic() + timeout
    ms = max(1, int(timeout * 1000))
    asked = {
        g: admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=ms)
        for g in groups
    }
    committed: dict[str, dict[tuple[str, int], int]] = {}
    for group, futures in asked.items():
        for future in futures.values():
            answer = _result(future, deadline, f"the committed offsets of {group}")
            offsets = {
                (tp.topic, tp.partition): tp.offset
                for tp in answer.topic_partitions
                if tp.error is None and tp.offset >= 0
            }
            if offsets:
                committed[group] = offsets
    if not committed:
        return {}
    topics = {topic for offsets in committed.values() for topic, _ in offsets}
    metadata = _metadata(admin, deadline)
    partitions = [
        (topic, p) for topic in sorted(topics) if topic in metadata for p in metadata[topic]
    ]
    latest = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}
    earliest = {TopicPartition(t, p): OffsetSpec.earliest() for t, p in partitions}
    high = _offsets(admin.list_offsets(latest, request_timeout=ms), deadline)
    low = _offsets(admin.list_offsets(earliest, request_timeout=ms), deadline)
    out = {}
    for group, offsets in committed.items():
        its_topics = {topic for topic, _ in offsets}
        mine = [(t, p) for t, p in partitions if t in its_topics]
        total = sum(max(0, high.get(key, 0) - offsets.get(key, low.get(key, 0))) for key in mine)
        out[group] = (total, len(mine), len({t for t, _ in mine}))
    return out


def _remaining(deadline: float) -> float:
    return max(0.01, deadline - time.monotonic())


def _result(future: Any, deadline: float, what: str) -> Any:
    from concurrent.futures import TimeoutError as FutureTimeout

    from confluent_kafka import KafkaException

    try:
        return future.result(timeout=_remaining(deadline))
    except (FutureTimeout, KafkaException) as exc:
        reason = "no answer" if isinstance(exc, FutureTimeout) else _kafka_reason(exc)
        raise Unreachable(f"Kafka did not give {what} in time ({reason})") from None


def _kafka_reason(exc: Exception) -> str:
    error = exc.args[0] if exc.args else None
    text = error.str() if hasattr(error, "str") else str(error or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _metadata(admin: Any, deadline: float) -> dict[str, list[int]]:
    from confluent_kafka import KafkaException

    try:
        meta = admin.list_topics(timeout=_remaining(deadline))
    except KafkaException as exc:
        raise Unreachable(f"Kafka did not list its topics in time ({_kafka_reason(exc)})") from None
    return {name: sorted(t.partitions) for name, t in meta.topics.items() if t.error is None}


def _offsets(futures: dict[Any, Any], deadline: float) -> dict[tuple[str, int], int]:
    out = {}
    for tp, future in futures.items():
        answer = _result(future, deadline, "the partitions' watermarks")
        if answer.offset >= 0:
            out[(tp.topic, tp.partition)] = int(answer.offset)
    return out
