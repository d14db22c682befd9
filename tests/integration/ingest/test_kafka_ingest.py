"""Kafka ingestion against a real broker: conservation, dead letters, exactly-once replays."""

from __future__ import annotations

import urllib.request

import pytest
from confluent_kafka import Producer

from pharmaflow.broker.topics import topic_for
from pharmaflow.ingest.metrics import IngestMetrics
from pharmaflow.ingest.phi.keyring import load_keys
from pharmaflow.ingest.phi.vault import PhiVault
from pharmaflow.ingest.workers import run_stream_worker
from pharmaflow.simulate.simulator import generate
from tests.conftest import FAULTY
from tests.kafka import (
    DLQ_TOPICS,
    committed_rows,
    embedded_broker,
    kafka_url,
    produce,
    read_topics,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def output():
    return generate(FAULTY)


def test_stream_lands_valid_unique_events_and_dead_letters_the_rest(tmp_path, settings, output):
    stats = output.stats
    with embedded_broker(tmp_path / "broker") as broker:
        produce(broker.bootstrap, output)
        url = kafka_url(broker.bootstrap, "g1")
        metrics = IngestMetrics()
        port = metrics.serve(0)
        result = run_stream_worker(settings, url, idle_exit=2.0, metrics=metrics)
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        sample = metrics.registry.get_sample_value
        assert sample("pharmaflow_ingest_events_consumed_total", {"source": "kafka"}) == stats.lines
        for event_type, n in stats.by_type.items():
            assert sample("pharmaflow_ingest_events_landed_total", {"event_type": event_type}) == n
        assert b"pharmaflow_ingest_events_duplicate_total" in scraped
        assert b"pharmaflow_ingest_consumer_lag_records" in scraped
        assert b"pharmaflow_ingest_batch_seconds" in scraped
        metrics.close()
        assert result.conserved
        assert result.input == stats.lines
        assert result.landed == stats.valid_unique
        assert result.duplicates == stats.duplicates
        assert result.quarantined == result.dead_lettered == stats.malformed
        assert dict(result.landed_by_type) == stats.by_type

        lake = committed_rows(settings.root)
        assert len(lake["ids"]) == len(set(lake["ids"])) == stats.valid_unique
        assert dict(lake["types"]) == stats.by_type
        assert len(set(lake["quarantined"])) == len(lake["quarantined"]) == stats.malformed
        assert {uri for uri, *_ in lake["quarantined"]} <= {topic_for(t) for t in stats.by_type}

        letters = read_topics(broker.bootstrap, DLQ_TOPICS, stats.malformed)
        assert len(letters) == stats.malformed
        codes = {dict(m.headers())["reason_code"].decode() for m in letters}
        assert codes == set(result.quarantine_reasons)
        headers = dict(letters[0].headers())
        assert letters[0].topic() == headers["source_topic"].decode() + ".dlq"
        assert int(headers["source_offset"]) >= 0

        # Same group again: offsets were committed, nothing is read twice.
        again = run_stream_worker(settings, url, idle_exit=2.0)
        assert (again.input, again.landed) == (0, 0)
        # A new group starts from the beginning: the lake's bookmarks recognise every record.
        fresh = run_stream_worker(settings, kafka_url(broker.bootstrap, "g2"), idle_exit=2.0)
        assert fresh.replayed == fresh.input == stats.lines
        assert fresh.landed == fresh.quarantined == fresh.dead_lettered == 0
    assert len(committed_rows(settings.root)["ids"]) == stats.valid_unique


def test_poison_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    tmp_path, settings, output
):
    valid = output.lines[output.rows[0]]
    topic = topic_for(output.event_types()[0])
    with embedded_broker(tmp_path / "broker") as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce(topic, key=b"k", value=b"\xff\xfe\x00 not an event")
        producer.produce(topic, key=b"k", value=b"\x00\x00\x00\x03\xe7\x02garbage")  # id 999
        producer.produce(topic, key=b"k", value=b"")
        producer.produce(topic, key=b"k", value=valid)
        assert producer.flush(10) == 0
        result = run_stream_worker(settings, kafka_url(broker.bootstrap), idle_exit=2.0)
        assert (result.landed, result.quarantined, result.dead_lettered) == (1, 3, 3)
        letters = read_topics(broker.bootstrap, [f"{topic}.dlq"], 3)
        reasons = sorted(dict(m.headers())["reason_code"].decode() for m in letters)
        assert reasons == ["malformed_json", "malformed_json", "undecodable"]
        # dead letters are sealed like quarantine: the originals come back through the vault
        vault = PhiVault(
            settings.vault_dir,
            load_keys(settings).vault.value,
        )
        originals = sorted(
            vault.open_reject(m.value(), requested_by="test", reason="check") for m in letters
        )
        assert originals[0] == b""
        assert b"\xff\xfe\x00 not an event" in originals
