"""`pubsub://` through the real ingest engine into a real lake.

No Pub/Sub server runs here (every emulator needs gcloud, and there is no network): the wire is
`tests.pubsub.FakeSubscription`, which answers the source's `SubscriberClient` calls with the
client's own message types and errors — handed to the source directly, or behind a real gRPC
server for the real client (`served_over_grpc`). Everything past that boundary is real: the
source, the engine (worker processes in the first test), the lake, the vault, the dead-letter
sink. What is judged is what the lake holds and what was acknowledged when.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.keyring import load_keys
from pharmaflow.ingest.phi.vault import SEALED_REJECT, PhiVault
from pharmaflow.ingest.pipeline import IngestEngine, IngestResult
from pharmaflow.ingest.sinks.lake import BronzeSink
from pharmaflow.ingest.sources.pubsub import PubSubSource, parse_pubsub_url
from pharmaflow.lake.layout import LakeLayout
from tests.conftest import env_with_keys
from tests.factories import PATIENT, event, order_placed, survey
from tests.phi_scan import leaks, record_phi_values
from tests.pubsub import (
    DLQ,
    DLQ_PATH,
    PROJECT,
    SUBSCRIPTION,
    SUBSCRIPTION_PATH,
    FakePublisher,
    FakeSubscription,
    served_over_grpc,
    url,
)

WRITER = "pubsub-test-0"
SALE, SHIPMENT, SURVEY, ORDER = (
    "sales.sale.completed",
    "logistics.shipment.created",
    "feedback.survey.submitted",
    "pharmacy.order.placed",
)


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on the way out)."""


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.model_copy(update={"batch_size": 500, "ingest_workers": 0})


def _run(
    settings: Settings,
    server: FakeSubscription,
    publisher: FakePublisher | None = None,
    writer: str = WRITER,
    **params: str,
) -> tuple[IngestResult, PubSubSource]:
    if publisher is not None:
        params.setdefault("dead_letter_topic", DLQ)
    source = PubSubSource(
        parse_pubsub_url(url(**params)),
        settings.lake_dir,
        idle_exit=0.4,
        subscriber=server,
        publisher=publisher,
    )
    return IngestEngine(settings).run([source], writer=writer), source


def _committed(settings: Settings, kind: str) -> pa.Table:
    """Rows of `kind` (bronze or quarantine) in committed batches only: parts are written
    before their manifest, so a glob would also see a batch in the middle of its commit."""
    layout = LakeLayout(settings.lake_dir)
    tables = []
    for path in layout.committed_manifests().values():
        for name in orjson.loads(path.read_bytes())["files"]:
            if name.startswith(f"lake/{kind}/"):
                tables.append(pq.read_table(settings.root / name, partitioning=None))
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def _in_lake(settings: Settings) -> tuple[set[int], set[str]]:
    """Offsets of the committed rows (landed or quarantined), and the landed event ids."""
    offsets: set[int] = set()
    for kind in ("bronze", "quarantine"):
        table = _committed(settings, kind)
        if table.num_rows:
            offsets.update(table["source_offset"].to_pylist())
    bronze = _committed(settings, "bronze")
    return offsets, set(bronze["event_id"].to_pylist()) if bronze.num_rows else set()


def _acks_only_after_commit(settings: Settings, server: FakeSubscription) -> list[int]:
    """Check, at every acknowledge call, that each message it acknowledges is in a committed
    batch: as a bronze or quarantine row, or (a duplicate, which leaves no row) as an event
    id bronze holds. Returns the sizes of the calls as they come."""
    sizes: list[int] = []

    def check(ack_ids: list[str]) -> None:
        offsets, event_ids = _in_lake(settings)
        missing = []
        for ack_id in ack_ids:
            message_id = server.owner[ack_id]
            if int(message_id) in offsets:
                continue
            data = server.messages[message_id].data
            if orjson.loads(data).get("event_id") not in event_ids:
                missing.append(ack_id)
        assert not missing, f"acknowledged before its batch was committed: {missing[:3]}"
        sizes.append(len(ack_ids))

    server.on_ack = check
    return sizes


def _publish_mix(server: FakeSubscription) -> tuple[dict[str, str], Counter[str]]:
    """1,200 valid events of four types, 30 of them published twice (same event id, a new
    message: a duplicate, not a replay). Returns event id -> type and the count per type."""
    kinds: dict[str, str] = {}
    for n in range(1_170):
        kind = (SALE, SHIPMENT, SURVEY, ORDER)[n % 4]
        if kind == ORDER:
            e = order_placed(PATIENT, f"ORD-{n}")
        elif kind == SURVEY:
            e = survey(f"call Zuleika Okonkwo on (415) 555-0134 about order {n}")
        else:
            e = event(kind)
        kinds[e["event_id"]] = kind
        server.publish(orjson.dumps(e), ordering_key=e["key"], trace_id=f"t-{n}")
        if n % 39 == 0:  # the publisher retried: the same event again, a new message id
            server.publish(orjson.dumps(e), ordering_key=e["key"])
    return kinds, Counter(kinds.values())


