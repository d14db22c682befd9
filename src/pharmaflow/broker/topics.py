"""The topics pharmaflow reads and writes: one per domain, and a dead-letter twin of each.

One topic per domain (not per event type) keeps an order's, batch's or shipment's events in one
partition, in order, because the message key is the envelope `key`. Partitions and retention are
explicit so a cluster's defaults never decide them silently.
"""

from __future__ import annotations

import contextlib
import logging

from confluent_kafka.admin import AdminClient, NewTopic

from pharmaflow.errors import PharmaflowError

_CLIENT_LOG = logging.getLogger("pharmaflow.kafka.client")

DOMAIN_TOPICS = {
    "pharmacy": "pharma.pharmacy",
    "manufacturing": "pharma.manufacturing",
    "logistics": "pharma.logistics",
    "feedback": "pharma.feedback",
    "sales": "pharma.sales",
}
DEFAULT_PARTITIONS = 6
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000


def topic_for(event_type: str) -> str:
    """The domain topic of an event type (`pharmacy.order.placed` → `pharma.pharmacy`)."""
    domain = event_type.split(".", 1)[0]
    return DOMAIN_TOPICS.get(domain, f"pharma.{domain}")


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def ensure_topics(
    bootstrap: str,
    partitions: int = DEFAULT_PARTITIONS,
    retention_ms: int = DEFAULT_RETENTION_MS,
    timeout: float = 15.0,
) -> list[str]:
    """Create every domain topic and its dead-letter topic if missing; return the created ones."""
    # librdkafka's own lines (e.g. "Purging 1 unserved events" as the client closes) go to the
    # run log, not to stderr, where a command's output is one line per message.
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _CLIENT_LOG})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [t for d in DOMAIN_TOPICS.values() for t in (d, dead_letter_topic(d))]
    new = [
        NewTopic(
            t,
            num_partitions=partitions,
            replication_factor=1,
            config={"retention.ms": str(retention_ms)},
        )
        for t in wanted
        if t not in existing
    ]
    if not new:
        return []
    failures = []
    for topic, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except Exception as exc:  # confluent-kafka raises KafkaException with a KafkaError
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                failures.append(f"{topic}: {exc}")
    if failures:
        raise PharmaflowError("could not create topics: " + "; ".join(failures))
    return [t.topic for t in new]


def ensure_dead_letter_topics(admin: AdminClient, topics: list[str], timeout: float = 15.0) -> None:
    """Create `<topic>.dlq` for consumed topics outside the domain set (the domain ones come
    with `ensure_topics`), as many partitions as the topic. Failures are left to produce time."""
    metadata = admin.list_topics(timeout=timeout).topics
    new = [
        NewTopic(
            dead_letter_topic(t),
            num_partitions=max(1, len(metadata[t].partitions)) if t in metadata else 1,
            replication_factor=1,
            config={"retention.ms": str(DEFAULT_RETENTION_MS)},
        )
        for t in topics
        if dead_letter_topic(t) not in metadata
    ]
    if new:
        for future in admin.create_topics(new, operation_timeout=timeout).values():
            with contextlib.suppress(Exception):  # another worker may have won the race
                future.result(timeout)


def start_group_at_end(
    bootstrap: str, group: str, topics: list[str], timeout: float = 15.0
) -> None:
    """Commit `group`'s offsets at the current end of every partition of `topics`, so a new
    consumer group reads only what is published from now on (not a shared cluster's past)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        metadata = consumer.list_topics(timeout=timeout).topics
        ends = []
        for topic in topics:
            for partition in metadata[topic].partitions if topic in metadata else ():
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )
                ends.append(TopicPartition(topic, partition, high))
        if ends:
            consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()
