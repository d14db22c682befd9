"""Sources the ingest engine reads from, chosen by the `--source` argument.

`pubsub://` is imported only when asked for: the Pub/Sub client is an optional extra."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pharmaflow.contracts.registry import ContractRegistry
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.metrics import SourceMetrics
from pharmaflow.ingest.sources.base import RawBatch, Source
from pharmaflow.ingest.sources.files import CsvFileSource, JsonlFileSource
from pharmaflow.ingest.sources.kafka import KafkaSource, kafka_security, parse_kafka_url
from pharmaflow.ingest.sources.postgres import PostgresSource, is_postgres_url, parse_postgres_url

if TYPE_CHECKING:
    from pharmaflow.config import Settings

JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}


STREAM_SCHEMES = ("kafka://", "pubsub://")


def is_stream(spec: str) -> bool:
    """A source that runs until stopped, as stream workers (`ingest/workers.py`)."""
    return spec.startswith(STREAM_SCHEMES)


def stream_kind(spec: str) -> str:
    """`kafka` or `pubsub`: what a stream worker's writer id is named after."""
    return "pubsub" if spec.startswith("pubsub://") else "kafka"


def check_stream_url(spec: str, settings: Settings | None = None) -> None:
    """A bad stream URL as one line, before any worker starts."""
    if spec.startswith("pubsub://"):
        from pharmaflow.ingest.sources.pubsub import parse_pubsub_url

        parse_pubsub_url(spec)
        return
    parse_kafka_url(spec, settings.kafka_bootstrap_servers if settings else None)


def open_sources(
    spec: str,
    registry: ContractRegistry,
    *,
    default_bootstrap: str | None = None,
    stop: threading.Event | None = None,
    idle_exit: float | None = None,
    metrics: SourceMetrics | None = None,
    settings: Settings | None = None,
    kafka_defaults: Mapping[str, Any] | None = None,
) -> list[Source]:
    """A Kafka URL, a Pub/Sub subscription URL, a PostgreSQL table URL, a file, or every
    JSONL/CSV file in a directory (sorted), as sources. `settings` gives a Kafka source its
    credentials and security protocol (`PHARMAFLOW_KAFKA_*`; never in the URL) and, without
    `default_bootstrap`, `KAFKA_BOOTSTRAP_SERVERS`; a Pub/Sub source the lake its ledger of
    handed-over messages lives beside (credentials: Application Default Credentials)."""
    if spec.startswith("pubsub://"):
        from pharmaflow.config import Settings
        from pharmaflow.ingest.sources.pubsub import PubSubSource, parse_pubsub_url

        pubsub = parse_pubsub_url(spec)
        lake_dir = (settings or Settings()).lake_dir
        return [PubSubSource(pubsub, lake_dir, stop, idle_exit, metrics)]
    if is_stream(spec):
        if default_bootstrap is None and settings is not None:
            default_bootstrap = settings.kafka_bootstrap_servers
        kafka = parse_kafka_url(spec, default_bootstrap, kafka_defaults)
        return [KafkaSource(kafka, stop, idle_exit, metrics, kafka_security(settings))]
    if is_postgres_url(spec):
        return [PostgresSource(parse_postgres_url(spec)).check()]
    if "://" in spec:
        scheme = spec.split("://", 1)[0]
        raise PharmaflowError(
            f"source scheme {scheme}:// is not supported "
            "(kafka://, pubsub://, postgresql:// or files)"
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and (p.suffix in JSON_SUFFIXES or p.suffix == ".csv")
        )
        if not files:
            raise PharmaflowError(f"no .jsonl or .csv files in {path}")
        return [_file_source(p, registry) for p in files]
    if not path.exists():
        raise PharmaflowError(f"source not found: {path}")
    return [_file_source(path, registry)]


def _file_source(path: Path, registry: ContractRegistry) -> Source:
    if path.suffix == ".csv":
        return CsvFileSource(path)
    if path.suffix in JSON_SUFFIXES:
        return JsonlFileSource(path)
    raise PharmaflowError(f"{path}: unknown file type {path.suffix!r} (use .jsonl or .csv)")


__all__ = [
    "CsvFileSource",
    "JsonlFileSource",
    "KafkaSource",
    "PostgresSource",
    "RawBatch",
    "Source",
    "check_stream_url",
    "is_stream",
    "open_sources",
    "stream_kind",
]