def test_every_message_lands_once_and_is_acknowledged_after_its_commit(settings: Settings):
    server = FakeSubscription()
    kinds, per_type = _publish_mix(server)
    sizes = _acks_only_after_commit(settings, server)
    settings = settings.model_copy(update={"batch_size": 400, "ingest_workers": 2})
    result, _source = _run(settings, server)

    assert result.conserved and result.input == len(server.order)
    assert (result.landed, result.duplicates, result.quarantined) == (len(kinds), 30, 0)
    assert dict(result.landed_by_type) == dict(per_type)
    bronze = _committed(settings, "bronze")
    assert sorted(bronze["event_id"].to_pylist()) == sorted(kinds)  # each event once
    assert Counter(bronze["event_type"].to_pylist()) == per_type
    rows = bronze.to_pylist()
    assert {r["source"] for r in rows} == {"pubsub"}
    assert {r["source_uri"] for r in rows} == {SUBSCRIPTION_PATH}
    assert {r["source_partition"] for r in rows} == {0}
    assert {str(r["source_offset"]) for r in rows} <= set(server.order)  # the message ids
    # every message acknowledged, in requests of at most 1,000, each after its commit
    assert not server.unacked and sum(sizes) == len(server.order) and max(sizes) <= 1_000
    assert not list((settings.lake_dir / "_pubsub").rglob("*.npy"))  # nothing can come back
    # the engine's protection applied as to any source: no patient data in the clear
    values, names = record_phi_values([PATIENT])
    strings = [bronze[c].combine_chunks() for c in bronze.column_names if c != "batch_id"]
    assert leaks([s for s in strings if pa.types.is_string(s.type)], values, names) == []


@pytest.mark.parametrize("restarted_as", [WRITER, "pubsub-test-1"], ids=["same", "other"])
def test_a_crash_between_commit_and_ack_lands_nothing_twice(small: Settings, restarted_as: str):
    server = FakeSubscription()
    kinds, _ = _publish_mix(server)

    def crash(_ack_ids: list[str]) -> None:
        raise Crash  # the first batch's manifest is written; its ack never goes out

    server.on_ack = crash
    with pytest.raises(Crash):
        _run(small, server)
    (manifest,) = LakeLayout(small.lake_dir).committed_manifests().values()
    first = orjson.loads(manifest.read_bytes())["counts"]["records"]  # 500, unless slow
    assert 0 < first <= 500 and len(server.acked) == 0
    server.on_ack = None
    server.expire()  # the deadlines lapse: Pub/Sub redelivers every unacknowledged message

    # the same worker restarted, or another worker of the subscription picks them up
    result, _source = _run(small, server, writer=restarted_as)
    assert result.conserved and result.replayed == first
    assert result.landed + result.duplicates + result.replayed == len(server.order)
    bronze = _committed(small, "bronze")["event_id"].to_pylist()
    assert len(bronze) == len(set(bronze)) == len(kinds)  # no event twice
    assert not server.unacked and server.deliveries.most_common(1)[0][1] == 2


