"""Speed-layer workers: `pharmaflow realtime --source kafka://… --workers N`.

The same supervision as ingest's workers (`ingest/workers.py`: N processes in one consumer
group, crashed ones started again, one error line for N alike), with the speed layer in each
process. Its consumer group defaults to `pharmaflow-realtime`, apart from ingest's, so both read
every event. Worker slot 0 evaluates the alert rules: rules read the state of all partitions,
so exactly one worker of a group owns the incidents (on several machines: pass `--no-alerts`
to all but one).
"""

from __future__ import annotations

import logging

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources import is_stream, open_sources
from pharmaflow.ingest.sources.kafka import parse_kafka_url
from pharmaflow.ingest.workers import run_worker_group, stop_on_signals, unattended, writer_id
from pharmaflow.realtime.engine import RealtimeResult, SpeedLayer
from pharmaflow.realtime.metrics import RealtimeMetrics

log = logging.getLogger(__name__)

REALTIME_GROUP = "pharmaflow-realtime"
# What the speed layer asks of its Kafka source where the URL does not say (KafkaSpec). Its
# promise is latency: a partial batch is handed over after 100 ms (ingest: 1 s), so at 20k
# events/s batches of ~2k commit well within a second; the broker holds a fetch 20 ms at most;
# offset commits to the group are not waited for (the store holds the offsets that count).
KAFKA_DEFAULTS = {
    "group": REALTIME_GROUP,
    "max_wait_ms": 100,
    "fetch_wait_ms": 20,
    "sync_commit": False,
}


def group_of(source: str, settings: Settings) -> str:
    """The consumer group whose state the store keeps (a file replay: its own group)."""
    if is_stream(source):
        return parse_kafka_url(source, settings.kafka_bootstrap_servers, KAFKA_DEFAULTS).group
    return f"{REALTIME_GROUP}-replay"


def run_realtime_worker(
    settings: Settings,
    source: str,
    slot: int = 0,
    idle_exit: float | None = None,
    metrics_port: int | None = None,
    alerts: bool = True,
) -> RealtimeResult:
    """One speed-layer worker in this process, until stopped (signal), idle for `idle_exit`
    seconds (Kafka) or at the end of its files."""
    metrics = RealtimeMetrics()
    with unattended(metrics, metrics_port), stop_on_signals() as stop:
        layer = SpeedLayer(settings, group_of(source, settings), metrics=metrics, alerts=alerts)
        sources = open_sources(
            source,
            layer.registry,
            default_bootstrap=settings.kafka_bootstrap_servers,
            stop=stop,
            idle_exit=idle_exit,
            settings=settings,
            kafka_defaults=KAFKA_DEFAULTS,
            metrics=metrics.source,
        )
        result = layer.run(sources, writer_id(slot, "realtime"))
        unreachable = [s.unreachable for s in sources]
        if any(unreachable):
            raise PharmaflowError(next(u for u in unreachable if u))
        return result


def run_realtime_group(
    settings: Settings,
    source: str,
    workers: int,
    idle_exit: float | None = None,
    metrics_port: int | None = None,
    alerts: bool = True,
) -> RealtimeResult:
    """`workers` speed-layer processes in one group; slot 0 alone evaluates alerts."""
    parse_kafka_url(source, settings.kafka_bootstrap_servers, KAFKA_DEFAULTS)
    result = run_worker_group(
        settings,
        source,
        workers,
        idle_exit,
        metrics_port,
        command_name="realtime",
        result_type=RealtimeResult,
        extra_args=() if alerts else ("--no-alerts",),
    )
    assert isinstance(result, RealtimeResult)
    return result
