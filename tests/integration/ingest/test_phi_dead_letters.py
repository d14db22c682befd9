"""Dead letters on a real broker carry no patient data in the clear (sealed like quarantine)."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import Producer

from pharmaflow.broker.topics import topic_for
from pharmaflow.ingest.phi.keyring import load_keys
from pharmaflow.ingest.phi.vault import SEALED_REJECT, PhiVault
from pharmaflow.ingest.workers import run_stream_worker
from tests.factories import PATIENT, event
from tests.kafka import embedded_broker, kafka_url, read_topics
from tests.phi_scan import leaks, record_phi_values

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker for the module (starting one costs seconds): tests use their own groups."""
    with embedded_broker(tmp_path_factory.mktemp("broker")) as info:
        yield info


def test_an_invalid_order_is_dead_lettered_sealed_with_its_reasons_readable(broker, settings):
    topic = topic_for("pharmacy.order.placed")
    bad_quantity = orjson.dumps(event("pharmacy.order.placed", payload__quantity="two"))
    bad_json = b'{"patient": {"first_name": "Zuleika", "phone": "(415) 555-0134"'
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, key=b"ORD-1", value=bad_quantity)
    producer.produce(topic, key=b"Zuleika Okonkwo", value=bad_json)
    assert producer.flush(10) == 0

    result = run_stream_worker(settings, kafka_url(broker.bootstrap, "phi-dlq"), idle_exit=2.0)
    assert (result.quarantined, result.dead_lettered) == (2, 2)
    letters = read_topics(broker.bootstrap, [f"{topic}.dlq"], 2)
    assert len(letters) == 2
    by_code = {dict(m.headers())["reason_code"].decode(): m for m in letters}
    assert set(by_code) == {"wrong_type", "malformed_json"}

    vault = PhiVault(
        settings.vault_dir,
        load_keys(settings).vault.value,
    )
    values, names = record_phi_values([PATIENT])
    for code, raw in (("wrong_type", bad_quantity), ("malformed_json", bad_json)):
        message = by_code[code]
        headers = dict(message.headers())
        assert headers["value_protection"].decode() == SEALED_REJECT
        assert headers["source_topic"].decode() == topic
        assert int(headers["source_offset"]) >= 0 and "source_partition" in headers
        assert message.value() != raw
        assert vault.open_reject(message.value(), requested_by="test", reason="repair") == raw
        clear = [
            message.value().decode("latin-1"),
            *(v.decode("latin-1") for v in headers.values()),
        ]
        assert leaks(clear, values, names) == []
    assert dict(by_code["wrong_type"].headers())["reason_field"] == b"payload.quantity"
    assert by_code["wrong_type"].key() == b"ORD-1"
    # a key that is no identifier is withheld, and says so
    assert by_code["malformed_json"].key() is None
    assert dict(by_code["malformed_json"].headers())["key_withheld"] == b"true"