# (name, data, attributes, ordering key, reason code)
MALFORMED = [
    (
        "not JSON, patient inside",
        b'{"patient": {"first_name": "Zuleika", "phone": "(415) 555-0134"',
        {},
        "Zuleika Okonkwo",
        "malformed_json",
    ),
    (
        "contract violation",
        orjson.dumps(event(ORDER, payload__quantity="two")),
        {},
        "ORD-1",
        "wrong_type",
    ),
    (
        "a name in an identifier",
        orjson.dumps(event(payload__pharmacy_id="Zuleika Okonkwo")),
        {},
        "",
        "invalid_identifier",
    ),
    (
        "name as event id",
        orjson.dumps(event(event_id="Zuleika Okonkwo")),
        {},
        "",
        "invalid_identifier",
    ),
    (
        "repeated key",
        orjson.dumps(event(event_id="evt-rep")).replace(
            b'"quantity":3', b'"quantity":3,"quantity":4'
        ),
        {},
        "",
        "duplicate_key",
    ),
    (
        "2^70",
        orjson.dumps(event(event_id="evt-huge")).replace(
            b'"quantity":3', b'"quantity":1180591620717411303424'
        ),
        {},
        "",
        "out_of_range",
    ),
    (
        "1e400",
        orjson.dumps(event(event_id="evt-inf")).replace(
            b'"unit_price":12.5', b'"unit_price":1e400'
        ),
        {},
        "",
        "malformed_json",
    ),
    (
        "lone surrogate",
        orjson.dumps(event(event_id="evt-sur")).replace(b'"test"', b'"te\\ud800st"'),
        {},
        "",
        "malformed_json",
    ),
    (
        "NUL",
        orjson.dumps(event(event_id="evt-nul")).replace(b'"test"', b'"te\\u0000st"'),
        {},
        "",
        "invalid_format",
    ),
    (
        "right-to-left override",
        orjson.dumps(event(event_id="evt-\u202egnp")),
        {},
        "",
        "invalid_identifier",
    ),
    ("not UTF-8", b'{"event_id": "\xff\xfe"}', {}, "", "malformed_json"),
    ("empty", b"", {"event_type": SALE}, "", "malformed_json"),
    ("BOM", b"\xef\xbb\xbf" + orjson.dumps(event(event_id="evt-bom")), {}, "", "malformed_json"),
    ("array", b"[1, 2]", {}, "", "not_an_object"),
    (
        "BINARY schema",
        orjson.dumps(event(event_id="evt-bin")),
        {"googclient_schemaencoding": "BINARY"},
        "",
        "undecodable",
    ),
    ("PHI in attributes", b"null", {"patient": "Zuleika Okonkwo MRN00123456"}, "", "not_an_object"),
]


def test_malformed_messages_are_quarantined_dead_lettered_sealed_and_acknowledged(
    small: Settings,
):
    server = FakeSubscription()
    good = [event(SALE), survey("très bien 👍 \u202e ok")]
    for e in good:
        server.publish(orjson.dumps(e))
    cases = {}
    for name, data, attributes, key, code in MALFORMED:
        cases[server.publish(data, ordering_key=key, **attributes)] = (name, data, key, code)
    publisher = FakePublisher()
    _acks_only_after_commit(small, server)
    result, _source = _run(small, server, publisher)

    assert result.conserved and (result.landed, result.quarantined) == (2, len(MALFORMED))
    assert result.dead_lettered == len(MALFORMED)
    quarantine = {str(r["source_offset"]): r for r in _committed(small, "quarantine").to_pylist()}
    assert set(quarantine) == set(cases)
    for message_id, (name, _data, _key, code) in cases.items():
        assert quarantine[message_id]["reason_code"] == code, name
    # each one published to the dead-letter topic, sealed, its reasons readable
    assert {t for t, _d, _a in publisher.published} == {DLQ_PATH}
    letters = {a["source_message_id"]: (d, a) for _t, d, a in publisher.published}
    assert set(letters) == set(cases)
    vault = PhiVault(small.vault_dir, load_keys(small).vault.value)
    values, names = record_phi_values([PATIENT])
    for message_id, (name, data, key, code) in cases.items():
        sealed, attributes = letters[message_id]
        assert attributes["reason_code"] == code, name
        assert attributes["value_protection"] == SEALED_REJECT
        assert attributes["source_subscription"] == SUBSCRIPTION_PATH
        assert attributes["source_offset"] == message_id
        assert vault.open_reject(sealed, requested_by="test", reason="repair") == data, name
        assert leaks([*attributes.values(), sealed.decode("latin-1")], values, names) == [], name
        if key == "Zuleika Okonkwo":
            assert attributes["key_withheld"] == "true" and "source_ordering_key" not in attributes
        elif key:
            assert attributes["source_ordering_key"] == key
    # and, their letters out and their batch committed, acknowledged like the good ones
    assert not server.unacked


def test_nothing_is_acknowledged_when_the_commit_fails(small: Settings, monkeypatch):
    server = FakeSubscription()
    kinds, _ = _publish_mix(server)

    def full_disk(*_args: object) -> None:
        raise PharmaflowError("the disk is full")

    monkeypatch.setattr(BronzeSink, "write", full_disk)
    with pytest.raises(PharmaflowError, match="the disk is full"):
        _run(small, server)
    assert not [c for c in server.calls if c[0] == "acknowledge"]
    assert not server.acked and not LakeLayout(small.lake_dir).committed_manifests()
    assert not server.lease  # handed back at once (deadline 0), not left to lapse
    monkeypatch.undo()

    result, _source = _run(small, server)  # the next run lands everything, once
    assert result.conserved and result.replayed == 0 and result.landed == len(kinds)
    assert not server.unacked


