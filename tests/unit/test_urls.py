"""Source URL checks: ports 1-65535, a host, no credentials in kafka:// URLs, and passwords
never in a description, an error line or a log line."""

from __future__ import annotations

import logging
import socket

import pytest
from pydantic import SecretStr

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources.kafka import kafka_security, parse_kafka_url
from pharmaflow.ingest.sources.postgres import parse_postgres_url
from pharmaflow.urls import (
    RedactingFilter,
    redact,
    redact_url,
    split_server,
    url_password,
)


@pytest.mark.parametrize(
    "url, message",
    [
        ("kafka://127.0.0.1:99999", "bad port '99999'"),
        ("kafka://127.0.0.1:0", "bad port '0'"),
        ("kafka://127.0.0.1:", "bad port ''"),
        ("kafka://:9092", "missing host"),
        ("kafka://h1:9092,,h2:9092", "expected HOST:PORT"),
        ("kafka://h1:9092,h2:70000", "bad port '70000'"),
        ("kafka://[::1:9092", "bad kafka:// URL"),
    ],
)
def test_kafka_servers_are_checked(url, message):
    with pytest.raises(PharmaflowError, match=message) as caught:
        parse_kafka_url(url)
    assert "\n" not in str(caught.value)


def test_good_servers_pass():
    assert parse_kafka_url("kafka://[::1]:9092,b.example:65535").bootstrap == (
        "[::1]:9092,b.example:65535"
    )
    assert split_server("broker:1", "x") == ("broker", 1)


def test_the_bootstrap_setting_is_checked_too():
    with pytest.raises(PharmaflowError, match="bad port '99999' in KAFKA_BOOTSTRAP_SERVERS"):
        parse_kafka_url("kafka://?group=g", default_bootstrap="127.0.0.1:99999")


@pytest.mark.parametrize(
    "url, default",
    [
        ("kafka://user:pw-s3cret@host:9092?group=g", None),
        ("kafka://user@host:9092", None),
        ("kafka://?group=g", "user:pw-s3cret@host:9092"),
    ],
)
def test_credentials_in_a_kafka_url_are_refused_without_echoing_them(url, default):
    with pytest.raises(PharmaflowError) as caught:
        parse_kafka_url(url, default_bootstrap=default)
    message = str(caught.value)
    assert "PHARMAFLOW_KAFKA_USERNAME" in message and "PHARMAFLOW_KAFKA_PASSWORD" in message
    assert "s3cret" not in message and "user" not in message.split(":")[0]
    assert "\n" not in message


def test_not_a_kafka_url_hides_its_password():
    with pytest.raises(PharmaflowError) as caught:
        parse_kafka_url("kafkaa://user:s3cret@host:9092")
    assert "s3cret" not in str(caught.value)


def test_security_settings_become_librdkafka_config():
    plain = Settings(kafka_username="svc", kafka_password=SecretStr("s3cret"))
    assert kafka_security(plain) == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
    }
    tls = Settings(
        kafka_username="svc",
        kafka_password=SecretStr("s3cret"),
        kafka_security_protocol="SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
    )
    assert kafka_security(tls)["security.protocol"] == "SASL_SSL"
    assert kafka_security(tls)["sasl.mechanism"] == "SCRAM-SHA-512"
    assert kafka_security(Settings()) == {}
    assert kafka_security(Settings(kafka_security_protocol="SSL")) == {"security.protocol": "SSL"}
    assert kafka_security(None) == {}


@pytest.mark.parametrize(
    "settings, message",
    [
        (Settings(kafka_password=SecretStr("s3cret")), "PHARMAFLOW_KAFKA_USERNAME is not"),
        (Settings(kafka_security_protocol="SASL_SSL"), "needs PHARMAFLOW_KAFKA_USERNAME"),
    ],
)
def test_inconsistent_security_settings_are_one_line(settings, message):
    with pytest.raises(PharmaflowError, match=message) as caught:
        kafka_security(settings)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://u:s3cret@127.0.0.1:99999/db?table=t", "bad port '99999'"),
        ("postgresql://u:s3cret@127.0.0.1:0/db?table=t", "bad port '0'"),
        ("postgresql://u:s3cret@/db?table=t", "needs a host"),
        ("postgresql:///db?table=t", "needs a host"),
        ("postgresql://h1:5432,:5433/db?table=t", "missing host"),
        ("postgresql://[::1/db?table=t", "bad postgresql:// URL"),
    ],
)
def test_postgres_hosts_and_ports_are_checked(url, message):
    with pytest.raises(PharmaflowError, match=message) as caught:
        parse_postgres_url(url)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_postgres_urls_libpq_accepts_still_pass():
    several = parse_postgres_url("postgresql://h1:5432,h2/db?table=t")
    assert several.table == "t"
    socket = parse_postgres_url("postgresql:///db?host=/var/run/postgresql&table=t")
    assert socket.dsn.startswith("postgresql:///db?host=")
    v6 = parse_postgres_url("postgresql://u:s3cret@[::1]:5432/db?table=t")
    assert "s3cret" not in v6.description and "s3cret" not in repr(v6)


