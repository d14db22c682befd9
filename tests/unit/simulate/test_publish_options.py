"""Publish options that need no broker: the kafka:// URL, option checks, the live window."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.simulate import SimConfig
from pharmaflow.simulate.publish import bootstrap_from_url, check_options, live_config


@pytest.mark.parametrize(
    "url, env, expected",
    [
        ("kafka://127.0.0.1:9092", {}, "127.0.0.1:9092"),
        ("kafka://a:1,b:2", {}, "a:1,b:2"),
        ("kafka://a:1, b:2/", {}, "a:1,b:2"),
        ("kafka://[::1]:9092", {}, "[::1]:9092"),
        ("kafka://", {"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9093"}, "k1:9092,k2:9093"),
        ("kafka://h:9092", {"KAFKA_BOOTSTRAP_SERVERS": "other:1"}, "h:9092"),
    ],
)
def test_kafka_urls(url: str, env: dict[str, str], expected: str) -> None:
    assert bootstrap_from_url(url, env) == expected


@pytest.mark.parametrize(
    "url, env, message",
    [
        ("127.0.0.1:9092", {}, "must be a kafka://"),
        ("http://h:9092", {}, "must be a kafka://"),
        ("kafka://", {}, "KAFKA_BOOTSTRAP_SERVERS is not set"),
        ("kafka://", {"KAFKA_BOOTSTRAP_SERVERS": "  "}, "KAFKA_BOOTSTRAP_SERVERS is not set"),
        ("kafka://", {"KAFKA_BOOTSTRAP_SERVERS": "nohost"}, "KAFKA_BOOTSTRAP_SERVERS: 'nohost'"),
        ("kafka://host", {}, "is not HOST:PORT"),
        ("kafka://host:", {}, "is not HOST:PORT"),
        ("kafka://:9092", {}, "is not HOST:PORT"),
        ("kafka://h:0", {}, "is not HOST:PORT"),
        ("kafka://h:65536", {}, "is not HOST:PORT"),
        ("kafka://h:12ab", {}, "is not HOST:PORT"),
        ("kafka://a:1,,b:2", {}, "is not HOST:PORT"),
        ("kafka://a/b:1", {}, "is not HOST:PORT"),
    ],
)
def test_bad_kafka_urls_are_one_line_errors(url: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(PharmaflowError) as info:
        bootstrap_from_url(url, env)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rate": 0}, "--rate must be a positive"),
        ({"rate": -5}, "--rate must be a positive"),
        ({"rate": float("nan")}, "--rate must be a positive"),
        ({"fmt": "xml"}, "--format must be one of json, avro"),
        ({"fmt": "avro"}, "needs a schema registry"),
        ({"fmt": "avro", "schema_registry": "registry:8081"}, "must start with http://"),
        ({"partitions": 0}, "--partitions must be at least 1"),
        ({"message_timeout_ms": 0}, "message timeout must be positive"),
    ],
)
def test_bad_options_are_refused_before_any_work(kwargs: dict, message: str) -> None:
    options = {"rate": None, "fmt": "json", "schema_registry": None, "partitions": 6, **kwargs}
    with pytest.raises(PharmaflowError, match=message):
        check_options(**options)


def test_good_options_pass() -> None:
    check_options(None, "json", None, 6)
    check_options(100.0, "avro", "mock://x", 1)
    check_options(0.5, "avro", "https://registry.example:8081", 256, 1)


def test_live_config_starts_the_window_today_in_utc() -> None:
    config = SimConfig(seed=1, days=2, scale=0.1)
    now = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
    live = live_config(config, now=now)
    assert live.start == date(2026, 3, 4)
    assert live.model_copy(update={"start": config.start}) == config
    assert live_config(config).start == datetime.now(UTC).date()
