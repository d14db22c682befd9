"""Pub/Sub's side of the wire, in memory, for tests of `pubsub://` (no emulator runs here).

`FakeSubscription` answers the four calls the source makes on a `SubscriberClient` (same
names, same `request=` dicts) with the client's own types (`PullResponse`, `ReceivedMessage`,
`Subscription`) and errors (`google.api_core.exceptions`, exactly-once failures in their
`ErrorInfo`), and keeps what a server keeps: which messages are leased under which ack id,
which are acknowledged, how often each was delivered. A lease lapses only when a test says so
(`expire`), so redelivery happens exactly where a test wants it. Every call is recorded in
`calls`, in order. `served_over_grpc` puts one behind a real gRPC server, for the real
client to talk to over the wire. `FakePublisher` stands for a `PublisherClient`'s `publish`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.api_core import exceptions
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.pubsub_v1 import types
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import ErrorInfo
from grpc_status import rpc_status

PROJECT = "pharma-test"
SUBSCRIPTION = "orders-ingest"
SUBSCRIPTION_PATH = f"projects/{PROJECT}/subscriptions/{SUBSCRIPTION}"
TOPIC_PATH = f"projects/{PROJECT}/topics/orders"
DLQ = "orders-dlq"
DLQ_PATH = f"projects/{PROJECT}/topics/{DLQ}"


def url(**params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"max_wait_ms": "50", **params}.items())
    return f"pubsub://{PROJECT}/{SUBSCRIPTION}?{query}"


def exactly_once_failure(codes: dict[str, str]) -> exceptions.GoogleAPICallError:
    """What an exactly-once subscription answers when some ack ids fail: INVALID_ARGUMENT with
    an `ErrorInfo` naming each (as the client library's streaming pull reads it)."""
    return exceptions.InvalidArgument(
        "Some acknowledgement ids in the request were invalid.",
        error_info=ErrorInfo(
            reason="EXACTLY_ONCE_ACKID_FAILURE", domain="pubsub.googleapis.com", metadata=codes
        ),
    )


class FakeSubscription:
    def __init__(
        self,
        exactly_once: bool = False,
        ack_deadline_seconds: int = 10,
        dead_letter_topic: str | None = None,
        seed: int = 7,
    ) -> None:
        self.exactly_once = exactly_once
        self.ack_deadline_seconds = ack_deadline_seconds
        self.dead_letter_topic = dead_letter_topic
        self.messages: dict[str, types.PubsubMessage] = {}
        self.order: list[str] = []
        self.acked: set[str] = set()
        self.lease: dict[str, str] = {}  # message id -> its current ack id
        self.owner: dict[str, str] = {}  # ack id -> message id (every ack id ever given)
        self.deliveries: Counter[str] = Counter()
        self.calls: list[tuple[str, Any]] = []
        self.on_ack: Callable[[list[str]], None] | None = None  # before an ack is applied
        self.ack_errors: list[Exception] = []  # raised, one per acknowledge call, first
        self.pull_errors: list[Exception] = []  # raised, one per pull call, first
        self._random = random.Random(seed)
        self._next_id = 10**15 + self._random.randrange(10**6)
        self._acks = itertools.count(1)

    # -- the publishing side ------------------------------------------------------------------

    def publish(
        self, data: bytes, ordering_key: str = "", message_id: str | None = None, **attrs: str
    ) -> str:
        """Add a message; ids grow by random gaps, as Pub/Sub's (unique, not consecutive)."""
        if message_id is None:
            self._next_id += self._random.randrange(1, 5_000)
            message_id = str(self._next_id)
        stamp = Timestamp(seconds=1_796_000_000 + len(self.order), nanos=500_000_000)
        self.messages[message_id] = types.PubsubMessage(
            data=data,
            attributes=attrs,
            message_id=message_id,
            publish_time=stamp,
            ordering_key=ordering_key,
        )
        self.order.append(message_id)
        return message_id

    def expire(self) -> None:
        """Every lease lapses (the deadline passed): all unacknowledged messages are due."""
        self.lease.clear()

    @property
    def unacked(self) -> list[str]:
        return [m for m in self.order if m not in self.acked]

    # -- SubscriberClient ---------------------------------------------------------------------

    def get_subscription(self, request: dict, retry: Any = None, timeout: Any = None):
        self.calls.append(("get_subscription", request["subscription"]))
        policy = (
            types.DeadLetterPolicy(
                dead_letter_topic=self.dead_letter_topic, max_delivery_attempts=5
            )
            if self.dead_letter_topic
            else None
        )
        return types.Subscription(
            name=request["subscription"],
            topic=TOPIC_PATH,
            ack_deadline_seconds=self.ack_deadline_seconds,
            enable_exactly_once_delivery=self.exactly_once,
            dead_letter_policy=policy,
        )

    def pull(self, request: dict, retry: Any = None, timeout: Any = None) -> types.PullResponse:
        assert request["subscription"] == SUBSCRIPTION_PATH
        self.calls.append(("pull", request["max_messages"]))
        if self.pull_errors:
            raise self.pull_errors.pop(0)
        due = [m for m in self.order if m not in self.acked and m not in self.lease]
        received = []
        for message_id in due[: request["max_messages"]]:
            ack_id = f"ack-{next(self._acks)}-{message_id}"
            self.lease[message_id] = ack_id
            self.owner[ack_id] = message_id
            self.deliveries[message_id] += 1
            received.append(
                types.ReceivedMessage(
                    ack_id=ack_id,
                    message=self.messages[message_id],
                    delivery_attempt=self.deliveries[message_id] if self.dead_letter_topic else 0,
                )
            )
        return types.PullResponse(received_messages=received)

    def acknowledge(self, request: dict, retry: Any = None, timeout: Any = None) -> None:
        ack_ids = list(request["ack_ids"])
        assert len(ack_ids) <= 1_000, "the client sends at most 1,000 ack ids a request"
        self.calls.append(("acknowledge", ack_ids))
        if self.on_ack is not None:
            self.on_ack(ack_ids)
        if self.ack_errors:
            raise self.ack_errors.pop(0)
        invalid = {}
        for ack_id in ack_ids:
            message_id = self.owner.get(ack_id)
            if message_id is not None and self.lease.get(message_id) == ack_id:
                self.acked.add(message_id)
                del self.lease[message_id]
            else:  # an expired or unknown ack id: the message is (or will be) redelivered
                invalid[ack_id] = "PERMANENT_FAILURE_INVALID_ACK_ID"
        if invalid and self.exactly_once:
            raise exactly_once_failure(invalid)

    def modify_ack_deadline(self, request: dict, retry: Any = None, timeout: Any = None) -> None:
        ack_ids = list(request["ack_ids"])
        assert len(ack_ids) <= 1_000
        seconds = request["ack_deadline_seconds"]
        self.calls.append(("modify_ack_deadline", (ack_ids, seconds)))
        invalid = {}
        for ack_id in ack_ids:
            message_id = self.owner.get(ack_id)
            if message_id is None or self.lease.get(message_id) != ack_id:
                invalid[ack_id] = "PERMANENT_FAILURE_INVALID_ACK_ID"
            elif seconds == 0:
                del self.lease[message_id]  # a nack: due again at once
        if invalid and self.exactly_once:
            raise exactly_once_failure(invalid)

    def close(self) -> None:
        self.calls.append(("close", None))

    # -- reading the record -------------------------------------------------------------------

    def acked_ids(self) -> list[str]:
        """Message ids of every ack id sent, in order (valid or not)."""
        return [self.owner[a] for kind, ids in self.calls if kind == "acknowledge" for a in ids]

    def nacked(self) -> list[str]:
        return [
            self.owner[a]
            for kind, arg in self.calls
            if kind == "modify_ack_deadline" and arg[1] == 0
            for a in arg[0]
        ]


class FakePublisher:
    """`PublisherClient.publish`: records each message; `fail` makes the next ones fail."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail: Exception | None = None
        self.stopped = False

    def publish(self, topic: str, data: bytes, **attrs: str) -> concurrent.futures.Future[str]:
        assert isinstance(data, bytes) and all(isinstance(v, str) for v in attrs.values())
        assert all(len(v.encode()) <= 1_024 for v in attrs.values()), "attribute over 1 KiB"
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        if self.fail is not None:
            future.set_exception(self.fail)
        else:
            self.published.append((topic, data, attrs))
            future.set_result(str(len(self.published)))
        return future

    def stop(self) -> None:
        self.stopped = True


@contextlib.contextmanager
def served_over_grpc(subscription: FakeSubscription) -> Iterator[str]:
    """`subscription` behind a real gRPC server speaking `google.pubsub.v1.Subscriber` (the
    four methods the source calls), so the real `SubscriberClient` talks to it over the wire
    as to an emulator (`PUBSUB_EMULATOR_HOST`). Errors go back as gRPC statuses with their
    `ErrorInfo` in the status details, as Pub/Sub sends exactly-once ack failures. Yields
    `host:port`."""

    def call(method: Callable[..., Any], fields: Callable[[Any], dict]) -> Callable[..., Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                answer = method(fields(request))
            except exceptions.GoogleAPICallError as exc:
                details = []
                if exc.metadata:
                    packed = any_pb2.Any()
                    packed.Pack(
                        ErrorInfo(reason=exc.reason, domain=exc.domain, metadata=exc.metadata)
                    )
                    details.append(packed)
                code = exc.grpc_status_code or grpc.StatusCode.UNKNOWN
                status = status_pb2.Status(code=code.value[0], message=exc.message, details=details)
                context.abort_with_status(rpc_status.to_status(status))
            return empty_pb2.Empty() if answer is None else type(answer).pb(answer)

        return handle

    def unary(method: Callable[..., Any], request: type, fields: Callable[[Any], dict]):
        return grpc.unary_unary_rpc_method_handler(
            call(method, fields),
            request_deserializer=request.pb().FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )

    s = subscription
    handler = grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Subscriber",
        {
            "GetSubscription": unary(
                s.get_subscription,
                types.GetSubscriptionRequest,
                lambda r: {"subscription": r.subscription},
            ),
            "Pull": unary(
                s.pull,
                types.PullRequest,
                lambda r: {"subscription": r.subscription, "max_messages": r.max_messages},
            ),
            "Acknowledge": unary(
                s.acknowledge,
                types.AcknowledgeRequest,
                lambda r: {"subscription": r.subscription, "ack_ids": list(r.ack_ids)},
            ),
            "ModifyAckDeadline": unary(
                s.modify_ack_deadline,
                types.ModifyAckDeadlineRequest,
                lambda r: {
                    "subscription": r.subscription,
                    "ack_ids": list(r.ack_ids),
                    "ack_deadline_seconds": r.ack_deadline_seconds,
                },
            ),
        },
    )
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