def test_postgres_passwords_are_known_for_redaction():
    spec = parse_postgres_url("postgresql://u:p%40ss@h:5432/db?password=other&table=t")
    assert spec.passwords == ["p@ss", "other"]
    assert url_password("postgresql://u@h/db") is None


def test_redaction():
    assert redact_url("postgresql://u:s3cret@h:5432/db?sslmode=require") == (
        "postgresql://u:***@h:5432/db?sslmode=require"
    )
    assert (
        redact_url("postgresql://h/db?password=s3cret&x=1") == "postgresql://h/db?password=***&x=1"
    )
    assert redact_url("kafka://h:9092") == "kafka://h:9092"
    assert redact("auth p@ss and p%40ss failed", ["p@ss"]) == "auth *** and *** failed"
    assert redact("nothing to hide", [None, ""]) == "nothing to hide"


def test_the_log_filter_masks_client_lines(caplog):
    logger = logging.getLogger("pharmaflow.test.redact")
    masker = RedactingFilter(["s3cret"])
    logger.addFilter(masker)
    try:
        with caplog.at_level(logging.INFO, logger="pharmaflow.test.redact"):
            logger.warning("sasl %s rejected", "s3cret")
    finally:
        logger.removeFilter(masker)
    assert "s3cret" not in caplog.text and "sasl *** rejected" in caplog.text


def test_a_failed_postgres_connection_names_the_server_not_the_password():
    from pharmaflow.contracts.registry import default_registry
    from pharmaflow.ingest.sources import open_sources

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://reader:pw-s3cret@127.0.0.1:{port}/test?table=survey_data.survey_responses"
    with pytest.raises(PharmaflowError) as caught:
        open_sources(url, default_registry())
    message = str(caught.value)
    assert f"127.0.0.1:{port}/test" in message and "s3cret" not in message


@pytest.mark.parametrize(
    "url",
    [
        "pubsub://svc:pw-s3cret@pharma/orders-sub",
        "pubsub://svc@pharma/orders-sub",
        "pubsub://:pw-s3cret@pharma/orders-sub?dead_letter_topic=dlq",
    ],
)
def test_credentials_in_a_pubsub_url_are_refused_without_echoing_them(url):
    from pharmaflow.ingest.sources.pubsub import parse_pubsub_url

    with pytest.raises(PharmaflowError) as caught:
        parse_pubsub_url(url)
    message = str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "s3cret" not in message and "svc" not in message and "\n" not in message


def test_not_a_pubsub_url_hides_its_password():
    from pharmaflow.ingest.sources.pubsub import parse_pubsub_url

    with pytest.raises(PharmaflowError, match="not a pubsub:// URL") as caught:
        parse_pubsub_url("pubsubb://svc:s3cret@pharma/orders-sub")
    assert "s3cret" not in str(caught.value)


def test_a_stream_url_is_checked_by_its_own_scheme_before_workers_start():
    from pharmaflow.ingest.sources import check_stream_url

    check_stream_url("pubsub://pharma/orders-sub?dead_letter_topic=orders-dlq")
    check_stream_url("kafka://127.0.0.1:9092")
    with pytest.raises(PharmaflowError, match="needs a subscription"):
        check_stream_url("pubsub://pharma")
    with pytest.raises(PharmaflowError, match="bad port '0'"):
        check_stream_url("kafka://127.0.0.1:0")


@pytest.mark.parametrize("scheme", ["kafka", "postgresql", "pubsub"])
@pytest.mark.parametrize("authority", ["svc:pw-s3cret@\u2100", "svc:pw-s3cret@[p"])
def test_a_source_url_that_does_not_split_never_quotes_its_password(scheme, authority):
    """urlsplit's own error quotes the authority (found by Hypothesis in the pubsub:// parser;
    the kafka:// and postgresql:// parsers quoted it too): one shared `split_url` for all."""
    from pharmaflow.ingest.sources.pubsub import parse_pubsub_url

    parse = {"kafka": parse_kafka_url, "postgresql": parse_postgres_url}.get(
        scheme, parse_pubsub_url
    )
    with pytest.raises(PharmaflowError, match=f"bad {scheme}:// URL") as caught:
        parse(f"{scheme}://{authority}/orders-sub?table=s.t")
    assert "s3cret" not in str(caught.value)
