"""The Pub/Sub source on its own: URLs, messages into batches, acks, leases, the ledger.

No Pub/Sub server can run here (every emulator needs gcloud), so the network boundary is
`tests.pubsub.FakeSubscription`: the `SubscriberClient` calls the source makes, answered with
the client's own types and errors. One test drives the real `SubscriberClient` against a port
nobody listens on (`PUBSUB_EMULATOR_HOST`), for what the client itself does then.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from google.api_core import exceptions
from google.cloud.pubsub_v1.subscriber.exceptions import AcknowledgeError, AcknowledgeStatus
from hypothesis import given, settings
from hypothesis import strategies as st

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.reasons import ReasonCode
from pharmaflow.ingest.sources import check_stream_url, is_stream, open_sources, stream_kind
from pharmaflow.ingest.sources.base import DeadLetter, RawBatch, SourceContext
from pharmaflow.ingest.sources.pubsub import (
    PubSubDeadLetterSink,
    PubSubSource,
    PubSubSpec,
    ack_outcome,
    message_offsets,
    parse_pubsub_url,
)
from pharmaflow.lake.layout import LakeLayout
from tests.pubsub import (
    DLQ_PATH,
    PROJECT,
    SUBSCRIPTION,
    SUBSCRIPTION_PATH,
    FakePublisher,
    FakeSubscription,
    exactly_once_failure,
    url,
)

WRITER = "pubsub-test-0"

# -- URLs ---------------------------------------------------------------------------------------


def test_a_url_names_the_subscription_and_its_options():
    spec = parse_pubsub_url(
        f"pubsub://{PROJECT}/{SUBSCRIPTION}?dead_letter_topic=orders-dlq&max_messages=250"
        "&max_wait_ms=200&ack_deadline_seconds=120"
    )
    assert spec == PubSubSpec(PROJECT, SUBSCRIPTION, DLQ_PATH, 250, 200, 120)
    assert spec.subscription_path == SUBSCRIPTION_PATH
    assert spec.description == f"pubsub://{PROJECT}/{SUBSCRIPTION} dead_letter_topic={DLQ_PATH}"
    defaults = parse_pubsub_url(f"pubsub://{PROJECT}/{SUBSCRIPTION}/")
    assert (defaults.dead_letter_topic, defaults.max_messages, defaults.max_wait_ms) == (
        None,
        1000,
        1000,
    )
    assert defaults.ack_deadline_seconds == 60


def test_a_dead_letter_topic_may_live_in_another_project():
    spec = parse_pubsub_url(
        "pubsub://example.com:pharma/orders-sub?dead_letter_topic=projects/ops-1/topics/dlq-all"
    )
    assert spec.project == "example.com:pharma"
    assert spec.dead_letter_topic == "projects/ops-1/topics/dlq-all"


@pytest.mark.parametrize(
    "text, message",
    [
        ("pubsub://", "needs a project"),
        ("pubsub:///orders-sub", "needs a project"),
        ("pubsub://pharma", "needs a subscription"),
        ("pubsub://pharma/", "needs a subscription"),
        ("pubsub://pharma/a/b", "one subscription name"),
        ("pubsub://Pharma/orders-sub", "bad project id 'Pharma'"),
        ("pubsub://pharma:123/orders-sub", "bad project id"),
        ("pubsub://pharma/goog-sub", "bad subscription name"),
        ("pubsub://pharma/ab", "bad subscription name"),
        ("pubsub://pharma/1sub", "bad subscription name"),
        ("pubsub://pharma/orders-sub#x", "fragment"),
        ("pubsub://pharma/orders-sub?colour=red", "unknown pubsub:// parameter 'colour'"),
        ("pubsub://pharma/orders-sub?credentials=/k.json", "unknown pubsub:// parameter"),
        ("pubsub://pharma/orders-sub?max_messages=0", "max_messages must be an integer"),
        ("pubsub://pharma/orders-sub?max_messages=-5", "max_messages must be an integer"),
        ("pubsub://pharma/orders-sub?max_wait_ms=soon", "max_wait_ms must be an integer"),
        ("pubsub://pharma/orders-sub?max_wait_ms=%EF%BC%95", "max_wait_ms must be an integer"),
        ("pubsub://pharma/orders-sub?ack_deadline_seconds=9", "from 10 to 600"),
        ("pubsub://pharma/orders-sub?ack_deadline_seconds=601", "from 10 to 600"),
        ("pubsub://pharma/orders-sub?dead_letter_topic=", "dead_letter_topic needs a value"),
        ("pubsub://pharma/orders-sub?dead_letter_topic=a/b", "TOPIC or projects/"),
        (
            "pubsub://pharma/orders-sub?dead_letter_topic=projects/P/topics/dlq",
            "bad project id 'P' in dead_letter_topic",
        ),
        ("pubsub://pharma/orders-sub?dead_letter_topic=goog-x", "bad dead_letter_topic name"),
        ("pubsub:pharma/orders-sub", "needs a project"),
        ("kafka://pharma/orders-sub", "not a pubsub:// URL"),
        ("pubsub://[pharma/orders-sub", "bad pubsub:// URL"),
    ],
)
def test_mistakes_are_one_line_naming_what_is_wrong(text, message):
    with pytest.raises(PharmaflowError, match=message) as caught:
        parse_pubsub_url(text)
    assert "\n" not in str(caught.value)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_project = st.builds(
    "{}{}{}".format,
    st.sampled_from(_LETTERS[:26]),
    st.text(alphabet=_LETTERS[:26] + "0123456789-", max_size=20),
    st.sampled_from(_LETTERS[:26] + "0123456789"),
)
_name = st.builds(
    "{}{}".format,
    st.sampled_from(_LETTERS.replace("g", "")),
    st.text(alphabet=_LETTERS + "0123456789-_.~+%", min_size=2, max_size=40),
)


@settings(max_examples=200, deadline=None)
@given(project=_project, subscription=_name, topic=_name)
def test_every_valid_name_round_trips(project, subscription, topic):
    """Names are percent-encoded in the URL like any URL part (`+` is %2B, `%` is %25)."""
    sub, dlq = quote(subscription, safe=""), quote(topic, safe="")
    spec = parse_pubsub_url(f"pubsub://{project}/{sub}?dead_letter_topic={dlq}")
    assert (spec.project, spec.subscription) == (project, subscription)
    assert spec.subscription_path == f"projects/{project}/subscriptions/{subscription}"
    assert spec.dead_letter_topic == f"projects/{project}/topics/{topic}"


@settings(max_examples=500, deadline=None)
@given(rest=st.text(max_size=60), secret=st.sampled_from(["", "user:s3cr3t-pw@"]))
def test_any_text_parses_or_is_one_line_and_never_echoes_a_password(rest, secret):
    try:
        spec = parse_pubsub_url(f"pubsub://{secret}{rest}")
    except PharmaflowError as exc:
        assert "\n" not in str(exc) and "s3cr3t" not in str(exc)
    else:
        assert not secret and "/" not in spec.subscription and spec.project


# -- wiring ---------------------------------------------------------------------------------------


def test_open_sources_and_is_stream_know_pubsub(settings):
    assert is_stream("pubsub://p/orders-sub") and is_stream("kafka://h:1")
    assert not is_stream("events.jsonl")
    assert (stream_kind("pubsub://p/orders-sub"), stream_kind("kafka://h:1")) == ("pubsub", "kafka")
    (source,) = open_sources(url(), registry=None, settings=settings)  # type: ignore[arg-type]
    assert isinstance(source, PubSubSource)
    assert source.spec.subscription_path == SUBSCRIPTION_PATH
    assert source.lake_dir == settings.lake_dir
    with pytest.raises(PharmaflowError, match="unknown pubsub:// parameter 'group'"):
        check_stream_url("pubsub://p/orders-sub?group=g")
    with pytest.raises(PharmaflowError, match=r"kafka://, pubsub://, postgresql://"):
        open_sources("nats://x/y", registry=None)  # type: ignore[arg-type]


# -- message ids as offsets -----------------------------------------------------------------------


def test_message_ids_become_offsets_and_odd_ones_stable_negative_hashes():
    assert message_offsets(["2070443601311540", "7"]).tolist() == [2070443601311540, 7]
    odd = ["abc", "9" * 19, "١٢٣", "-5", "abc"]  # not a number, too long, not ASCII, signed
    first, second = message_offsets(odd), message_offsets(odd)
    assert (first < 0).all() and first.tolist() == second.tolist()
    assert first[0] == first[4] and len(set(first[:4].tolist())) == 4
    mixed = message_offsets(["12", "x1"])
    assert mixed[0] == 12 and mixed[1] < 0
    # an id a server never leaves empty: each empty one is its delivery's own (the ack id)
    empty = message_offsets(["", ""], ["ack-1", "ack-2"])
    assert empty[0] != empty[1] and (empty < 0).all()


# -- the source over a fake subscription -----------------------------------------------------------


def _context() -> SourceContext:
    return SourceContext(WRITER, lambda _p: None, dict, lambda: None)


def _source(
    tmp_path: Path,
    server: FakeSubscription,
    publisher: FakePublisher | None = None,
    max_wait_ms: str = "50",
    **kw,
) -> PubSubSource:
    """`max_wait_ms`: long, where a test needs its batch full however slow the machine."""
    params = {"dead_letter_topic": "orders-dlq"} if publisher is not None else {}
    params["max_wait_ms"] = max_wait_ms
    source = PubSubSource(
        parse_pubsub_url(url(**params)),
        tmp_path / "lake",
        subscriber=server,
        publisher=publisher,
        lease=False,  # the tests call lease() themselves
        **kw,
    )
    source.attach(_context())
    return source


def _commit(tmp_path: Path, batch: RawBatch) -> None:
    """What the engine's commit leaves that the source can see: the batch's manifest."""
    path = LakeLayout(tmp_path / "lake").manifest(batch.batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def test_a_pull_becomes_a_batch_with_its_provenance(tmp_path):
    server = FakeSubscription()
    ids = [
        server.publish(b'{"a": 1}', ordering_key="ORD-1"),
        server.publish(b'{"a": 2}'),
        server.publish(b"\x00\x01avro", googclient_schemaencoding="BINARY"),
        server.publish(b'{"a": 4}', googclient_schemaencoding="JSON", trace_id="t-1"),
    ]
    source = _source(tmp_path, server)
    batch = next(source.batches(10))
    assert batch.records == [b'{"a": 1}', b'{"a": 2}', b"\x00\x01avro", b'{"a": 4}']
    assert batch.offsets.tolist() == [int(i) for i in ids]
    assert batch.partitions.tolist() == [0, 0, 0, 0] and batch.partitions.dtype == np.int32
    assert batch.topics == [SUBSCRIPTION_PATH] * 4
    assert batch.keys == [b"ORD-1", None, None, None]
    assert batch.source == "pubsub" and batch.source_uri == f"pubsub://{PROJECT}/{SUBSCRIPTION}"
    assert batch.decode_errors == {2: (ReasonCode.UNDECODABLE, batch.decode_errors[2][1])}
    assert "BINARY" in batch.decode_errors[2][1]
    assert batch.produced_at == pytest.approx(1_796_000_000.5)
    assert batch.offset_ranges == [[SUBSCRIPTION_PATH, "", 0, int(ids[0]), int(ids[-1])]]
    assert batch.batch_id.startswith(f"{WRITER}~") and batch.replayed == 0
    # handed over, not acknowledged: that waits for the engine's ack
    assert not [c for c in server.calls if c[0] == "acknowledge"]
    ledger = tmp_path / "lake" / "_pubsub" / PROJECT / SUBSCRIPTION / f"{batch.batch_id}.npy"
    assert np.load(ledger).tolist() == batch.offsets.tolist()
    source.close()


def test_a_message_delivered_twice_in_one_batch_counts_once(tmp_path):
    server = FakeSubscription()
    first = server.publish(b'{"a": 1}')
    source = _source(tmp_path, server)
    received = server.pull({"subscription": SUBSCRIPTION_PATH, "max_messages": 10})
    server.expire()
    again = server.pull({"subscription": SUBSCRIPTION_PATH, "max_messages": 10})
    server.calls.clear()
    from google.pubsub_v1.types import PullResponse

    both = [*PullResponse.pb(received).received_messages, *PullResponse.pb(again).received_messages]
    source._pending.add(both)
    batch = source._batch()
    assert batch.offsets.tolist() == [int(first)] and batch.replayed == 1
    source.ack(batch)
    (ack,) = [c for c in server.calls if c[0] == "acknowledge"]
    assert len(ack[1]) == 2  # both deliveries are acknowledged
    source.close()


def test_acks_wait_for_the_engine_and_go_1000_at_a_time(tmp_path):
    server = FakeSubscription()
    for n in range(2_500):
        server.publish(b'{"n": %d}' % n)
    source = _source(tmp_path, server, max_wait_ms="60000")
    batch = next(source.batches(2_500))
    assert len(batch.records) == 2_500
    assert [c[1] for c in server.calls if c[0] == "pull"] == [1000, 1000, 500]
    assert not [c for c in server.calls if c[0] == "acknowledge"]
    _commit(tmp_path, batch)
    source.ack(batch)
    sizes = [len(c[1]) for c in server.calls if c[0] == "acknowledge"]
    assert sizes == [1000, 1000, 500] and not server.unacked
    assert not list((tmp_path / "lake" / "_pubsub").rglob("*.npy"))  # nothing can come back
    assert source.ack_failures == {}
    source.close()
    assert server.nacked() == []  # everything was acknowledged: nothing to hand back


def test_a_redelivery_after_a_crash_between_commit_and_ack_is_replayed(tmp_path):
    server = FakeSubscription()
    ids = [server.publish(b'{"n": %d}' % n) for n in range(5)]
    first = _source(tmp_path, server)
    batch = next(first.batches(5))
    _commit(tmp_path, batch)  # the manifest is written, then the process dies: no ack
    del first
    server.expire()
    second = _source(tmp_path, server)  # the same writer, restarted
    again = next(second.batches(5))
    assert again.records == [] and again.replayed == 5 and not again.tick
    second.ack(again)
    assert sorted(server.acked) == sorted(ids)
    second.close()


def test_an_uncommitted_batch_is_forgotten_and_lands_again(tmp_path):
    server = FakeSubscription()
    for n in range(3):
        server.publish(b'{"n": %d}' % n)
    first = _source(tmp_path, server)
    lost = next(first.batches(3))  # handed over, never committed, then the process dies
    del first
    server.expire()
    second = _source(tmp_path, server)
    ledger = tmp_path / "lake" / "_pubsub" / PROJECT / SUBSCRIPTION
    assert not (ledger / f"{lost.batch_id}.npy").exists()  # removed at attach
    again = next(second.batches(3))
    assert len(again.records) == 3 and again.replayed == 0
    second.close()


def test_another_workers_committed_batch_is_recognised_and_a_dead_ones_removed(tmp_path):
    server = FakeSubscription()
    ids = [server.publish(b'{"n": %d}' % n) for n in range(4)]
    ledger = tmp_path / "lake" / "_pubsub" / PROJECT / SUBSCRIPTION
    ledger.mkdir(parents=True)
    committed, dead, old = "pubsub-other-1~1-a", "pubsub-other-2~2-b", "pubsub-other-3~3-c"
    np.save(ledger / f"{committed}.npy", np.array([int(ids[0])], np.int64))
    np.save(ledger / f"{dead}.npy", np.array([int(ids[1])], np.int64))
    np.save(ledger / f"{old}.unacked.npy", np.array([int(ids[2])], np.int64))
    long_ago = time.time() - 40 * 86_400
    os.utime(ledger / f"{old}.unacked.npy", (long_ago, long_ago))
    manifest = LakeLayout(tmp_path / "lake").manifest(committed)
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    source = _source(tmp_path, server)
    batch = next(source.batches(4))
    assert batch.replayed == 1 and sorted(batch.offsets.tolist()) == sorted(int(i) for i in ids[1:])
    assert not (ledger / f"{dead}.npy").exists() and not (ledger / f"{old}.unacked.npy").exists()
    source.close()


def test_exactly_once_acks_that_fail_keep_their_messages_recognisable(tmp_path):
    server = FakeSubscription(exactly_once=True)
    ids = [server.publish(b'{"n": %d}' % n) for n in range(3)]
    source = _source(tmp_path, server)
    assert source.exactly_once and source._lease_seconds == 60
    batch = next(source.batches(3))
    _commit(tmp_path, batch)
    server.expire()  # the leases lapsed before the ack: Pub/Sub answers INVALID_ACK_ID
    source.ack(batch)  # no exception: the batch is in the lake
    assert source.ack_failures == {"INVALID_ACK_ID": 3}
    ledger = tmp_path / "lake" / "_pubsub" / PROJECT / SUBSCRIPTION
    assert sorted(np.load(ledger / f"{batch.batch_id}.unacked.npy").tolist()) == sorted(
        int(i) for i in ids
    )
    again = next(source.batches(3))  # the redelivery
    assert again.replayed == 3 and again.records == []
    source.ack(again)
    assert sorted(server.acked) == sorted(ids)
    source.close()


def test_transient_ack_failures_are_retried(tmp_path, monkeypatch):
    monkeypatch.setattr("pharmaflow.ingest.sources.pubsub._pause", lambda _s: None)
    server = FakeSubscription(exactly_once=True)
    ids = [server.publish(b'{"n": %d}' % n) for n in range(2)]
    source = _source(tmp_path, server)
    batch = next(source.batches(2))
    transient = exactly_once_failure(
        {server.lease[i]: "TRANSIENT_FAILURE_UNORDERED_ACK_ID" for i in ids}
    )
    server.ack_errors = [exceptions.ServiceUnavailable("try again"), transient]
    source.ack(batch)
    assert source.ack_failures == {} and sorted(server.acked) == sorted(ids)
    requests = [c[1] for c in server.calls if c[0] == "acknowledge"]
    assert len(requests) == 3 and len(requests[2]) == 2
    source.close()


@pytest.mark.parametrize(
    "error, status",
    [
        (AcknowledgeError(AcknowledgeStatus.PERMISSION_DENIED, None), "PERMISSION_DENIED"),
        (exceptions.PermissionDenied("no"), "PERMISSION_DENIED"),
        (exceptions.FailedPrecondition("subscription detached"), "FAILED_PRECONDITION"),
        (exceptions.NotFound("gone"), "OTHER"),
    ],
)
def test_an_ack_that_fails_for_good_is_counted_and_kept(tmp_path, error, status):
    server = FakeSubscription()
    server.publish(b'{"n": 1}')
    source = _source(tmp_path, server)
    batch = next(source.batches(1))
    _commit(tmp_path, batch)
    server.ack_errors = [error]
    source.ack(batch)
    assert source.ack_failures == {status: 1}
    assert (
        tmp_path / "lake" / "_pubsub" / PROJECT / SUBSCRIPTION / f"{batch.batch_id}.unacked.npy"
    ).exists()
    source.close()


def test_ack_outcome_reads_the_server_as_the_client_library_does():
    ids = ["a", "b", "c"]
    again, failed = ack_outcome(
        exactly_once_failure(
            {"a": "PERMANENT_FAILURE_INVALID_ACK_ID", "b": "TRANSIENT_FAILURE_OTHER"}
        ),
        ids,
    )
    assert again == ["b"]
    assert failed == {"a": AcknowledgeStatus.INVALID_ACK_ID, "c": AcknowledgeStatus.OTHER}
    assert ack_outcome(exceptions.DeadlineExceeded("slow"), ids) == (ids, {})
    assert ack_outcome(exceptions.InternalServerError("oops"), ids) == (ids, {})
    weird = exactly_once_failure({"a": "PERMANENT_FAILURE_OTHER"})
    assert ack_outcome(weird, ["a"]) == ([], {"a": AcknowledgeStatus.OTHER})
    # google.api_core's ValueError for status details it cannot parse: extent unknown
    unparsed = ValueError("Code in Status proto doesn't match status code")
    assert ack_outcome(unparsed, ["a"]) == ([], {"a": AcknowledgeStatus.OTHER})


def test_leases_are_extended_for_messages_in_hand_and_in_flight(tmp_path):
    server = FakeSubscription(ack_deadline_seconds=12)
    for n in range(4):
        server.publish(b'{"n": %d}' % n)
    source = _source(tmp_path, server)
    assert source._lease_every == pytest.approx(4.0)  # a third of the subscription's deadline
    batches = source.batches(2)
    first = next(batches)
    second = next(batches)
    server.calls.clear()
    source.lease()
    (modack,) = [c[1] for c in server.calls if c[0] == "modify_ack_deadline"]
    ack_ids, seconds = modack
    assert seconds == 60 and len(ack_ids) == 4
    _commit(tmp_path, first)
    source.ack(first)
    server.calls.clear()
    source.lease()
    (modack,) = [c[1] for c in server.calls if c[0] == "modify_ack_deadline"]
    assert len(modack[0]) == 2  # the acknowledged batch is no longer leased
    source.close()
    assert len(server.nacked()) == 2 and second.batch_id  # close hands back what is left


def test_stop_hands_unhanded_messages_back(tmp_path):
    server = FakeSubscription()
    for n in range(3):
        server.publish(b'{"n": %d}' % n)
    stop = threading.Event()
    source = _source(tmp_path, server, stop=stop)
    batches = source.batches(100)  # never full: the messages wait in hand
    original = server.pull

    def pull_then_stop(request, retry=None, timeout=None):
        response = original(request, retry, timeout)
        stop.set()
        return response

    server.pull = pull_then_stop  # type: ignore[method-assign]
    assert list(batches) == []
    assert len(server.nacked()) == 3 and not server.lease
    source.close()


def test_a_quiet_subscription_ticks_then_stops_at_idle_exit(tmp_path):
    server = FakeSubscription()
    server.publish(b'{"n": 1}')
    source = _source(tmp_path, server, idle_exit=0.3)
    seen = list(source.batches(10))
    assert [b.tick for b in seen] == [False, True]
    assert source.unreachable is None
    source.close()


def test_an_unreachable_server_is_reported_at_idle_exit(tmp_path, monkeypatch):
    server = FakeSubscription()
    server.pull_errors = [exceptions.ServiceUnavailable("connection refused")] * 1000
    source = _source(tmp_path, server, idle_exit=0.3)
    monkeypatch.setattr("pharmaflow.ingest.sources.pubsub._BACKOFF_SECONDS", (0.01, 0.05))
    assert list(source.batches(10)) == []
    assert "cannot reach Pub/Sub for " + SUBSCRIPTION_PATH in (source.unreachable or "")
    assert "connection refused" in (source.unreachable or "")
    source.close()


@pytest.mark.parametrize(
    "error, message",
    [
        (exceptions.NotFound("Resource not found"), "does not exist"),
        (exceptions.PermissionDenied("denied"), "roles/pubsub.subscriber"),
    ],
)
def test_a_missing_or_forbidden_subscription_is_one_line(tmp_path, error, message):
    server = FakeSubscription()
    server.pull_errors = [error]
    source = _source(tmp_path, server)
    with pytest.raises(PharmaflowError, match=message) as caught:
        next(source.batches(10))
    assert "\n" not in str(caught.value)
    source.close()

    def refuse(request, retry=None, timeout=None):
        raise error

    server.get_subscription = refuse  # type: ignore[method-assign]
    if isinstance(error, exceptions.NotFound):
        with pytest.raises(PharmaflowError, match=message):
            _source(tmp_path, server)
    else:  # roles/pubsub.subscriber may pull but not read the subscription's settings
        _source(tmp_path, server).close()


def test_the_real_client_against_nothing_listening_says_so(tmp_path, monkeypatch):
    """The real `SubscriberClient` (emulator mode: no credentials needed) at a closed port:
    the source's calls are accepted as the client defines them, and what comes back is
    read as "unreachable"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    source = PubSubSource(parse_pubsub_url(url()), tmp_path / "lake", idle_exit=0.5)
    source.attach(_context())
    assert list(source.batches(10)) == []
    assert source.unreachable and "ServiceUnavailable" in source.unreachable
    source.close()


