"""Every metric the platform exports follows one naming scheme, is documented, and is what the
shipped rules and dashboard read — checked against the real registries, in process.

The same comparison against running workers and the API is in
tests/integration/observability/test_live_metrics.py; this one is quick and needs no broker.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pharmaflow.config import Settings
from pharmaflow.ingest.metrics import IngestMetrics
from pharmaflow.orchestrate.check import CheckReport, CheckResult
from pharmaflow.realtime.alerts.notifier import NotifierStats
from pharmaflow.realtime.metrics import RealtimeMetrics
from pharmaflow.serve.api import health_metrics
from pharmaflow.serve.api.metrics import ApiMetrics
from tests.unit.observability import deploy_files

NAME = re.compile(r"^pharmaflow_(ingest|realtime|api|build|alerts|check)_[a-z0-9_]+$")
LABELS = {
    "event_type", "reason", "source", "topic", "partition", "route", "outcome", "method",
    "status", "rule", "severity", "transition", "check", "subject", "le",
}  # fmt: skip


def _report(_settings: Settings) -> CheckReport:
    result = CheckResult("freshness_gold", "fact_order_lifecycle", "ok", 10.0, 3600.0, "s")
    return CheckReport(datetime.now(UTC), [result])


@pytest.fixture
def registries(tmp_path, monkeypatch) -> dict[str, CollectorRegistry]:
    """Each part's registry with a sample in every labelled family (so labels can be seen)."""
    monkeypatch.setattr(health_metrics, "_run_checks", _report)
    ingest = IngestMetrics()
    ingest.consumed.labels("kafka").inc()
    ingest.lag.labels("pharma.pharmacy", "0").set(3)
    ingest.count(
        Counter({"order_placed": 2}),
        Counter({"order_placed": 1}),
        Counter({("unknown", "malformed_json"): 1}),
    )
    realtime = RealtimeMetrics()
    realtime.source.consumed.labels("kafka").inc()
    realtime.source.lag.labels("pharma.pharmacy", "0").set(1)
    realtime.events.labels("order_placed").inc()
    realtime.late.labels("order_placed").inc()
    realtime.quarantined.labels("unknown", "malformed_json").inc()
    realtime.duplicates.labels("order_placed").inc()
    rule = SimpleNamespace(id="coldchain_excursion", severity="critical")
    rules = SimpleNamespace(rules=[rule], routes={"slack": object()})
    realtime.watch_alerts(SimpleNamespace(rules=rules, active=1), NotifierStats())  # type: ignore[arg-type]
    api = ApiMetrics(Settings(data_dir=tmp_path / "data"))
    api.requests.labels("/health", "GET", "200").inc()
    api.latency.labels("/health").observe(0.01)
    return {"ingest": ingest.registry, "realtime": realtime.registry, "api": api.registry}


def families(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """name as exported (counters with _total) -> (type, label names)."""
    out = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels}
        out[name] = (family.type, labels)
    return out


def test_every_name_follows_the_scheme(registries):
    for part, registry in registries.items():
        for name, (kind, labels) in families(registry).items():
            assert NAME.match(name), f"{part}: {name} lacks pharmaflow_<part>_"
            if kind == "counter":
                assert name.endswith("_total"), name
            else:
                assert not name.endswith("_total"), name
            if kind in ("histogram", "summary"):
                assert name.endswith("_seconds"), f"{name}: durations are in seconds"
            if "timestamp" in name:
                assert name.endswith("_timestamp_seconds"), name
            assert labels <= LABELS, f"{name}: labels {labels - LABELS} are not in the scheme"


def test_each_part_exports_its_own_names_and_no_two_parts_share_one(registries):
    seen: dict[str, str] = {}
    for part, registry in registries.items():
        for name in families(registry):
            assert name not in seen, f"{name} exported by {seen.get(name)} and {part}"
            seen[name] = part
    by_part = {p: {n.split("_")[1] for n, q in seen.items() if q == p} for p in registries}
    assert by_part == {
        "ingest": {"ingest"},
        "realtime": {"realtime", "alerts"},
        "api": {"api", "build", "check"},
    }


def test_the_rules_and_the_dashboard_read_only_exported_names(registries):
    exported: set[str] = set()
    for registry in registries.values():
        exported |= deploy_files.exported_names(generate_latest(registry).decode())
    assert deploy_files.unexported(exported) == []


def test_the_documented_table_lists_exactly_the_exported_names(registries):
    exported = {name for r in registries.values() for name in families(r)}
    documented = deploy_files.documented_metrics()
    assert sorted(exported - documented) == [], "exported but not in docs/observability.md"
    assert sorted(documented - exported) == [], "in docs/observability.md but not exported"


def test_the_old_unprefixed_ingest_names_are_gone(registries):
    text = generate_latest(registries["ingest"]).decode()
    for old in ("pharmaflow_events_", "pharmaflow_batch_seconds", "pharmaflow_consumer_lag"):
        assert old not in text
