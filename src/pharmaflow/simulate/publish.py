"""Publish a simulated window to Kafka, one message per output line, in arrival order.

Each line goes to its source event's domain topic (`topic_for`) with the source's envelope `key`
as message key, so one order's, batch's or shipment's events share a partition and keep their
order. Duplicates and malformed lines are routed like the event they copy or break: a line that
is not even JSON still reaches the right topic, as bad input does in production.

`fmt="avro"` sends Confluent-framed Avro (`pharmaflow.contracts.avro_wire`) for every line that
decodes and fits its contract; a line that does not (the simulator's malformed lines) is sent as
its raw bytes, unchanged, and counted in `PublishStats.raw`.

Pacing: `rate` caps messages per second, in chunks of about 1/20 s rather than per-message
sleeps; `live` sends each line when the wall clock reaches its arrival time (simulate a window
starting today, see `live_config`), lines already due at once.

Delivery: every delivery report is checked; after the final `flush()` a single undelivered
message makes `publish` raise `PublishError`. While the broker is unreachable librdkafka keeps
retrying each message for `message_timeout_ms` (default 2 minutes), so a broker restart in the
middle of a run loses nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pharmaflow.broker.topics import (
    DEFAULT_PARTITIONS,
    DEFAULT_RETENTION_MS,
    ensure_topics,
    topic_for,
)
from pharmaflow.errors import PharmaflowError
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import SimOutput

if TYPE_CHECKING:
    from pharmaflow.contracts.avro_wire import AvroWire

FORMATS = ("json", "avro")
DEFAULT_MESSAGE_TIMEOUT_MS = 120_000
CONNECT_TIMEOUT_S = 15.0
CHUNK_LINES = 5_000  # lines produced between progress reports when not paced
PACE_SECONDS = 0.05  # a paced chunk holds this much of the rate's worth of lines
LIVE_IDLE_S = 1.0  # longest wait between clock checks in live mode

# Measured against the embedded Tansu broker (2 cores, ~390-byte events, 150k messages):
# linger 20 ms with large batches beats the defaults by 20-30%; lz4 gains a little more (fewer
# bytes for the broker to copy) and costs the producer almost nothing.
# Idempotence is OFF: Tansu grants producer ids, but it keeps their state in memory, so after a
# broker restart it answers UNKNOWN_PRODUCER_ID and librdkafka turns that into a FATAL error
# (the producer is unusable), which is exactly what `message.timeout.ms` is meant to ride out.
# Without idempotence, one request in flight keeps each partition in order across retries
# (a retry can then at worst duplicate a batch, which the consumer dedupes by event_id); it
# costs about a quarter of the throughput. On a real Kafka cluster pass
# `producer_config={"enable.idempotence": True}` (which also allows 5 in flight).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": False,
    "max.in.flight.requests.per.connection": 1,
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 200_000,
}


class PublishError(PharmaflowError):
    """Some messages were not delivered; `stats` says how many reached the broker."""

    def __init__(self, message: str, stats: PublishStats) -> None:
        super().__init__(message)
        self.stats = stats


@dataclass(frozen=True)
class PublishStats:
    """What a publish sent. Invariant: messages == delivered + failed."""

    bootstrap: str
    format: str
    messages: int
    delivered: int
    failed: int
    by_topic: dict[str, int]  # delivered messages per topic
    raw: int  # avro: lines sent as raw bytes because they are not a valid event
    topics_created: list[str]
    seconds: float
    first_error: str | None = None
    errors: dict[str, int] = field(default_factory=dict)  # failed messages per error

    @property
    def events_per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_second": round(self.events_per_second)}


def bootstrap_from_url(url: str, env: Mapping[str, str] | None = None) -> str:
    """`kafka://HOST:PORT[,HOST:PORT]` → `HOST:PORT[,HOST:PORT]`; `kafka://` alone takes the
    servers from `KAFKA_BOOTSTRAP_SERVERS`."""
    env = os.environ if env is None else env
    if not url.startswith("kafka://"):
        raise PharmaflowError(f"--to must be a kafka://HOST:PORT[,HOST:PORT] URL, got {url!r}")
    servers = url.removeprefix("kafka://").rstrip("/")
    origin = "--to"
    if not servers:
        servers = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        origin = "KAFKA_BOOTSTRAP_SERVERS"
        if not servers:
            raise PharmaflowError(
                "--to kafka:// names no broker and KAFKA_BOOTSTRAP_SERVERS is not set"
            )
    parts = [s.strip() for s in servers.split(",")]
    for part in parts:
        host, sep, port = part.rpartition(":")
        if not sep or not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
            raise PharmaflowError(f"{origin}: {part!r} is not HOST:PORT (port 1-65535)")
    return ",".join(parts)


def live_config(config: SimConfig, now: datetime | None = None) -> SimConfig:
    """`config` with its window starting today (00:00 UTC), for `publish(live=True)`."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return config.model_copy(update={"start": today})


