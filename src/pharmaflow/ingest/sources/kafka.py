"""Kafka as an ingest source: a consumer-group member that hands the engine batches of messages.

Exactly once without Kafka transactions (Tansu accepts them but does not honour them):
- offsets are committed to the broker only in `ack`, after the batch's manifest is written;
- every manifest records the offsets it holds per (topic, topic id, partition), so a record at
  or below the landed offset of its partition is known to be in the lake and is skipped as
  replayed, whether we crashed between manifest and offset commit, or a rebalance handed the
  partition to a worker that starts from an older committed offset;
- before losing partitions (a rebalance) or stopping, the engine drains: every batch handed
  over is landed and committed; records read but not yet handed over are dropped unacked, and
  the partition's next owner reads them again.
A topic deleted and created again restarts at offset 0 under a new topic id, so bookmarks are
kept per topic id and a would-be skip first re-checks the topic's id.

Records are JSON; a record framed as Confluent Avro (magic byte 0, schema id) is decoded with
the schema registry's writer schema into the same JSON form, so the contract registry judges
both alike. A record that cannot be decoded goes to quarantine and, sealed, to `<topic>.dlq`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import numpy as np
import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from pharmaflow.broker.group_repair import repair_group
from pharmaflow.broker.topics import DOMAIN_TOPICS, ensure_dead_letter_topics
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.metrics import SourceMetrics
from pharmaflow.ingest.reasons import ReasonCode
from pharmaflow.ingest.sinks.dead_letters import DeadLetterSink
from pharmaflow.ingest.sources.base import RawBatch, Source, SourceContext
from pharmaflow.lake.writers import batch_id
from pharmaflow.urls import RedactingFilter, redact, redact_url, split_server, split_url

if TYPE_CHECKING:
    from pharmaflow.config import Settings

log = logging.getLogger(__name__)

DEFAULT_GROUP = "pharmaflow-ingest"
_PARAMS = {
    "topics",
    "group",
    "schema_registry",
    "session_timeout_ms",
    "max_wait_ms",
    "fetch_wait_ms",
}
_POLL_SECONDS = 0.2
# consume() waits for this many messages or the poll timeout: measured on Tansu with 30
# partitions, 10k per call reads ~300k msgs/s where 100k per call reads ~160k (it idles out).
_CONSUME_CHUNK = 10_000
_WARN_EVERY_SECONDS = 10.0
# A worker with no partitions this many session timeouts (at least _MIN_REJOIN_SECONDS) says
# so and re-joins (see `KafkaSource._rejoin`): on Tansu, after workers were killed and stopped
# during a join, the next member got nothing for minutes.
_REJOIN_SESSIONS = 3
_MIN_REJOIN_SECONDS = 5.0
_PROBE_SECONDS = 3.0  # how long the reachability check at --idle-exit waits for metadata
# librdkafka error codes meaning "no broker answers": said as "cannot reach Kafka at …"
_UNREACHABLE = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError._TIMED_OUT,
}
_CLIENT_LOG = logging.getLogger("pharmaflow.kafka.client")


@dataclass(frozen=True)
class KafkaSpec:
    """What a `kafka://HOST:PORT[,HOST:PORT]?topics=a,b&group=g` URL asks for."""

    bootstrap: str
    topics: tuple[str, ...]
    group: str = DEFAULT_GROUP
    schema_registry: str | None = None
    session_timeout_ms: int = 10_000
    max_wait_ms: int = 1_000  # a partial batch is handed over after this long
    # How long the broker may hold a fetch for more data (librdkafka's fetch.wait.max.ms). Some
    # brokers (Tansu) hold every fetch this long, so it bounds the latency a record can wait
    # on the wire: the speed layer asks for little.
    fetch_wait_ms: int = 500
    # Wait for the broker to confirm each offset commit (ingest: its lag metrics read them).
    # Either way the committed bookmarks (the lake's, or the speed layer's store) are what
    # keeps a restart exact; the speed layer does not wait (a round trip per batch of latency).
    sync_commit: bool = True

    @property
    def description(self) -> str:
        return f"kafka://{self.bootstrap} topics={','.join(self.topics)} group={self.group}"


def parse_kafka_url(
    url: str, default_bootstrap: str | None = None, defaults: Mapping[str, Any] | None = None
) -> KafkaSpec:
    """Parse a source URL; a URL without a host uses `default_bootstrap`
    (`KAFKA_BOOTSTRAP_SERVERS`). `defaults`: `KafkaSpec` fields for what the URL does not say
    (the speed layer's group and latency settings). Every mistake is one line naming what is
    wrong, and never echoes credentials: a URL holding any is refused (they come from
    settings)."""
    parts = split_url(url, "kafka://", "kafka://HOST:PORT")
    if parts.scheme != "kafka":
        raise PharmaflowError(f"not a kafka:// URL: {redact_url(url)}")
    what = "the kafka:// URL" if parts.netloc else "KAFKA_BOOTSTRAP_SERVERS"
    bootstrap = parts.netloc or default_bootstrap
    if not bootstrap:
        raise PharmaflowError(
            "kafka:// needs HOST:PORT (kafka://127.0.0.1:9092) or KAFKA_BOOTSTRAP_SERVERS"
        )
    if "@" in bootstrap:
        raise PharmaflowError(
            f"credentials do not belong in {what} (it is printed and logged): set "
            "PHARMAFLOW_KAFKA_USERNAME and PHARMAFLOW_KAFKA_PASSWORD instead"
        )
    for server in bootstrap.split(","):
        split_server(server, what)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _PARAMS)
    if unknown:
        raise PharmaflowError(
            f"unknown kafka:// parameter {unknown[0]!r} (known: {', '.join(sorted(_PARAMS))})"
        )
    one = {k: v[-1] for k, v in query.items()}
    topics = tuple(t for t in one.get("topics", "").split(",") if t) or tuple(
        DOMAIN_TOPICS.values()
    )
    numbers = {}
    for name in ("session_timeout_ms", "max_wait_ms", "fetch_wait_ms"):
        if name in one:
            if not one[name].isdigit() or int(one[name]) <= 0:
                raise PharmaflowError(f"kafka:// parameter {name} must be a positive integer")
            numbers[name] = int(one[name])
    given = {"group": one.get("group") or None, **numbers}
    chosen = {**(defaults or {}), **{k: v for k, v in given.items() if v is not None}}
    return KafkaSpec(
        bootstrap=bootstrap,
        topics=topics,
        schema_registry=one.get("schema_registry") or None,
        **chosen,
    )


def kafka_security(settings: Settings | None) -> dict[str, str]:
    """librdkafka security settings from `PHARMAFLOW_KAFKA_*` (credentials never come from the
    URL: URLs are printed). A user name turns PLAINTEXT into SASL_PLAINTEXT and SSL into
    SASL_SSL, so setting the user and password is enough for the usual SASL/PLAIN broker."""
    if settings is None:
        return {}
    user = settings.kafka_username or None
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else None
    protocol = settings.kafka_security_protocol
    if password and not user:
        raise PharmaflowError(
            "PHARMAFLOW_KAFKA_PASSWORD is set but PHARMAFLOW_KAFKA_USERNAME is not: set both"
        )
    config: dict[str, str] = {}
    if user:
        protocol = {"PLAINTEXT": "SASL_PLAINTEXT", "SSL": "SASL_SSL"}.get(protocol, protocol)
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": user,
            "sasl.password": password or "",
        }
    elif protocol.startswith("SASL"):
        raise PharmaflowError(
            f"PHARMAFLOW_KAFKA_SECURITY_PROTOCOL={protocol} needs PHARMAFLOW_KAFKA_USERNAME "
            "and PHARMAFLOW_KAFKA_PASSWORD"
        )
    if protocol != "PLAINTEXT":
        config["security.protocol"] = protocol
    return config


class _ClientLines(RedactingFilter):
    """librdkafka's own log lines: redacted, and kept in the run log at INFO at most. What
    matters reaches `error_cb` too and is warned about there once per `_WARN_EVERY_SECONDS`
    in one line (a refused connection is otherwise three lines a second on stderr)."""

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        if record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class _Warner:
    """Logs a recurring problem once, then at most every `_WARN_EVERY_SECONDS`; every argument
    is redacted first (client error texts are not ours, and must never show a password)."""

    def __init__(self, secrets: list[str | None] | None = None) -> None:
        self._last: dict[str, float] = {}
        self.secrets = secrets or []

    def __call__(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -_WARN_EVERY_SECONDS) >= _WARN_EVERY_SECONDS:
            self._last[kind] = now
            log.warning(message, *(redact(str(a), self.secrets) for a in args))


@dataclass
class _Pending:
    """Messages read but not yet handed over as a batch."""

    values: list[bytes] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    since: float = 0.0
    produced: float | None = None  # the broker timestamp of the first message (epoch s)

    def __len__(self) -> int:
        return len(self.offsets)

    def add(self, messages: list[Message]) -> None:
        if not self.offsets:
            self.since = time.monotonic()
            kind, millis = messages[0].timestamp()
            self.produced = millis / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else None
        self.values.extend([m.value() or b"" for m in messages])
        self.keys.extend([m.key() for m in messages])
        self.topics.extend([m.topic() for m in messages])
        self.partitions.extend([m.partition() for m in messages])
        self.offsets.extend([m.offset() for m in messages])

    def drop(self, lost: set[tuple[str, int]]) -> int:
        """Forget messages of partitions this consumer no longer owns."""
        pairs = zip(self.topics, self.partitions, strict=True)
        keep = [i for i, tp in enumerate(pairs) if tp not in lost]
        dropped = len(self) - len(keep)
        if dropped:
            for name in ("values", "keys", "topics", "partitions", "offsets"):
                column = getattr(self, name)
                setattr(self, name, [column[i] for i in keep])
        return dropped


class KafkaSource(Source):
    """One consumer-group member. `stop` ends the stream (SIGTERM); `idle_exit` ends it after
    that many seconds without a record (bounded runs: demo, tests, bench), counted from the
    start or the last record read, whether or not partitions are assigned or the broker
    answers. Two allowances keep a short `idle_exit` from quitting before the first fetch:
    until the group first answers, the count does not expire before `_REJOIN_SESSIONS`
    session timeouts (what a join after killed members may take) unless the broker cannot
    be reached at all; and an assignment of partitions this run never owned restarts
    it, once per partition, so the count stays bounded however often the group rebalances.

    It never hangs silently: a worker with no partitions for `_REJOIN_SESSIONS` session
    timeouts logs a warning, repairs a group left without its leader and, after the group
    dropped it, subscribes afresh (`_rejoin`); a broker that cannot be reached is
    warned about in one line, and if it still cannot be reached when `idle_exit` expires,
    `unreachable` says so (the worker then exits non-zero, see `run_stream_worker`)."""

    source = "kafka"

    def __init__(
        self,
        spec: KafkaSpec,
        stop: threading.Event | None = None,
        idle_exit: float | None = None,
        metrics: SourceMetrics | None = None,
        security: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.description = spec.description
        self.stop = stop or threading.Event()
        self.idle_exit = idle_exit
        self.metrics = metrics
        self.unreachable: str | None = None  # set when idle_exit ends a run with no broker
        self._security = dict(security or {})
        self._secrets = [self._security.get("sasl.password")]
        self._redactor = _ClientLines(self._secrets)
        self._warn = _Warner(self._secrets)
        self._ctx: SourceContext | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._wire: Any = None
        self._assigned: set[tuple[str, int]] = set()
        self._marks: dict[tuple[str, str, int], int] = {}  # landed, per the lake
        self._handed: dict[tuple[str, str, int], int] = {}  # handed to the engine by us
        self._topic_ids: dict[str, str] = {}
        self._pending = _Pending()
        self._progress_at = time.monotonic()  # start, last record, first-time partitions
        self._owned_ever: set[tuple[str, int]] = set()
        self._unassigned_since: float | None = None  # no partitions since (None: some)
        self._unreachable_at: float | None = None  # last "no broker answers" error
        self._closing = False
        self._revocations = 0
        self._suspect = False  # the broker went away: its topics may have been recreated
        self._letters: DeadLetterSink | None = None
        self._was_lost = False  # the group dropped us since the last re-join
        self._joined = False  # the group has answered a join at least once
        self._last_error = ""  # the client's last error, redacted
        self._repair: threading.Thread | None = None  # a running `repair_group`

    # -- set-up -------------------------------------------------------------------------------

    def _client_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.spec.bootstrap,
            "logger": _CLIENT_LOG,
            "error_cb": self._on_client_error,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 10_000,
            **self._security,
        }

    def attach(self, ctx: SourceContext) -> None:
        self._ctx = ctx
        if self._redactor not in _CLIENT_LOG.filters:  # librdkafka's own log lines
            _CLIENT_LOG.addFilter(self._redactor)
        self._admin = AdminClient(
            {k: v for k, v in self._client_config().items() if k != "error_cb"}
        )
        self._consumer = Consumer(
            {
                **self._client_config(),
                "group.id": self.spec.group,
                "client.id": ctx.writer,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                # cooperative-sticky leaves partitions unassigned on Tansu (see STACK.md)
                "partition.assignment.strategy": "range",
                "session.timeout.ms": self.spec.session_timeout_ms,
                "fetch.wait.max.ms": self.spec.fetch_wait_ms,
                "enable.partition.eof": False,
            }
        )
        self._producer = Producer(
            {**self._client_config(), "linger.ms": 20, "message.timeout.ms": 0}
        )
        if self.spec.schema_registry:
            from pharmaflow.contracts.avro_wire import AvroWire

            self._wire = AvroWire(self.spec.schema_registry)

    def _on_client_error(self, error: KafkaError) -> None:
        self._suspect = True
        text = self._last_error = redact(error.str(), self._secrets)
        if error.fatal():
            log.error("kafka client fatal error: %s", text)
            return
        if error.code() in _UNREACHABLE:
            self._unreachable_at = time.monotonic()
            self._warn(
                "unreachable",
                "cannot reach Kafka at %s (broker unavailable: %s); retrying with backoff",
                self.spec.bootstrap,
                text,
            )
            return
        self._warn(
            f"client-{error.code()}",
            "kafka %s failing (%s); retrying with backoff",
            self.spec.bootstrap,
            text,
        )

    # -- rebalances ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._ctx is not None
        given = {(p.topic, p.partition) for p in partitions}
        self._assigned |= given
        self._unreachable_at = None  # the group answered
        if given - self._owned_ever:  # records may wait there: count idle time afresh
            self._owned_ever |= given
            self._progress_at = time.monotonic()
        # The group formed, even if it gave us nothing (more workers than partitions):
        # nothing to repair, and waiting is right.
        self._unassigned_since = None
        self._joined = True
        # another worker may have landed these partitions up to a point
        self._ctx.refresh(sorted(given))
        self._marks = self._ctx.landed_offsets()
        self._topic_ids = self._describe_topics()
        try:
            ensure_dead_letter_topics(self._admin, sorted({p.topic for p in partitions}))
        except KafkaException as exc:
            self._warn("dlq-topics", "cannot create dead-letter topics yet: %s", exc)
        log.info(
            "assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
        )

    def _forget(self, partitions: list[TopicPartition]) -> tuple[set[tuple[str, int]], int]:
        """Stop owning `partitions`: their unhanded records are dropped (the next owner reads
        them again). Returns them and how many records were dropped."""
        lost = {(p.topic, p.partition) for p in partitions}
        self._assigned -= lost
        self._revocations += 1
        return lost, self._pending.drop(lost)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self._closing and self._ctx is not None:
            self._ctx.drain()  # land and commit what was handed over, while we still own it
        lost, dropped = self._forget(partitions)
        if self._ctx is not None:
            self._ctx.release(sorted(lost))
        if not self._assigned and self._unassigned_since is None:
            self._unassigned_since = time.monotonic()
        log.info(
            "revoked %s (%d unhanded records left for the next owner)",
            ", ".join(f"{t}[{p}]" for t, p in sorted(lost)) or "nothing",
            dropped,
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group dropped us (session timeout, e.g. a broker outage). Offsets of lost
        partitions can no longer be committed and waiting on the group here would deadlock;
        batches already handed over still land, and the bookmarks in their manifests (and
        `_handed`, if the partitions come back to us) keep their records from landing twice."""
        lost, dropped = self._forget(partitions)
        if not self._assigned and self._unassigned_since is None:
            self._unassigned_since = time.monotonic()
        self._was_lost = True
        log.warning(
            "lost %d partition(s) (the group dropped this worker); %d unhanded records left",
            len(lost),
            dropped,
        )

    def _describe_topics(self) -> dict[str, str]:
        """Topic ids of the subscribed topics ('' where the broker gives none)."""
        assert self._admin is not None
        ids = dict.fromkeys(self.spec.topics, "")
        try:
            futures = self._admin.describe_topics(TopicCollection(list(self.spec.topics)))
            for topic, future in futures.items():
                try:
                    ids[topic] = str(future.result(timeout=10).topic_id or "")
                except KafkaException as exc:
                    self._warn(f"describe-{topic}", "cannot describe topic %s: %s", topic, exc)
        except (KafkaException, ValueError) as exc:
            self._warn("describe", "cannot describe topics: %s", exc)
        return ids

    # -- the stream ---------------------------------------------------------------------------

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        assert self._consumer is not None, "attach() first"
        consumer = self._consumer
        self._subscribe()
        pending = self._pending
        idle_since = self._progress_at = self._unassigned_since = time.monotonic()
        # A first join can take a few session timeouts (members killed earlier must time out
        # first): while a reachable broker forms the group, idle_exit waits as long as the
        # no-partitions warning does. An unreachable broker gets no such allowance.
        join_by = idle_since + self._rejoin_after
        max_wait = self.spec.max_wait_ms / 1000
        poll = min(_POLL_SECONDS, max_wait / 4)  # consume() never holds a batch past max_wait
        ticked = True
        while not self.stop.is_set():
            want = max(1, batch_size - len(pending))
            revocations = self._revocations
            messages = consumer.consume(num_messages=min(want, _CONSUME_CHUNK), timeout=poll)
            good = [m for m in messages if m.error() is None]
            if len(good) != len(messages):
                self._log_errors([m for m in messages if m.error() is not None])
            if revocations != self._revocations:  # a rebalance ran inside consume()
                good = [m for m in good if (m.topic(), m.partition()) in self._assigned]
            if good and self._suspect:
                good = self._after_outage(good)
            if good:
                pending.add(good)
                idle_since = self._progress_at = time.monotonic()
                self._unreachable_at = None
                if self.metrics is not None:
                    self.metrics.consumed.labels("kafka").inc(len(good))
            if self._ctx is not None:
                self._ctx.idle()  # the engine finishes batches analysed meanwhile
            now = time.monotonic()
            self._watch_assignment(now)
            if pending and (len(pending) >= batch_size or now - pending.since >= max_wait):
                yield self._batch(pending)
                self._pending = pending = _Pending()
                idle_since = self._progress_at = time.monotonic()
                ticked = False
            elif not pending and not ticked and now - idle_since >= max_wait:
                ticked = True  # the stream paused: let the engine land what it holds
                yield RawBatch(batch_id="", source="kafka", source_uri="", records=[])
            elif (
                not pending
                and self.idle_exit is not None
                and now - self._progress_at >= self.idle_exit
                and (self._joined or now >= join_by or self._unreachable_at is not None)
            ):
                self._idle_stop()
                return
        log.info("stop requested; %d unhanded records left unacknowledged", len(pending))

    @property
    def _rejoin_after(self) -> float:
        return max(_MIN_REJOIN_SECONDS, _REJOIN_SESSIONS * self.spec.session_timeout_ms / 1000)

    def _watch_assignment(self, now: float) -> None:
        """No partitions for a few session timeouts: say so and re-join (`_rejoin`)."""
        since = self._unassigned_since
        rejoin_after = self._rejoin_after
        if since is None or now - since < rejoin_after:
            return
        self._unassigned_since = now
        if self._unreachable_at is not None and now - self._unreachable_at < rejoin_after:
            return  # "cannot reach Kafka" is said already; a new join would not help
        log.warning(
            "no partitions assigned for %.0fs in group %s (%d session timeouts); "
            "checking the group and re-joining",
            now - since,
            self.spec.group,
            _REJOIN_SESSIONS,
        )
        self._rejoin()

    def _rejoin(self) -> None:
        """Repair the group on the broker's side, and after a loss subscribe afresh.

        Seen on Tansu 0.6 (the embedded broker) after workers were killed and others stopped
        during a join: a member that leaves while the group is forming stays its leader, so
        every later member waits for a leader that is gone (for minutes, until the broker
        happens to reload the group). `repair_group` makes that leader expire; its requests
        are harmless on other brokers (see there). A fresh subscription is needed after the
        group dropped us (librdkafka against a restarted broker never rejoins by itself), and
        only then: unsubscribing sends a LeaveGroup, which is what orphans a forming group."""
        assert self._consumer is not None
        repairing = self._repair is not None and self._repair.is_alive()
        if not self._security and not repairing:  # a raw connection speaks PLAINTEXT only
            self._repair = threading.Thread(
                target=repair_group,
                args=(self.spec.bootstrap, self.spec.group, self.spec.topics),
                kwargs={"session_timeout_ms": self.spec.session_timeout_ms},
                name="kafka-group-repair",
                daemon=True,
            )
            self._repair.start()
        if self._was_lost:
            self._was_lost = False
            self._consumer.unsubscribe()
            self._subscribe()

    def _idle_stop(self) -> None:
        """`idle_exit` expired: stop, and if no broker answers, say so in `unreachable`."""
        assert self._consumer is not None
        if self._assigned and self._unreachable_at is None:
            log.info("no records for %.1fs; stopping", self.idle_exit)
            return
        try:
            self._consumer.list_topics(timeout=_PROBE_SECONDS)
        except KafkaException:
            last = f" (last error: {self._last_error})" if self._last_error else ""
            self.unreachable = (
                f"cannot reach Kafka at {self.spec.bootstrap}: nothing read in "
                f"{self.idle_exit:g}s (--idle-exit){last}; check the address, "
                "PHARMAFLOW_KAFKA_* settings and that the broker runs"
            )
            log.warning("%s", self.unreachable)
            return
        if self._assigned:
            log.info("no records for %.1fs; stopping", self.idle_exit)
        else:
            log.warning(
                "no records and no partitions for %.1fs in group %s; stopping (--idle-exit)",
                self.idle_exit,
                self.spec.group,
            )

    def _after_outage(self, messages: list[Message]) -> list[Message]:
        """The broker is back after an outage. A topic deleted and created again (a broker
        that lost its storage) restarts at offset 0, but this consumer would go on fetching
        from its old position and silently skip the new records below it: read such a topic
        again from its beginning. Returns the messages still valid."""
        self._suspect = False
        fresh = self._describe_topics()
        renewed = {t for t, new in fresh.items() if new and self._topic_ids.get(t) not in ("", new)}
        self._topic_ids = fresh
        if not renewed:
            return messages
        assert self._consumer is not None
        log.warning("topic(s) %s were recreated; reading them from the beginning", sorted(renewed))
        self._pending.drop({(t, p) for t, p in self._assigned if t in renewed})
        for topic, partition in sorted(self._assigned):
            if topic in renewed:
                self._consumer.seek(TopicPartition(topic, partition, OFFSET_BEGINNING))
        return [m for m in messages if m.topic() not in renewed]

    def _subscribe(self) -> None:
        assert self._consumer is not None
        self._consumer.subscribe(
            list(self.spec.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _log_errors(self, messages: list[Message]) -> None:
        for message in messages:
            error = message.error()
            if error.fatal():
                raise PharmaflowError(f"kafka consumer failed: {error.str()}")
            self._warn(f"consume-{error.code()}", "kafka consume: %s", error.str())

    def _batch(self, pending: _Pending) -> RawBatch:
        offsets = np.array(pending.offsets, dtype=np.int64)
        partitions = np.array(pending.partitions, dtype=np.int32)
        skip = self._replayed(pending.topics, partitions, offsets)
        if skip.any() and self._ctx is not None:
            # Skipping is only right if the topic is the incarnation the bookmark is for.
            self._topic_ids = self._describe_topics()
            self._marks = self._ctx.landed_offsets()
            skip = self._replayed(pending.topics, partitions, offsets)
        ranges = self._ranges(pending.topics, partitions, offsets)
        for topic, topic_id, partition, _lo, hi in ranges:
            key = (topic, topic_id, partition)
            self._handed[key] = max(hi, self._handed.get(key, -1))
        keep = np.flatnonzero(~skip)
        values, keys, topics = pending.values, pending.keys, pending.topics
        if skip.any():
            picked = keep.tolist()
            values = [values[i] for i in picked]
            keys = [keys[i] for i in picked]
            topics = [topics[i] for i in picked]
        values, errors = self._decode(values, topics)
        return RawBatch(
            batch_id=batch_id(
                self._ctx.writer if self._ctx else "kafka",
                f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}",
            ),
            source="kafka",
            source_uri=f"kafka://{self.spec.bootstrap}",
            records=values,
            offsets=offsets[keep],
            partitions=partitions[keep],
            topics=topics,
            keys=keys,
            replayed=int(skip.sum()),
            decode_errors=errors,
            offset_ranges=ranges,
            produced_at=pending.produced,
        )

    def _replayed(
        self, topics: list[str], partitions: np.ndarray, offsets: np.ndarray
    ) -> np.ndarray:
        """Records at or below what the lake holds, or what this worker already handed over
        (a partition that came back after the group dropped us is read again from the last
        committed offset)."""
        if not self._marks and not self._handed:
            return np.zeros(len(offsets), dtype=bool)
        ids = self._topic_ids
        marks, handed = self._marks, self._handed
        keys = [(t, ids.get(t, ""), p) for t, p in zip(topics, partitions.tolist(), strict=True)]
        bound = np.array([max(marks.get(k, -1), handed.get(k, -1)) for k in keys], np.int64)
        return offsets <= bound

    def _ranges(
        self, topics: list[str], partitions: np.ndarray, offsets: np.ndarray
    ) -> list[list[Any]]:
        spans: dict[tuple[str, int], list[int]] = {}
        for t, p, o in zip(topics, partitions.tolist(), offsets.tolist(), strict=True):
            span = spans.get((t, p))
            if span is None:
                spans[(t, p)] = [o, o]
            else:
                span[0] = min(span[0], o)
                span[1] = max(span[1], o)
        return [
            [t, self._topic_ids.get(t, ""), p, lo, hi] for (t, p), (lo, hi) in sorted(spans.items())
        ]

    def _decode(
        self, values: list[bytes], topics: list[str]
    ) -> tuple[list[bytes], dict[int, tuple[ReasonCode, str]]]:
        """Avro-framed records become their JSON form; what cannot be decoded is marked."""
        framed = [i for i, v in enumerate(values) if v[:1] == b"\x00"]
        if not framed:
            return values, {}
        errors: dict[int, tuple[ReasonCode, str]] = {}
        if self._wire is None:
            for i in framed:
                errors[i] = (
                    ReasonCode.UNDECODABLE,
                    "Avro-framed record but no schema_registry configured",
                )
            return values, errors
        from pharmaflow.contracts.avro_wire import UnknownSchemaId, WireError

        values = list(values)
        for i in framed:
            try:
                values[i] = orjson.dumps(self._wire.decode(values[i], topics[i]))
            except UnknownSchemaId as exc:
                errors[i] = (ReasonCode.UNKNOWN_SCHEMA_ID, str(exc))
            except WireError as exc:
                errors[i] = (ReasonCode.MALFORMED_AVRO, str(exc))
        return values, errors

    # -- after the engine ---------------------------------------------------------------------

    def dead_letter_sink(self) -> DeadLetterSink:
        """Rejected records go to `<topic>.dlq` through this source's producer."""
        assert self._producer is not None, "attach() first"
        if self._letters is None:
            bootstrap = self.spec.bootstrap
            self._letters = DeadLetterSink(
                self._producer,
                lambda: self._warn("dlq-flush", "waiting to deliver dead letters to %s", bootstrap),
            )
        return self._letters

    def ack(self, batch: RawBatch) -> None:
        """The batch is in the lake: move the group's committed offsets past it."""
        consumer = self._consumer
        if consumer is None or not batch.offset_ranges:
            return
        owned = [
            TopicPartition(t, p, hi + 1)
            for t, _tid, p, _lo, hi in batch.offset_ranges
            if (t, p) in self._assigned
        ]
        if not owned:
            return
        started = time.perf_counter()
        try:
            consumer.commit(offsets=owned, asynchronous=not self.spec.sync_commit)
        except KafkaException as exc:  # the lake's bookmarks keep this safe; say so, go on
            self._warn("commit", "offset commit failed (%s); the lake's bookmarks still hold", exc)
            return
        if self.metrics is not None:
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
            for tp in owned:
                _low, high = consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                position = self._position(tp)
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, max(high, position) - tp.offset)
                )

    def _position(self, tp: TopicPartition) -> int:
        assert self._consumer is not None
        try:
            return int(self._consumer.position([TopicPartition(tp.topic, tp.partition)])[0].offset)
        except KafkaException:
            return tp.offset

    def close(self) -> None:
        """Leave the group (its partitions go to the others at once) without committing.
        A group repair under way is finished first, so the next run finds the group whole."""
        self._closing = True
        if self._repair is not None:
            self._repair.join(timeout=self.spec.session_timeout_ms / 1000 + 15)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
        self._admin = None
        _CLIENT_LOG.removeFilter(self._redactor)
