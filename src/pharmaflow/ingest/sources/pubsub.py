"""Google Cloud Pub/Sub as an ingest source: `pubsub://PROJECT/SUBSCRIPTION`.

Why synchronous `pull` and not the streaming callback API (`SubscriberClient.subscribe`):
the engine takes batches from a generator and acknowledges each one later, in order, once its
manifest is written (`RunLoop`). Unary pull fits that as it is: the source asks for up to
`max_messages` at a time, only while the engine asks for a batch, so nothing is leased that
the engine is not about to land (back-pressure for free), every batch knows its ack ids, and
the acks go out as one request per 1,000 ids, from the run loop, in batch order. The callback API
hands over one `Message` at a time on a thread pool, with its own flow control, leasing and
acking per message; turning that back into batches would mean a queue between threads, one
Python callback per message, and a second lease manager beside ours. What the callback API
gives for free — extending ack deadlines — is `_lease_loop` here: one thread, one
`modify_ack_deadline` per 1,000 in-flight ack ids every third of the deadline.

Exactly once, without anything from Pub/Sub but redelivery:
- a message is acknowledged only in `ack`, after its batch's manifest is written; a failure
  or a stop nacks what is unacknowledged (deadline 0) so Pub/Sub redelivers it at once;
- Pub/Sub has no offsets, so no bookmark can say "landed up to here". Instead, before a batch
  is handed over its message ids are written to a ledger part, `<lake>/_pubsub/<project>/
  <subscription>/<batch_id>.npy` (`_Ledger`), which counts only once the batch's manifest
  exists. A message redelivered after a crash between the manifest and the ack, or after an
  ack that failed, is found there and skipped as replayed. The part is deleted once every ack
  of its batch succeeded (it then holds nothing Pub/Sub should send again); ids whose acks
  failed stay in a `<batch_id>.unacked.npy` part, for `_LEDGER_DAYS` (Pub/Sub's longest
  message retention). So the ledger holds only what may still come back, and stays small;
- a redelivery of a message whose ack succeeded (Pub/Sub is at-least-once unless exactly-once
  delivery is on) is not in the ledger: its event id makes it a duplicate (the engine's dedupe),
  never a second bronze row (a quarantined record would be quarantined, and dead-lettered,
  again).
On a subscription with exactly-once delivery, acks report per ack id whether they took
(`AcknowledgeStatus`); an ack id that expired (INVALID_ACK_ID) means Pub/Sub redelivers the
message, which the ledger then recognises. Transient failures are retried.

Provenance: `source_uri` is the subscription path, `source_partition` 0 (Pub/Sub has no
partitions; an ordering key is a string and stays with the message: dead letters carry it),
`source_offset` the message id as a number. Message ids are decimal strings that are unique
per topic but not ordered, so the offset identifies a message (and its redeliveries) but says
nothing about order; an id that is not a decimal number below 10^18 becomes a negative 63-bit
hash of itself, so the two never meet. The first message's publish time is the batch's
`produced_at` (the speed layer's latency reference).

Records are JSON. A message a Pub/Sub schema encodes as BINARY (attribute
`googclient_schemaencoding`) cannot be read and is quarantined as `undecodable`. Quarantined
records are published, sealed, to `?dead_letter_topic=TOPIC` before their batch commits (and
so before their originals are acked). Messages the process cannot land at all (the batch
fails every time) come back forever: a subscription-level dead-letter policy (max delivery
attempts) is what takes those out of the way; `attach` warns if there is none.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import numpy as np

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.metrics import SourceMetrics
from pharmaflow.ingest.phi.identifiers import identifier_bytes
from pharmaflow.ingest.phi.vault import SEALED_REJECT
from pharmaflow.ingest.reasons import ReasonCode
from pharmaflow.ingest.sources.base import RawBatch, Source, SourceContext
from pharmaflow.lake.files import write_bytes_atomic
from pharmaflow.lake.layout import TMP_PREFIX, LakeLayout
from pharmaflow.lake.writers import batch_id, is_live, writer_of
from pharmaflow.urls import redact_url, split_url

try:  # the `pubsub` extra: without it URLs still parse, and opening a source says what to do
    import grpc
    from google.api_core import exceptions as api_exceptions
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.subscriber.exceptions import AcknowledgeError, AcknowledgeStatus
    from google.pubsub_v1.types import PullResponse
except ImportError:  # pragma: no cover - the extra is installed wherever tests run
    pubsub_v1 = None

if TYPE_CHECKING:
    from pharmaflow.ingest.landing import Landing

log = logging.getLogger(__name__)

_PARAMS = {"dead_letter_topic", "max_messages", "max_wait_ms", "ack_deadline_seconds"}
_FORM = "pubsub://PROJECT/SUBSCRIPTION"
# Project ids as Google allows them (also domain-scoped `example.com:proj`); the 6-30 length
# rule is not enforced, so the emulator's short ids work too.
_PROJECT = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*:)?[a-z](?:[a-z0-9-]*[a-z0-9])?$")
# Subscription and topic names (Pub/Sub's resource name rules).
_NAME = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
_TOPIC_PATH = re.compile(r"^projects/(?P<project>[^/]+)/topics/(?P<topic>[^/]+)$")

_ACK_IDS_PER_REQUEST = 1_000  # what the client library sends per ack/modack request
_RPC_SECONDS = 10.0  # one ack / modack / get_subscription call
_ACK_ATTEMPTS = 5  # per chunk, for transient failures (0.5 s, 1 s, 2 s, 4 s between)
_IDLE_PULL_SECONDS = 1.0  # a pull with nothing in hand waits at most this long
_EMPTY_PAUSE_SECONDS = 0.05  # after an empty answer that came back early (no hot loop)
_BACKOFF_SECONDS = (0.5, 10.0)  # after a failed pull: first, most
_WARN_EVERY_SECONDS = 10.0
_LEDGER_DAYS = 31  # Pub/Sub's longest message retention: nothing older can come back
_EXACTLY_ONCE_MIN_DEADLINE = 60  # as the client library: fewer premature expiries
_BINARY = (
    ReasonCode.UNDECODABLE,
    "binary-encoded message (Pub/Sub schema encoding BINARY): only JSON messages are read",
)
_DETAIL_BYTES = 1_024  # Pub/Sub's limit on an attribute value
_OFFSET_DIGITS = 18  # a decimal message id this long always fits an int64
_pause = time.sleep  # between ack retries (tests count the pauses)
# Besides `GoogleAPICallError`, a call can raise ValueError: google.api_core raises it when
# an error's status details do not parse (seen when an exactly-once `ErrorInfo` naming
# hundreds of ack ids passes gRPC's metadata limit). Read as a failure of unknown extent.


@dataclass(frozen=True)
class PubSubSpec:
    """What a `pubsub://PROJECT/SUBSCRIPTION?…` URL asks for."""

    project: str
    subscription: str
    dead_letter_topic: str | None = None  # a full topic path
    max_messages: int = 1_000  # per pull request
    max_wait_ms: int = 1_000  # a partial batch is handed over after this long
    ack_deadline_seconds: int = 60  # what in-flight messages' deadlines are extended to

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.subscription}"

    @property
    def url(self) -> str:
        return f"pubsub://{self.project}/{self.subscription}"

    @property
    def description(self) -> str:
        letters = f" dead_letter_topic={self.dead_letter_topic}" if self.dead_letter_topic else ""
        return f"{self.url}{letters}"


def parse_pubsub_url(url: str) -> PubSubSpec:
    """Parse a source URL. Every mistake is one line naming what is wrong; credentials are
    refused (they come from Application Default Credentials or GOOGLE_APPLICATION_CREDENTIALS,
    and URLs are printed and logged)."""
    parts = split_url(url, "pubsub://", _FORM)
    if parts.scheme != "pubsub":
        raise PharmaflowError(f"not a pubsub:// URL: {redact_url(url)}")
    if "@" in parts.netloc:
        raise PharmaflowError(
            "credentials do not belong in the pubsub:// URL (it is printed and logged): use "
            "Application Default Credentials or GOOGLE_APPLICATION_CREDENTIALS"
        )
    project = parts.netloc
    if not project:
        raise PharmaflowError(f"pubsub:// needs a project: {_FORM}")
    if not _PROJECT.match(project):
        raise PharmaflowError(
            f"bad project id {project!r} in the pubsub:// URL: lower-case letters, digits and "
            f"hyphens, starting with a letter ({_FORM})"
        )
    if parts.fragment:
        raise PharmaflowError(f"unexpected #fragment in the pubsub:// URL: expected {_FORM}")
    path = parts.path.strip("/")
    if not path:
        raise PharmaflowError(f"pubsub:// needs a subscription: {_FORM}")
    if "/" in path:
        raise PharmaflowError(
            f"pubsub:// takes one subscription name after the project: expected {_FORM}"
        )
    path = unquote(path)  # percent-encoded like the query (`+` as %2B, `%` as %25)
    _check_name(path, "subscription")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _PARAMS)
    if unknown:
        raise PharmaflowError(
            f"unknown pubsub:// parameter {unknown[0]!r} (known: {', '.join(sorted(_PARAMS))})"
        )
    one = {k: v[-1] for k, v in query.items()}
    for name, value in one.items():
        if not value:
            raise PharmaflowError(f"pubsub:// parameter {name} needs a value")
    numbers: dict[str, int] = {}
    for name, low, high in (
        ("max_messages", 1, 1_000_000),
        ("max_wait_ms", 1, 3_600_000),
        ("ack_deadline_seconds", 10, 600),  # Pub/Sub's range for a deadline
    ):
        if name in one:
            text = one[name]
            if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
                raise PharmaflowError(
                    f"pubsub:// parameter {name} must be an integer from {low} to {high}"
                )
            numbers[name] = int(text)
    topic = one.get("dead_letter_topic")
    return PubSubSpec(
        project=project,
        subscription=path,
        dead_letter_topic=_topic_path(topic, project) if topic else None,
        **numbers,
    )


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise PharmaflowError(
            f"bad {what} name {name!r} in the pubsub:// URL: 3-255 letters, digits or "
            "- _ . ~ + %, starting with a letter (not with goog)"
        )


def _topic_path(topic: str, project: str) -> str:
    """`TOPIC` (in the subscription's project) or `projects/P/topics/T`, as a full path."""
    full = _TOPIC_PATH.match(topic)
    if full:
        if not _PROJECT.match(full["project"]):
            raise PharmaflowError(
                f"bad project id {full['project']!r} in dead_letter_topic of the pubsub:// URL"
            )
        _check_name(full["topic"], "dead_letter_topic")
        return topic
    if "/" in topic:
        raise PharmaflowError(
            "pubsub:// parameter dead_letter_topic must be TOPIC or projects/PROJECT/topics/TOPIC"
        )
    _check_name(topic, "dead_letter_topic")
    return f"projects/{project}/topics/{topic}"


def message_offsets(ids: Sequence[str], fallback: Sequence[str] | None = None) -> np.ndarray:
    """Each message id as an int64 `source_offset`: the id itself when it is a decimal number
    of at most 18 digits (every id Pub/Sub assigns), else a negative 63-bit hash of it, so
    numbers and hashes never meet. An empty id (no server sends one) gets the hash of its
    `fallback` (the ack id, unique per delivery): never recognised as a redelivery, but never
    mistaken for another message either."""
    if ids and all(0 < len(i) <= _OFFSET_DIGITS for i in ids):
        joined = "".join(ids)
        if joined.isascii() and joined.isdigit():
            return np.array(ids, dtype=np.int64)
    out = np.empty(len(ids), dtype=np.int64)
    for row, text in enumerate(ids):
        if 0 < len(text) <= _OFFSET_DIGITS and text.isascii() and text.isdigit():
            out[row] = int(text)
        else:
            seed = text or f"ack:{fallback[row] if fallback else row}"
            digest = hashlib.blake2b(seed.encode("utf-8", "surrogatepass"), digest_size=8)
            out[row] = -(int.from_bytes(digest.digest(), "big") >> 1) - 1
    return out


# -- the ledger of batches handed over --------------------------------------------------------


class _Ledger:
    """Message ids of batches handed to the engine, one `.npy` part per batch, beside the lake.

    A part `<batch_id>.npy` is written before its batch is handed over and counts once the
    batch's manifest exists (before that, its messages are not in the lake). `<batch_id>.
    unacked.npy` holds ids of a committed batch whose acks failed: it counts as it is. Parts
    of batches that never committed (their writer is gone) are removed; so are parts older
    than `_LEDGER_DAYS`. Several workers of one subscription share the folder: each takes in
    the others' parts as it goes (`scan`), since Pub/Sub may redeliver one worker's message to
    another."""

    def __init__(self, lake_dir: Path, spec: PubSubSpec, writer: str) -> None:
        self.lake_dir = lake_dir
        self.layout = LakeLayout(lake_dir)
        self.root = lake_dir / "_pubsub" / spec.project / spec.subscription
        self.writer = writer
        self._landed: dict[str, np.ndarray] = {}  # part name -> ids, parts that count
        self._known: np.ndarray | None = np.empty(0, dtype=np.int64)

    @staticmethod
    def _batch_of(name: str) -> str:
        return name.removesuffix(".npy").removesuffix(".unacked")

    def part(self, batch: str, unacked: bool = False) -> Path:
        return self.root / f"{batch}{'.unacked' if unacked else ''}.npy"

    def record(self, batch: str, ids: np.ndarray, unacked: bool = False) -> None:
        buffer = io.BytesIO()
        np.save(buffer, ids.astype(np.int64, copy=False), allow_pickle=False)
        write_bytes_atomic(buffer.getvalue(), self.part(batch, unacked))
        if unacked:
            self._landed[self.part(batch, True).name] = ids
            self._known = None

    def discard(self, batch: str) -> None:
        path = self.part(batch)
        path.unlink(missing_ok=True)
        if self._landed.pop(path.name, None) is not None:
            self._known = None

    def scan(self, handed: set[str]) -> None:
        """Take in parts that now count and forget the ones that are gone; remove parts that
        never will count. `handed`: this worker's batches in flight (it knows their ids)."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            entries = []
        names = {}
        now = time.time()
        for path in entries:
            if path.suffix != ".npy" or path.name.startswith(TMP_PREFIX):
                continue
            try:
                if now - path.stat().st_mtime > _LEDGER_DAYS * 86_400:
                    path.unlink(missing_ok=True)
                    continue
            except FileNotFoundError:
                continue
            names[path.name] = path
        for gone in set(self._landed) - set(names):
            del self._landed[gone]
            self._known = None
        for name, path in names.items():
            batch = self._batch_of(name)
            if name in self._landed or batch in handed:
                continue
            if name.endswith(".unacked.npy") or self.layout.manifest(batch).is_file():
                self._take(name, path)
                continue
            owner = writer_of(batch)
            # This writer's own part from an earlier run, or a dead writer's: the batch never
            # committed (looked at again after the liveness check: it may just have).
            if (owner == self.writer or not is_live(self.lake_dir, owner)) and not (
                self.layout.manifest(batch).is_file()
            ):
                path.unlink(missing_ok=True)
            # else: a live writer's batch in flight; looked at again next time

    def _take(self, name: str, path: Path) -> None:
        try:
            ids = np.load(path, allow_pickle=False)
        except FileNotFoundError:  # acknowledged and removed meanwhile
            return
        except ValueError as exc:  # torn or foreign: say so, and let it go
            log.warning("ignoring unreadable pubsub ledger part %s: %s", path, exc)
            return
        self._landed[name] = ids.astype(np.int64, copy=False)
        self._known = None

    def known(self) -> np.ndarray:
        """Every message id the ledger says is in the lake, sorted."""
        if self._known is None:
            parts = list(self._landed.values())
            self._known = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        return self._known


# -- messages in hand -------------------------------------------------------------------------


@dataclass
class _Pending:
    """Messages pulled but not yet handed over as a batch."""

    ack_ids: list[str] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    binary: list[int] = field(default_factory=list)  # rows a schema encodes as BINARY
    since: float = 0.0
    produced: float | None = None  # publish time of the first message (epoch seconds)

    def __len__(self) -> int:
        return len(self.ack_ids)

    def add(self, received: Sequence[Any]) -> None:
        """`received`: raw protobuf `ReceivedMessage`s (read field by field: the proto-plus
        wrappers cost ~17 µs a message, the raw ones ~0.5 µs)."""
        if not self.ack_ids:
            self.since = time.monotonic()
            stamp = received[0].message.publish_time
            self.produced = stamp.seconds + stamp.nanos / 1e9 if stamp.seconds else None
        start = len(self.ack_ids)
        for row, r in enumerate(received, start):
            m = r.message
            self.ack_ids.append(r.ack_id)
            self.values.append(m.data)
            self.ids.append(m.message_id)
            self.keys.append(m.ordering_key)
            if m.attributes and m.attributes.get("googclient_schemaencoding") == "BINARY":
                self.binary.append(row)


@dataclass
class _Flight:
    """A batch handed over and not yet acknowledged."""

    ack_ids: list[str]
    offsets: np.ndarray  # per ack id: the message's offset (replayed ones too)
    hashed: dict[int, str]  # offset -> message id, for ids that are not numbers
    recorded: bool  # a ledger part was written for it


class PubSubSource(Source):
    """One subscriber of a subscription. `stop` ends the stream (SIGTERM); `idle_exit` ends it
    after that many seconds without a message. Several workers (`--workers N`, or on several
    machines) share a subscription: Pub/Sub spreads messages over them.

    `subscriber` / `publisher`: clients to use instead of `pubsub_v1.SubscriberClient()` /
    `PublisherClient()` (made in `attach`, with Application Default Credentials; the client
    honours `PUBSUB_EMULATOR_HOST`). The source closes only the clients it made. `lease`:
    extend deadlines from a background thread (off: the caller calls `lease()`, as tests do
    to see each extension)."""

    source = "pubsub"

    def __init__(
        self,
        spec: PubSubSpec,
        lake_dir: Path,
        stop: threading.Event | None = None,
        idle_exit: float | None = None,
        metrics: SourceMetrics | None = None,
        subscriber: Any | None = None,
        publisher: Any | None = None,
        lease: bool = True,
    ) -> None:
        if pubsub_v1 is None:
            raise PharmaflowError(
                "pubsub:// needs the Pub/Sub client: install pharmaflow with the pubsub extra "
                "(pip install 'pharmaflow[pubsub]')"
            )
        self.spec = spec
        self.description = spec.description
        self.lake_dir = lake_dir
        self.stop = stop or threading.Event()
        self.idle_exit = idle_exit
        self.metrics = metrics
        self.unreachable: str | None = None  # set when idle_exit ends a run with no server
        self.exactly_once = False
        # What acks came back with, other than success (by AcknowledgeStatus name).
        self.ack_failures: dict[str, int] = {}
        self._subscriber = subscriber
        self._publisher = publisher
        self._own_clients = subscriber is None, publisher is None
        self._ctx: SourceContext | None = None
        self._ledger: _Ledger | None = None
        self._letters: PubSubDeadLetterSink | None = None
        self._pending = _Pending()
        self._handed: dict[str, _Flight] = {}
        self._lock = threading.Lock()  # _pending / _handed, against the lease thread
        self._closed = threading.Event()
        self._lease_thread: threading.Thread | None = None
        self._leasing = lease
        self._lease_seconds = spec.ack_deadline_seconds
        self._lease_every = 1.0
        self._unreachable_at: float | None = None  # failing to connect since
        self._answered = False  # the server answered any call of this run
        self._last_error: str | None = None
        self._warned: dict[str, float] = {}

    # -- set-up -------------------------------------------------------------------------------

    def attach(self, ctx: SourceContext) -> None:
        self._ctx = ctx
        if self._subscriber is None:
            self._subscriber = _client(pubsub_v1.SubscriberClient)
        if self._publisher is None and self.spec.dead_letter_topic:
            self._publisher = _client(pubsub_v1.PublisherClient)
        self._look_at_subscription()
        self._ledger = _Ledger(self.lake_dir, self.spec, ctx.writer)
        self._ledger.scan(set())
        if self._leasing:
            self._lease_thread = threading.Thread(
                target=self._lease_loop, name="pubsub-lease", daemon=True
            )
            self._lease_thread.start()

    def _look_at_subscription(self) -> None:
        """Check the subscription exists and may be read, and learn what shapes the leases:
        its ack deadline and whether exactly-once delivery is on. A server that does not
        answer is not fatal here (pulls retry, and --idle-exit reports it); nor is being
        refused: reading a subscription's settings takes `pubsub.subscriptions.get`, which
        roles/pubsub.subscriber does not grant (acks are read per ack id either way)."""
        path = self.spec.subscription_path
        initial = 10
        try:
            sub = self._subscriber.get_subscription(
                request={"subscription": path}, retry=None, timeout=_RPC_SECONDS
            )
        except api_exceptions.NotFound as exc:
            raise PharmaflowError(_fatal_text(exc, path)) from None
        except api_exceptions.PermissionDenied:
            self._answered = True
            log.warning(
                "may not read the settings of %s (pubsub.subscriptions.get, e.g. "
                "roles/pubsub.viewer); assuming a 10 s ack deadline",
                path,
            )
        except (api_exceptions.GoogleAPICallError, ValueError) as exc:
            self._note_unreachable(exc)
            log.warning(
                "cannot look at %s yet (%s); assuming its ack deadline is 10 s", path, _short(exc)
            )
        else:
            self._answered = True
            initial = sub.ack_deadline_seconds or 10
            self.exactly_once = bool(sub.enable_exactly_once_delivery)
            policy = sub.dead_letter_policy
            if policy and policy.dead_letter_topic:
                log.info(
                    "subscription %s: dead-letter policy after %d delivery attempts to %s",
                    path,
                    policy.max_delivery_attempts or 5,
                    policy.dead_letter_topic,
                )
            else:
                log.warning(
                    "subscription %s has no dead-letter policy: a message that fails its batch "
                    "every time is redelivered forever (set max delivery attempts, see "
                    "docs/pubsub.md)",
                    path,
                )
        if self.exactly_once:
            self._lease_seconds = max(self._lease_seconds, _EXACTLY_ONCE_MIN_DEADLINE)
        # The first extension must come well inside the subscription's own deadline.
        self._lease_every = max(0.5, min(initial, self._lease_seconds) / 3)

    # -- the stream ---------------------------------------------------------------------------

    def batches(self, batch_size: int) -> Iterator[RawBatch]:
        assert self._subscriber is not None and self._ledger is not None, "attach() first"
        pending = self._pending
        idle_since = progress_at = time.monotonic()
        max_wait = self.spec.max_wait_ms / 1000
        backoff = 0.0
        ticked = True
        while not self.stop.is_set():
            want = max(1, min(self.spec.max_messages, batch_size - len(pending)))
            if pending:
                timeout = max(0.05, pending.since + max_wait - time.monotonic())
            else:
                timeout = min(max_wait, _IDLE_PULL_SECONDS)
            asked = time.monotonic()
            received, failed = self._pull(want, timeout)
            if received:
                with self._lock:
                    pending.add(received)
                idle_since = progress_at = time.monotonic()
                self._unreachable_at = None
                backoff = 0.0
                if self.metrics is not None:
                    self.metrics.consumed.labels("pubsub").inc(len(received))
            if self._ctx is not None:
                self._ctx.idle()  # the engine finishes batches analysed meanwhile
            now = time.monotonic()
            if pending and (len(pending) >= batch_size or now - pending.since >= max_wait):
                yield self._batch()
                pending = self._pending
                idle_since = progress_at = time.monotonic()
                ticked = False
            elif not pending and not ticked and now - idle_since >= max_wait:
                ticked = True  # the stream paused: let the engine land what it holds
                yield RawBatch(batch_id="", source="pubsub", source_uri="", records=[])
            elif not pending and self.idle_exit is not None and now - progress_at >= self.idle_exit:
                self._idle_stop()
                return
            elif failed:
                backoff = min(_BACKOFF_SECONDS[1], max(_BACKOFF_SECONDS[0], backoff * 2))
                self.stop.wait(backoff)
            elif not received and now - asked < timeout:
                self.stop.wait(_EMPTY_PAUSE_SECONDS)  # an early empty answer: no hot loop
        with self._lock:
            unhanded, self._pending = self._pending.ack_ids, _Pending()
        self._nack(unhanded)
        log.info("stop requested; %d unhanded messages handed back to Pub/Sub", len(unhanded))

    def _pull(self, want: int, timeout: float) -> tuple[Sequence[Any], bool]:
        """Up to `want` messages (raw protobufs) and whether the pull failed. A deadline with
        nothing to deliver is no failure. A pull cut short by its deadline may leave messages
        the server was already sending leased until their ack deadline lapses: Pub/Sub then
        redelivers them (latency, never loss)."""
        assert self._subscriber is not None
        path = self.spec.subscription_path
        try:
            response = self._subscriber.pull(
                request={"subscription": path, "max_messages": want}, retry=None, timeout=timeout
            )
        except api_exceptions.DeadlineExceeded:
            # Nothing to deliver in time, from a server that answers (or a black hole, if
            # nothing ever answered: `_idle_stop` tells the two apart).
            if not self._answered:
                self._last_error = "no answer within the pull deadline"
            return (), False
        except (
            api_exceptions.NotFound,
            api_exceptions.PermissionDenied,
            api_exceptions.Unauthenticated,
            api_exceptions.InvalidArgument,
        ) as exc:
            raise PharmaflowError(_fatal_text(exc, path)) from None
        except (api_exceptions.GoogleAPICallError, ValueError) as exc:
            self._note_unreachable(exc)
            self._warn("pull", "pubsub pull from %s failing (%s); retrying", path, _short(exc))
            return (), True
        self._unreachable_at = None
        self._answered = True
        raw = PullResponse.pb(response) if isinstance(response, PullResponse) else response
        return raw.received_messages, False

    def _note_unreachable(self, exc: Exception) -> None:
        self._last_error = _short(exc)
        if isinstance(exc, api_exceptions.ServiceUnavailable | api_exceptions.DeadlineExceeded):
            self._unreachable_at = self._unreachable_at or time.monotonic()

    def _idle_stop(self) -> None:
        """`idle_exit` expired: stop, and if the server could not be reached (failing to
        connect, or silent all along), say so."""
        if self._unreachable_at is None and self._answered:
            log.info("no messages for %.1fs; stopping", self.idle_exit)
            return
        self.unreachable = (
            f"cannot reach Pub/Sub for {self.spec.subscription_path}: nothing read in "
            f"{self.idle_exit:g}s (--idle-exit) (last error: {self._last_error}); check the "
            "network, the credentials (GOOGLE_APPLICATION_CREDENTIALS) or PUBSUB_EMULATOR_HOST"
        )
        log.warning("%s", self.unreachable)

    def _batch(self) -> RawBatch:
        """The pending messages as a batch: those the ledger (or a batch in flight) holds are
        skipped as replayed, as are repeats within the batch; the rest are recorded in the
        ledger before the batch is handed over."""
        assert self._ledger is not None
        with self._lock:
            pending, self._pending = self._pending, _Pending()
            handed = set(self._handed)
            in_flight = [f.offsets for f in self._handed.values()]
        offsets = message_offsets(pending.ids, pending.ack_ids)
        self._ledger.scan(handed)
        known = np.concatenate([self._ledger.known(), *in_flight])
        _unique, first = np.unique(offsets, return_index=True)
        skip = np.ones(offsets.size, dtype=bool)
        skip[first] = False  # a message delivered twice in one batch counts once
        skip |= np.isin(offsets, known)
        keep = np.flatnonzero(~skip)
        values, keys = pending.values, pending.keys
        if skip.any():
            picked = keep.tolist()
            values = [values[i] for i in picked]
            keys = [keys[i] for i in picked]
        errors: dict[int, tuple[ReasonCode, str]] = {}
        if pending.binary:
            position = np.full(offsets.size, -1, dtype=np.int64)
            position[keep] = np.arange(keep.size)
            errors = {int(position[i]): _BINARY for i in pending.binary if position[i] >= 0}
        ctx_writer = self._ctx.writer if self._ctx else "pubsub"
        name = batch_id(ctx_writer, f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}")
        kept = offsets[keep]
        if kept.size:
            self._ledger.record(name, kept)  # before the engine can commit the batch
        hashed = {int(offsets[i]): pending.ids[i] for i in np.flatnonzero(offsets < 0).tolist()}
        with self._lock:
            self._handed[name] = _Flight(pending.ack_ids, offsets, hashed, bool(kept.size))
        path = self.spec.subscription_path
        return RawBatch(
            batch_id=name,
            source="pubsub",
            source_uri=self.spec.url,
            records=values,
            offsets=kept,
            partitions=np.zeros(kept.size, dtype=np.int32),
            topics=[path] * kept.size,
            keys=[k.encode() if k else None for k in keys],
            replayed=int(skip.sum()),
            decode_errors=errors,
            # Not a bookmark (ids are unordered; the ledger is what recognises redeliveries):
            # the span of ids the batch held, for the manifest, and the run loop's sign of a
            # stream batch.
            offset_ranges=[[path, "", 0, int(offsets.min()), int(offsets.max())]],
            produced_at=pending.produced,
        )

    # -- after the engine ---------------------------------------------------------------------

    def dead_letter_sink(self) -> PubSubDeadLetterSink | None:
        """Quarantined records go to `dead_letter_topic`, if one is set (else quarantine
        only)."""
        if not self.spec.dead_letter_topic:
            return None
        assert self._publisher is not None, "attach() first"
        if self._letters is None:
            topic = self.spec.dead_letter_topic
            self._letters = PubSubDeadLetterSink(
                self._publisher,
                topic,
                self.spec.subscription_path,
                self._message_id,
                lambda: self._warn("dlq-flush", "waiting to publish dead letters to %s", topic),
            )
        return self._letters

    def _message_id(self, batch: str, offset: int) -> str:
        """The message id behind an offset of a batch in flight."""
        if offset >= 0:
            return str(offset)
        with self._lock:
            flight = self._handed.get(batch)
        return flight.hashed.get(offset, "") if flight else ""

    def ack(self, batch: RawBatch) -> None:
        """The batch is in the lake: acknowledge every message it held (replayed ones too).
        Ids whose acks failed stay in the ledger (`.unacked`), so their redelivery is
        recognised; the batch's own ledger part goes."""
        with self._lock:
            flight = self._handed.get(batch.batch_id)
        if flight is None or self._ledger is None:
            return
        started = time.perf_counter()
        failed = self._acknowledge(flight.ack_ids)
        if self.metrics is not None:
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
        if failed:
            rows = [i for i, a in enumerate(flight.ack_ids) if a in failed]
            self._ledger.record(batch.batch_id, flight.offsets[rows], unacked=True)
            statuses: dict[str, int] = {}
            for status in failed.values():
                statuses[status.name] = statuses.get(status.name, 0) + 1
                self.ack_failures[status.name] = self.ack_failures.get(status.name, 0) + 1
            self._warn(
                "ack",
                "%d of %d acks of batch %s failed (%s); the batch is in the lake, and Pub/Sub's "
                "redelivery of those messages will be counted as replayed",
                len(failed),
                len(flight.ack_ids),
                batch.batch_id,
                ", ".join(f"{k}={v}" for k, v in sorted(statuses.items())),
            )
        if flight.recorded:
            self._ledger.discard(batch.batch_id)
        with self._lock:
            self._handed.pop(batch.batch_id, None)

    def _acknowledge(self, ack_ids: list[str]) -> dict[str, AcknowledgeStatus]:
        """Acknowledge in requests of 1,000; retry what failed transiently. Returns the ack ids
        that did not take, each with its `AcknowledgeStatus`. Once one request stays failing
        after every retry (Pub/Sub cannot be reached), the rest are not tried: 100 requests
        of a large batch would each wait out the same outage, and the ledger covers them."""
        assert self._subscriber is not None
        failed: dict[str, AcknowledgeStatus] = {}
        outage = False
        for start in range(0, len(ack_ids), _ACK_IDS_PER_REQUEST):
            todo = ack_ids[start : start + _ACK_IDS_PER_REQUEST]
            if outage:
                failed |= dict.fromkeys(todo, AcknowledgeStatus.OTHER)
                continue
            for attempt in range(_ACK_ATTEMPTS):
                try:
                    self._subscriber.acknowledge(
                        request={"subscription": self.spec.subscription_path, "ack_ids": todo},
                        retry=None,
                        timeout=_RPC_SECONDS,
                    )
                except (api_exceptions.GoogleAPICallError, ValueError) as exc:
                    todo, done = ack_outcome(exc, todo)
                    failed |= done
                else:
                    todo = []
                if not todo:
                    break
                if attempt + 1 < _ACK_ATTEMPTS:
                    _pause(0.5 * 2**attempt)  # even when stopping: this batch is landed
            if todo:  # transient, for too long
                outage = True
                failed |= dict.fromkeys(todo, AcknowledgeStatus.OTHER)
        return failed

    def _nack(self, ack_ids: list[str]) -> None:
        """Hand messages back to Pub/Sub at once (ack deadline 0), best effort: if this fails,
        their deadline lapses and they come back anyway."""
        if ack_ids:
            self._modify(ack_ids, 0)

    def _modify(self, ack_ids: list[str], seconds: int) -> list[str]:
        """`modify_ack_deadline` in requests of 1,000. Returns the ack ids the server says are
        no longer valid (exactly-once delivery: their lease lapsed)."""
        assert self._subscriber is not None
        lapsed: list[str] = []
        for start in range(0, len(ack_ids), _ACK_IDS_PER_REQUEST):
            chunk = ack_ids[start : start + _ACK_IDS_PER_REQUEST]
            try:
                self._subscriber.modify_ack_deadline(
                    request={
                        "subscription": self.spec.subscription_path,
                        "ack_ids": chunk,
                        "ack_deadline_seconds": seconds,
                    },
                    retry=None,
                    timeout=_RPC_SECONDS,
                )
            except (api_exceptions.GoogleAPICallError, ValueError) as exc:
                _retry, done = ack_outcome(exc, chunk)
                lapsed += [a for a, s in done.items() if s == AcknowledgeStatus.INVALID_ACK_ID]
                if len(done) > len(lapsed) or _retry:
                    self._warn(
                        f"modack-{seconds}",
                        "pubsub modify_ack_deadline(%ds) failing (%s); Pub/Sub redelivers "
                        "what lapses",
                        seconds,
                        _short(exc),
                    )
        return lapsed

    def lease(self) -> None:
        """Extend the deadline of every message in hand or in flight (the lease thread calls
        this every third of the deadline)."""
        with self._lock:
            ids = list(self._pending.ack_ids)
            for flight in self._handed.values():
                ids += flight.ack_ids
        if not ids:
            return
        lapsed = self._modify(ids, self._lease_seconds)
        if lapsed:
            with self._lock:  # acked meanwhile is expected; still in hand is worth a line
                live = set(self._pending.ack_ids).union(*(f.ack_ids for f in self._handed.values()))
            still = [a for a in lapsed if a in live]
            if still:
                self._warn(
                    "lapsed",
                    "the lease of %d messages in hand lapsed; Pub/Sub redelivers them, and "
                    "those that land meanwhile are recognised as replayed",
                    len(still),
                )

    def _lease_loop(self) -> None:
        while not self._closed.wait(self._lease_every):
            try:
                self.lease()
            except Exception:  # the lease thread must outlive any one failure
                log.exception("pubsub lease extension failed; retrying")

    def _warn(self, kind: str, message: str, *args: object) -> None:
        """A recurring problem: logged once, then at most every `_WARN_EVERY_SECONDS`."""
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY_SECONDS) >= _WARN_EVERY_SECONDS:
            self._warned[kind] = now
            log.warning(message, *args)

    def close(self) -> None:
        """Stop leasing and hand back whatever was not acknowledged (a failed run: the lake
        and the ledger keep a redelivery from landing twice); close the clients made here."""
        self._closed.set()
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=_RPC_SECONDS + 5)
            self._lease_thread = None
        if self._subscriber is not None:
            with self._lock:
                left = list(self._pending.ack_ids)
                for flight in self._handed.values():
                    left += flight.ack_ids
                self._pending, self._handed = _Pending(), {}
            self._nack(left)
        own_subscriber, own_publisher = self._own_clients
        if own_publisher and self._publisher is not None:
            self._publisher.stop()
        if own_subscriber and self._subscriber is not None:
            self._subscriber.close()
        self._subscriber = self._publisher = None