def test_no_credentials_is_one_line(tmp_path, monkeypatch):
    for name in ("PUBSUB_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # no metadata server to ask here
    source = PubSubSource(parse_pubsub_url(url()), tmp_path / "lake")
    with pytest.raises(PharmaflowError, match="GOOGLE_APPLICATION_CREDENTIALS") as caught:
        source.attach(_context())
    assert "\n" not in str(caught.value)


# -- dead letters ---------------------------------------------------------------------------------


def _letter(**kw) -> DeadLetter:
    fields = {
        "topic": SUBSCRIPTION_PATH,
        "partition": 0,
        "offset": 1234,
        "key": b"ORD-1",
        "value": b"sealed",
        "reason_code": "wrong_type",
        "reason_field": "payload.quantity",
        "reason_detail": "expected an integer",
    }
    return DeadLetter(**{**fields, **kw})


class _Landing:
    def __init__(self, letters: list[DeadLetter]) -> None:
        self.dead_letters = letters


def test_dead_letters_carry_their_reasons_and_never_a_key_that_is_not_an_identifier():
    publisher = FakePublisher()
    sink = PubSubDeadLetterSink(
        publisher, DLQ_PATH, SUBSCRIPTION_PATH, lambda _b, o: str(o), lambda: None
    )
    batch = RawBatch(batch_id="w~1", source="pubsub", source_uri="pubsub://p/s")
    letters = [
        _letter(),
        _letter(offset=5, key=b"Zuleika Okonkwo", reason_detail="é" * 2_000),
        _letter(offset=6, key=None, reason_field=None),
    ]
    assert sink.write(batch, _Landing(letters)) == []  # type: ignore[arg-type]
    sink.flush()
    (t1, data, first), (_t2, _d2, second), (_t3, _d3, third) = publisher.published
    assert t1 == DLQ_PATH and data == b"sealed"
    assert first["source_ordering_key"] == "ORD-1" and first["reason_code"] == "wrong_type"
    assert first["source_message_id"] == "1234" and first["batch_id"] == "w~1"
    assert first["source_subscription"] == SUBSCRIPTION_PATH
    assert first["value_protection"] == "aes-256-gcm:vault:v1"
    assert "source_ordering_key" not in second and second["key_withheld"] == "true"
    assert len(second["reason_detail"].encode()) <= 1_024
    assert "key_withheld" not in third and third["reason_field"] == ""


def test_a_dead_letter_that_cannot_be_published_fails_the_flush():
    publisher = FakePublisher()
    publisher.fail = exceptions.NotFound("Topic not found")
    sink = PubSubDeadLetterSink(
        publisher, DLQ_PATH, SUBSCRIPTION_PATH, lambda _b, o: str(o), lambda: None
    )
    batch = RawBatch(batch_id="w~1", source="pubsub", source_uri="pubsub://p/s")
    sink.write(batch, _Landing([_letter()]))  # type: ignore[arg-type]
    with pytest.raises(PharmaflowError, match=f"1 dead letter.*not published to {DLQ_PATH}"):
        sink.flush()


def test_the_source_gives_its_sink_only_with_a_dead_letter_topic(tmp_path):
    server = FakeSubscription()
    assert _source(tmp_path, server).dead_letter_sink() is None
    publisher = FakePublisher()
    source = _source(tmp_path, server, publisher)
    sink = source.dead_letter_sink()
    assert isinstance(sink, PubSubDeadLetterSink) and sink.topic == DLQ_PATH
    source.close()
    assert not publisher.stopped  # a publisher handed in is the caller's to stop


def test_an_outage_during_the_ack_is_waited_out_once_not_per_request(tmp_path, monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr("pharmaflow.ingest.sources.pubsub._pause", sleeps.append)
    server = FakeSubscription()
    for n in range(2_500):
        server.publish(b'{"n": %d}' % n)
    source = _source(tmp_path, server, max_wait_ms="60000")
    batch = next(source.batches(2_500))
    _commit(tmp_path, batch)
    server.ack_errors = [exceptions.ServiceUnavailable("connection refused")] * 10
    source.ack(batch)
    requests = [c for c in server.calls if c[0] == "acknowledge"]
    assert len(requests) == 5 and sleeps == [0.5, 1.0, 2.0, 4.0]  # the first request, retried
    assert source.ack_failures == {"OTHER": 2_500}  # the rest not tried: the ledger has them
    part = tmp_path / "lake" / "_pubsub" / PROJECT / SUBSCRIPTION / f"{batch.batch_id}.unacked.npy"
    assert np.load(part).size == 2_500
    source.close()