def test_nothing_is_acknowledged_when_a_dead_letter_cannot_be_published(small: Settings):
    server = FakeSubscription()
    server.publish(orjson.dumps(event(SALE)))
    server.publish(b"not json")
    publisher = FakePublisher()
    publisher.fail = exceptions.NotFound(f"Resource not found (resource={DLQ})")
    with pytest.raises(PharmaflowError, match=f"not published to {DLQ_PATH}"):
        _run(small, server, publisher)
    assert not server.acked and not LakeLayout(small.lake_dir).committed_manifests()

    publisher.fail = None
    result, _source = _run(small, server, publisher)
    assert (result.landed, result.quarantined, result.dead_lettered) == (1, 1, 1)
    assert len(publisher.published) == 1 and not server.unacked


def test_exactly_once_ack_failures_after_the_commit_land_nothing_twice(small: Settings):
    server = FakeSubscription(exactly_once=True)
    kinds, _ = _publish_mix(server)
    sizes = _acks_only_after_commit(small, server)
    check = server.on_ack
    assert check is not None
    lapsed = []

    def lapse_first(ack_ids: list[str]) -> None:
        check(ack_ids)
        if not lapsed:  # the engine was slow: every lease lapsed just before the first ack
            lapsed.append(len(ack_ids))
            server.expire()

    server.on_ack = lapse_first
    result, source = _run(small, server)
    assert source.exactly_once
    assert source.ack_failures.get("INVALID_ACK_ID", 0) >= lapsed[0]  # AcknowledgeStatus
    assert result.conserved and result.replayed >= lapsed[0]
    bronze = _committed(small, "bronze")["event_id"].to_pylist()
    assert len(bronze) == len(set(bronze)) == len(kinds)
    assert not server.unacked and sizes
    # what failed stays recognisable: a later redelivery would be replayed too
    assert list((small.lake_dir / "_pubsub" / PROJECT / SUBSCRIPTION).glob("*.unacked.npy"))


@pytest.mark.parametrize("batch_size", [100, 500])
def test_the_real_client_over_grpc_lands_everything_once(small: Settings, monkeypatch, batch_size):
    """The exactly-once scenario above with the real `SubscriberClient` over real gRPC (the
    stand-in behind a gRPC server, as an emulator would be): the calls as the client makes
    them, and ack failures as `ErrorInfo` in the gRPC status, parsed by `google.api_core`.

    In batches of 100 every failed ack id comes back named (INVALID_ACK_ID). In batches of
    500 the `ErrorInfo` naming them all is past gRPC's metadata limit, and the client reports
    RESOURCE_EXHAUSTED, or a ValueError from parsing the status: the source cannot tell which
    acks took, counts them all as failed (OTHER), and still lands nothing twice."""
    monkeypatch.setattr("pharmaflow.ingest.sources.pubsub._pause", lambda _s: None)
    small = small.model_copy(update={"batch_size": batch_size})
    server = FakeSubscription(exactly_once=True, ack_deadline_seconds=30)
    kinds, _ = _publish_mix(server)
    sizes = _acks_only_after_commit(small, server)
    check = server.on_ack
    assert check is not None
    lapsed: list[int] = []

    def lapse_first(ack_ids: list[str]) -> None:
        check(ack_ids)
        if not lapsed:
            lapsed.append(len(ack_ids))
            server.expire()

    server.on_ack = lapse_first
    with served_over_grpc(server) as host:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
        spec = parse_pubsub_url(url(max_wait_ms="2000"))  # full batches, however slow
        source = PubSubSource(spec, small.lake_dir, idle_exit=0.5)
        result = IngestEngine(small).run([source], writer=WRITER)
    assert source.exactly_once and source._lease_every == pytest.approx(10.0)
    # a failing check in the server would show as OTHER in batches of 100
    expected = {"INVALID_ACK_ID"} if batch_size == 100 else {"OTHER"}
    assert set(source.ack_failures) == expected
    assert result.conserved and result.replayed >= lapsed[0]
    bronze = _committed(small, "bronze")["event_id"].to_pylist()
    assert len(bronze) == len(set(bronze)) == len(kinds)
    assert not server.unacked and sizes


def _cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), "ingest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_with_keys(**env),
    )


def test_the_cli_reads_pubsub_urls_and_says_when_nothing_answers(tmp_path):
    """`pharmaflow ingest --source pubsub://…` end to end with the real client, pointed (as
    at an emulator) at a port nobody listens on: the supervisor, a worker process, the
    source, and one line saying what is wrong."""
    bad = _cli(tmp_path / "data", "--source", f"pubsub://{PROJECT}")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "pubsub:// needs a subscription" in bad.stderr

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = _cli(
        tmp_path / "data",
        "--source",
        url(),
        "--idle-exit",
        "1",
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{port}",
    )
    assert run.returncode == 1, run.stderr
    assert f"cannot reach Pub/Sub for {SUBSCRIPTION_PATH}" in run.stderr