def ack_outcome(
    exc: Exception, ack_ids: list[str]
) -> tuple[list[str], dict[str, AcknowledgeStatus]]:
    """What a failed ack (or modack) request means per ack id: those to send again, and
    those that failed with their `AcknowledgeStatus` — the client library's reading of the
    server's answer (`_process_requests` of its streaming pull): exactly-once delivery names
    ack ids in the error's `ErrorInfo` metadata, `TRANSIENT_…` ones are sent again,
    `PERMANENT_FAILURE_INVALID_ACK_ID` ones have expired; an id it does not name shares the
    request's fate (retried if the error is transient, else failed). Counting an ack as failed
    when it took costs only a ledger entry; the reverse could land a redelivery twice. An
    `AcknowledgeError` stands for the whole request."""
    if isinstance(exc, AcknowledgeError):
        return [], dict.fromkeys(ack_ids, exc.error_code)
    per_id: dict[str, str] = dict(getattr(exc, "metadata", None) or {})
    transient = isinstance(
        exc,
        api_exceptions.DeadlineExceeded
        | api_exceptions.ResourceExhausted
        | api_exceptions.Aborted
        | api_exceptions.InternalServerError
        | api_exceptions.ServiceUnavailable,
    )
    code = getattr(exc, "grpc_status_code", None)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        whole = AcknowledgeStatus.PERMISSION_DENIED
    elif code == grpc.StatusCode.FAILED_PRECONDITION:
        whole = AcknowledgeStatus.FAILED_PRECONDITION
    else:
        whole = AcknowledgeStatus.OTHER
    again: list[str] = []
    failed: dict[str, AcknowledgeStatus] = {}
    for ack_id in ack_ids:
        said = per_id.get(ack_id)
        if said is not None:
            if said.startswith("TRANSIENT_"):
                again.append(ack_id)
            elif said == "PERMANENT_FAILURE_INVALID_ACK_ID":
                failed[ack_id] = AcknowledgeStatus.INVALID_ACK_ID
            else:
                failed[ack_id] = AcknowledgeStatus.OTHER
        elif transient:
            again.append(ack_id)
        else:
            failed[ack_id] = whole
    return again, failed