def publish(
    output: SimOutput,
    bootstrap: str,
    *,
    rate: float | None = None,
    live: bool = False,
    fmt: str = "json",
    schema_registry: str | None = None,
    partitions: int = DEFAULT_PARTITIONS,
    retention_ms: int = DEFAULT_RETENTION_MS,
    message_timeout_ms: int = DEFAULT_MESSAGE_TIMEOUT_MS,
    producer_config: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> PublishStats:
    """Create the topics, send every output line in order, and wait for every delivery.
    `stop`: when set, no further line is sent; what was sent is still flushed and counted
    (`messages` is then the lines sent, so `pharmaflow up` can check every one landed).

    Raises `PublishError` if any message was not delivered (after librdkafka's retries),
    `PharmaflowError` for bad options or an unreachable broker."""
    check_options(rate, fmt, schema_registry, partitions, message_timeout_ms)
    wire = None
    if fmt == "avro":  # the registry client is a heavy import: only when needed
        from pharmaflow.contracts.avro_wire import AvroWire

        wire = AvroWire(schema_registry)
    began = time.perf_counter()
    try:
        created = ensure_topics(bootstrap, partitions, retention_ms, timeout=CONNECT_TIMEOUT_S)
    except KafkaException as exc:
        raise PharmaflowError(
            f"cannot reach Kafka at {bootstrap}: {_error_text(exc.args[0])}"
        ) from None

    reports = _Reports()
    producer = Producer(
        {
            **PRODUCER_DEFAULTS,
            "bootstrap.servers": bootstrap,
            "message.timeout.ms": message_timeout_ms,
            "on_delivery": reports.on_delivery,
            **(producer_config or {}),
        }
    )
    total = len(output)
    values = list(map(output.lines.__getitem__, output.rows.tolist()))
    topic_of_type = {t: topic_for(t) for t in output.table.types}
    topics = [topic_of_type[t] for t in output.event_types()]
    keys = output.keys()
    arrival = output.arrival_ms.tolist() if live else []
    chunk = CHUNK_LINES if rate is None else max(1, min(CHUNK_LINES, round(rate * PACE_SECONDS)))
    next_send = time.monotonic()
    raw = sent = 0
    try:
        while sent < total and not (stop is not None and stop.is_set()):
            end = min(total, sent + chunk)
            if live:
                due = bisect.bisect_right(arrival, time.time() * 1000, lo=sent)
                if due == sent:
                    wait = (arrival[sent] - time.time() * 1000) / 1000
                    _serve(producer, min(max(wait, 0.0), LIVE_IDLE_S))
                    continue
                end = min(end, due)
            if rate is not None:
                _serve_until(producer, next_send)
                next_send = max(next_send, time.monotonic()) + (end - sent) / rate
            batch = values[sent:end]
            if wire is not None:
                batch, unencodable = _encode_avro(wire, batch, topics[sent:end])
                raw += unencodable
            for value, topic, key in zip(batch, topics[sent:end], keys[sent:end], strict=True):
                _produce(producer, reports, topic, value, key.encode())
            producer.poll(0)
            sent = end
            if progress is not None:
                progress(sent, total)
        if producer.flush(message_timeout_ms / 1000 + 10):
            _purge(producer, reports)  # still queued after the timeout: failed, not waited for
        _resend(producer, reports, message_timeout_ms / 1000)
    except KeyboardInterrupt:
        producer.flush(5)  # what is already queued still gets its chance
        raise
    except KafkaException as exc:  # a fatal producer error (e.g. idempotence state lost)
        raise PharmaflowError(
            f"publishing to {bootstrap} failed: {_error_text(exc.args[0])}"
        ) from None
    finally:
        _purge(producer, reports)  # close() would otherwise wait out message.timeout.ms
        producer.close()  # now, not whenever the garbage collector gets to it
    stats = PublishStats(
        bootstrap=bootstrap,
        format=fmt,
        messages=sent,
        delivered=reports.delivered_total(),
        failed=reports.failed,
        by_topic=dict(sorted(reports.delivered.items())),
        raw=raw,
        topics_created=created,
        seconds=time.perf_counter() - began,
        first_error=reports.first_error,
        errors=dict(reports.errors),
    )
    if stats.failed:
        raise PublishError(
            f"{stats.failed:,} of {total:,} messages were not delivered to {bootstrap} "
            f"(first error: {stats.first_error})",
            stats,
        )
    return stats


def check_options(
    rate: float | None,
    fmt: str,
    schema_registry: str | None,
    partitions: int,
    message_timeout_ms: int = DEFAULT_MESSAGE_TIMEOUT_MS,
) -> None:
    """Refuse bad publish options with one clear line, before any work is done."""
    if rate is not None and not rate > 0:
        raise PharmaflowError(f"--rate must be a positive number of events per second, got {rate}")
    if fmt not in FORMATS:
        raise PharmaflowError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "avro" and not schema_registry:
        raise PharmaflowError(
            "--format avro needs a schema registry (--schema-registry or SCHEMA_REGISTRY_URL)"
        )
    if fmt == "avro" and not schema_registry.startswith(("http://", "https://", "mock://")):
        raise PharmaflowError(
            "schema registry URL must start with http://, https:// or mock://, "
            f"got {schema_registry!r}"
        )
    if partitions < 1:
        raise PharmaflowError(f"--partitions must be at least 1, got {partitions}")
    if message_timeout_ms < 1:
        raise PharmaflowError(f"message timeout must be positive, got {message_timeout_ms} ms")


class _Reports:
    """Delivery reports, counted per topic, failures per error."""

    def __init__(self) -> None:
        self.delivered: Counter[str] = Counter()
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.first_error: str | None = None
        # (topic, value, key) the broker refused with its catch-all error, to send again.
        self.resend: list[tuple[str, bytes, bytes]] = []

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered[msg.topic()] += 1
        elif err.code() == KafkaError.UNKNOWN:
            # librdkafka treats the broker's UNKNOWN_SERVER_ERROR as final, but a broker that
            # has just restarted answers it for partitions it does not have yet (Tansu, before
            # its topics are recreated): worth another try, until the message timeout.
            self.resend.append((msg.topic(), msg.value() or b"", msg.key() or b""))
        else:
            self.fail(1, _error_text(err))

    def fail(self, n: int, error: str) -> None:
        self.failed += n
        self.errors[error] += n
        if self.first_error is None:
            self.first_error = error

    def delivered_total(self) -> int:
        return sum(self.delivered.values())


def _produce(producer: Producer, reports: _Reports, topic: str, value: bytes, key: bytes) -> None:
    """Queue one message, waiting while librdkafka's queue is full."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)
        except KafkaException as exc:  # refused outright (e.g. larger than message.max.bytes)
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.fatal():
                raise
            reports.fail(1, _error_text(error))
            return


def _resend(producer: Producer, reports: _Reports, timeout_s: float) -> None:
    """Send again what the broker refused with UNKNOWN_SERVER_ERROR, for up to `timeout_s`
    (the message timeout); whatever is still refused then is a failure. A resent message goes
    after those already delivered, so its key's order is kept only up to the refusal."""
    deadline = time.monotonic() + timeout_s
    while reports.resend and time.monotonic() < deadline:
        again, reports.resend = reports.resend, []
        producer.poll(min(1.0, max(0.0, deadline - time.monotonic())))  # give the broker a beat
        for topic, value, key in again:
            _produce(producer, reports, topic, value, key)
        if producer.flush(max(1.0, deadline - time.monotonic())):
            _purge(producer, reports)
    if reports.resend:
        reports.fail(len(reports.resend), "UNKNOWN: Unknown broker error (still, after resending)")
        reports.resend = []


def _encode_avro(wire: AvroWire, lines: list[bytes], topics: list[str]) -> tuple[list[bytes], int]:
    """Framed Avro for each line that is a valid event; the raw line for any other."""
    from pharmaflow.contracts.avro_wire import WireError

    out: list[bytes] = []
    raw = 0
    for line, topic in zip(lines, topics, strict=True):
        try:
            out.append(wire.encode(orjson.loads(line), topic))
        except (orjson.JSONDecodeError, WireError):
            out.append(line)
            raw += 1
    return out, raw


def _purge(producer: Producer, reports: _Reports) -> None:
    """Drop whatever is still queued or in flight; each dropped message is reported failed."""
    if not len(producer):
        return
    left = len(producer)
    with contextlib.suppress(KafkaException):  # a producer in a fatal state raises again
        producer.purge()
        left = producer.flush(1)  # serves the purge reports (_PURGE_QUEUE / _PURGE_INFLIGHT)
    if left:
        reports.fail(left, f"{left} message(s) still queued at close")


def _serve(producer: Producer, seconds: float) -> None:
    """Wait `seconds`, serving delivery reports meanwhile."""
    _serve_until(producer, time.monotonic() + seconds)


def _serve_until(producer: Producer, deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        producer.poll(min(left, 0.5))


def _error_text(error: Any) -> str:
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error)


def expected_by_topic(output: SimOutput) -> dict[str, int]:
    """How many messages each topic gets from `output` (one per output line)."""
    types = np.asarray([topic_for(t) for t in output.table.types], dtype=object)
    topics = types[output.table.type_codes[output.sources]]
    return dict(sorted(Counter(topics.tolist()).items()))
