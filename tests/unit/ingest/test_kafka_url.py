import pytest

from pharmaflow.broker.topics import DOMAIN_TOPICS
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources.kafka import DEFAULT_GROUP, parse_kafka_url


def test_defaults_read_every_domain_topic_in_the_default_group():
    spec = parse_kafka_url("kafka://10.0.0.1:9092,10.0.0.2:9092")
    assert spec.bootstrap == "10.0.0.1:9092,10.0.0.2:9092"
    assert spec.topics == tuple(DOMAIN_TOPICS.values())
    assert spec.group == DEFAULT_GROUP and spec.schema_registry is None


def test_parameters_and_the_environment_fallback():
    spec = parse_kafka_url(
        "kafka://?topics=a,b&group=g&schema_registry=mock://r&session_timeout_ms=6000",
        default_bootstrap="broker:9092",
    )
    assert (spec.bootstrap, spec.topics, spec.group) == ("broker:9092", ("a", "b"), "g")
    assert spec.schema_registry == "mock://r" and spec.session_timeout_ms == 6000


@pytest.mark.parametrize(
    "url, message",
    [
        ("kafka://", "KAFKA_BOOTSTRAP_SERVERS"),
        ("kafka://host", "HOST:PORT"),
        ("kafka://host:9092?group=g&colour=red", "unknown kafka:// parameter 'colour'"),
        ("kafka://host:9092?max_wait_ms=0", "positive integer"),
        ("http://host:9092", "not a kafka:// URL"),
    ],
)
def test_mistakes_are_named(url, message):
    with pytest.raises(PharmaflowError, match=message):
        parse_kafka_url(url)