class PubSubDeadLetterSink:
    """Rejected records to a Pub/Sub topic, the reason in attributes: the Kafka `<topic>.dlq`
    sink's contract (`sinks/dead_letters.py`) over a publisher.

    The data is the record sealed exactly like quarantine's `raw_encrypted` (the steps seal it;
    attribute `value_protection` says how). The message's attributes are not copied (a
    publisher may have put anything in them, patient data too); its ordering key goes along as
    `source_ordering_key` only when it is a plain identifier (else `key_withheld`). Letters are
    published before the batch commits and `flush` waits for every one, so the originals are
    acknowledged only after their letters are out; a crash in between publishes them again on
    redelivery (at least once: `source_message_id` and `batch_id` tell repeats apart)."""

    name = "dead_letters"

    def __init__(
        self,
        publisher: Any,
        topic: str,
        subscription: str,
        message_id: Callable[[str, int], str],
        waiting: Callable[[], None],
        flush_seconds: float = 5.0,
    ) -> None:
        self.publisher = publisher
        self.topic = topic
        self.subscription = subscription
        self.message_id = message_id
        self.waiting = waiting
        self.flush_seconds = flush_seconds
        self._futures: list[concurrent.futures.Future[str]] = []
        self._errors: list[str] = []

    def write(self, batch: RawBatch, landing: Landing) -> list[Path]:
        for letter in landing.dead_letters or ():
            key = identifier_bytes(letter.key)
            attributes = {
                "value_protection": SEALED_REJECT,
                "reason_code": letter.reason_code,
                "reason_field": letter.reason_field or "",
                "reason_detail": _clip(letter.reason_detail),
                "source_subscription": self.subscription,
                "source_message_id": self.message_id(batch.batch_id, letter.offset),
                "source_offset": str(letter.offset),
                "batch_id": batch.batch_id,
            }
            if key is not None:
                attributes["source_ordering_key"] = key.decode()
            elif letter.key:
                attributes["key_withheld"] = "true"
            try:
                self._futures.append(self.publisher.publish(self.topic, letter.value, **attributes))
            except (ValueError, TypeError, api_exceptions.GoogleAPICallError) as exc:
                self._errors.append(f"{type(exc).__name__}: {exc}")  # e.g. over 10 MB
        return []

    def flush(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            while True:
                try:
                    future.result(timeout=self.flush_seconds)
                    break
                except concurrent.futures.TimeoutError:
                    self.waiting()
                except Exception as exc:  # whatever publishing failed with: no commit
                    self._errors.append(_short(exc))
                    break
        if self._errors:
            errors, self._errors = self._errors, []
            raise PharmaflowError(
                f"{len(errors)} dead letter(s) not published to {self.topic}: {errors[0]}"
            )

    def close(self) -> None:
        """The publisher is the source's: it stops it on close."""


def _clip(text: str, limit: int = _DETAIL_BYTES) -> str:
    """`text` cut to `limit` UTF-8 bytes (an attribute value's limit), on a character."""
    data = text.encode()
    return text if len(data) <= limit else data[: limit - 3].decode(errors="ignore") + "..."


def _short(exc: Exception) -> str:
    """An exception as one line (client errors can span several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _fatal_text(exc: Exception, path: str) -> str:
    if isinstance(exc, api_exceptions.NotFound):
        return f"Pub/Sub subscription {path} does not exist (or its project does not)"
    if isinstance(exc, api_exceptions.PermissionDenied | api_exceptions.Unauthenticated):
        return (
            f"not allowed to read Pub/Sub subscription {path} ({_short(exc)}); the credentials "
            "(Application Default Credentials or GOOGLE_APPLICATION_CREDENTIALS) need "
            "roles/pubsub.subscriber"
        )
    return f"Pub/Sub refused to pull from {path}: {_short(exc)}"


def _client(factory: Callable[[], Any]) -> Any:
    """A client with Application Default Credentials, or one line saying how to get some."""
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return factory()
    except DefaultCredentialsError:
        raise PharmaflowError(
            "no Google credentials for pubsub://: set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key file, run `gcloud auth application-default login`, or point "
            "PUBSUB_EMULATOR_HOST at an emulator"
        ) from None
