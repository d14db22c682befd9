"""`run_checks` on real data: a small data dir simulated up to today, ingested and built once
for the module (the only build here), read-only; a lake with malformed input; consumer groups
on a real broker; build logs written by the build log's own API.

Each breach comes from the data or the clock, never from a stub: a source goes stale when
`now` moves on, gold when its newest event falls behind, orders when their promise passes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pharmaflow.config import Settings
from pharmaflow.orchestrate.check import CheckReport, CheckResult, run_checks
from pharmaflow.orchestrate.checks import RULES
from pharmaflow.orchestrate.checks.gold import GOLD_TABLES, KPI_SOURCES
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from pharmaflow.warehouse import build_log, publish
from tests.conftest import TEST_KEYS
from tests.factories import build_record
from tests.kafka import embedded_broker

pytestmark = pytest.mark.slow

# A check that waited on a lock, a hung broker or a timeout it ignores would take far longer:
# a generous bound (the CI machine is busy) still tells that apart. Speed itself is not tested.
HANG_BOUND_S = 10.0
GOLD_SUBJECTS = {f"gold.{t.table}" for t in GOLD_TABLES} | {f"gold.{k}" for k in KPI_SOURCES}


def data_settings(root: Path, **extra: object) -> Settings:
    values: dict[str, object] = {"kafka_bootstrap_servers": None, **extra}
    return Settings(
        data_dir=root,
        batch_size=20_000,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        **values,
    )


# Gold tables a two-day window at scale 0.1 may leave empty, by the day it is drawn: deviations
# are rare, and a survey follows a delivery by days (the window of 2026-12-02 to 12-03 held
# neither), so kpi_nps, rebuilt from fact_survey, has no rows either
SPARSE_GOLD = {
    ("freshness_gold", f"gold.{table}") for table in ("fact_deviation", "fact_survey", "kpi_nps")
}


def no_rows(result: CheckResult) -> bool:
    """The rule found an empty table (or a KPI rebuilt from one): nothing to judge."""
    return result.detail.endswith("no rows yet")


def today_window(days: int = 2) -> SimConfig:
    """Events from yesterday midnight to tomorrow's: fresh now (ingest takes events up to a
    day ahead of the ingest time)."""
    start = datetime.now(UTC).date() - timedelta(days=1)
    return SimConfig(seed=5, days=days, scale=0.1, start=date(start.year, start.month, start.day))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Simulated up to today, ingested and built (read it only)."""
    from pharmaflow.cli.ingest import run_ingest
    from pharmaflow.warehouse.runner import build

    folder = tmp_path_factory.mktemp("check-fresh")
    events = folder / "events.jsonl"
    simulate(today_window(), events)
    settings = data_settings(folder / "data")
    run_ingest(settings, str(events))
    result = build(settings)
    assert result.success, result.failures
    return settings


def by_rule(report: CheckReport, rule: str) -> dict[str, object]:
    return {r.subject: r for r in report.results if r.check == rule}


def test_fresh_data_passes_every_rule(fresh):
    report = run_checks(fresh)
    assert report.ok, [r for r in report.results if r.status != "ok"]
    assert [r.check for r in report.results] == sorted(
        (r.check for r in report.results), key=RULES.index
    )
    # no Kafka in this data dir; a small window may hold no deviation or survey at all
    empty = {(r.check, r.subject) for r in report.results if no_rows(r)}
    assert empty <= SPARSE_GOLD
    not_ok = [(r.check, r.subject) for r in report.results if r.status != "ok"]
    assert sorted(set(not_ok) - empty) == [("consumer_lag", "kafka")]
    sources = by_rule(report, "freshness_source")
    assert {"pharmacy.order.placed", "logistics.shipment.created", "sales.sale.completed"} <= set(
        sources
    )
    assert set(by_rule(report, "freshness_gold")) == GOLD_SUBJECTS
    assert by_rule(report, "delivery_sla")["orders"].value <= 50
    assert by_rule(report, "failed_tests")["warehouse"].value == 0
    assert by_rule(report, "build_age")["warehouse"].value < 0.5


def test_checks_change_nothing_in_the_data_dir(fresh):
    def listing() -> dict[str, tuple[int, int]]:
        return {
            str(p): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in fresh.root.rglob("*")
            if p.is_file() and "logs" not in p.parts
        }

    before = listing()
    run_checks(fresh)
    assert listing() == before


def test_a_source_goes_stale_when_nothing_arrives(fresh):
    report = run_checks(fresh, now=datetime.now(UTC) + timedelta(hours=3))
    sources = by_rule(report, "freshness_source")
    assert sources and all(r.status == "breach" for r in sources.values())
    assert all(r.value >= 180 and r.unit == "minutes" for r in sources.values())
    assert all("newest batch ingested" in r.detail for r in sources.values())
    assert not report.ok


def test_gold_goes_stale_when_its_newest_event_falls_behind(fresh):
    meta = publish.current(fresh.snapshots_dir)
    with duckdb.connect(str(meta.path), read_only=True) as con:
        newest = con.execute("select max(status_changed_at) from gold.fact_order_lifecycle")
        newest_order = newest.fetchone()[0].replace(tzinfo=UTC)
    now = newest_order + timedelta(hours=30)
    gold = by_rule(run_checks(fresh, now=now, only=["freshness_gold"]), "freshness_gold")
    orders = gold["gold.fact_order_lifecycle"]
    assert orders.status == "breach" and orders.value == pytest.approx(30.0, abs=0.01)
    assert gold["gold.kpi_fulfilment"].value == orders.value  # rebuilt from it every build
    assert "rebuilt from gold.fact_order_lifecycle" in gold["gold.kpi_fulfilment"].detail
    assert all(r.status == "breach" for r in gold.values() if r.status != "unknown")

    lenient = fresh.model_copy(update={"check_gold_max_age_hours": 31.0})
    gold = by_rule(run_checks(lenient, now=now, only=["freshness_gold"]), "freshness_gold")
    assert gold["gold.fact_order_lifecycle"].status == "ok"


def test_orders_past_their_promise_breach_the_delivery_sla(fresh):
    now = datetime.now(UTC) + timedelta(days=30)
    [sla] = run_checks(fresh, now=now, only=["delivery_sla"]).results
    # the same question answered from the rows, in Python
    meta = publish.current(fresh.snapshots_dir)
    with duckdb.connect(str(meta.path), read_only=True) as con:
        orders = con.execute(
            "select shipment_id from gold.fact_order_lifecycle "
            "where delivered_at is null and cancelled_at is null and shipment_id is not null"
        ).fetchall()
        shipments = dict(
            con.execute(
                "select shipment_id, promised_delivery_time from gold.fact_shipment "
                "where delivered_at is null and promised_delivery_time is not null"
            ).fetchall()
        )
    cutoff = now.replace(tzinfo=None)
    expected = sum(1 for (s,) in orders if s in shipments and shipments[s] < cutoff)
    assert expected > 50
    assert sla.status == "breach" and sla.value == expected and sla.unit == "orders"
    assert f"{expected:,} order(s)" in sla.detail and "h overdue" in sla.detail
    assert "ORD-" not in sla.detail and "SHP-" not in sla.detail  # counts only

    graced = fresh.model_copy(
        update={"check_delivery_sla_grace_hours": 24 * 60.0, "check_delivery_sla_max_breaches": 0}
    )
    [none] = run_checks(graced, now=now, only=["delivery_sla"]).results
    assert none.status == "ok" and none.value == 0


def test_serving_in_this_process_and_a_build_holding_the_warehouse_do_not_block_it(fresh):
    """The API's /metrics runs the checks beside its own snapshot reader; a build holds the
    warehouse file for writing in another process. Neither stops the checks."""
    from pharmaflow.serve.snapshots import ServingWarehouse

    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', "
            "flush=True); time.sleep(60)",
            str(fresh.warehouse_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        serving = ServingWarehouse(fresh.snapshots_dir)
        try:
            with serving.reading() as snap:
                snap.cursor().execute("select count(*) from gold.fact_shipment").fetchone()
                started = time.monotonic()
                report = run_checks(fresh, only=["freshness_gold", "delivery_sla"])
                assert time.monotonic() - started < HANG_BOUND_S
        finally:
            serving.close()
    finally:
        holder.kill()
        holder.wait()
    judged = [r for r in report.results if not no_rows(r)]  # see the first test
    assert {(r.check, r.subject) for r in report.results if r not in judged} <= SPARSE_GOLD
    assert all(r.status == "ok" for r in judged), report.results


def test_a_lake_with_malformed_input_breaches_the_dead_letter_rate(tmp_path):
    events = tmp_path / "events.jsonl"
    simulate(today_window(days=1).model_copy(update={"scale": 0.03}), events)
    lines = events.read_bytes().splitlines()
    garbage = [b'{"event_id": "broken' + str(i).encode() for i in range(len(lines) // 5)]
    events.write_bytes(b"\n".join(lines + garbage) + b"\n")
    settings = data_settings(tmp_path / "data")
    from pharmaflow.cli.ingest import run_ingest

    run_ingest(settings, str(events))
    [rate] = run_checks(settings, only=["dead_letter_rate"]).results
    landed = sum(
        pq.read_metadata(p).num_rows for p in settings.lake_dir.glob("bronze/**/*.parquet")
    )
    quarantined = sum(
        pq.read_metadata(p).num_rows for p in settings.lake_dir.glob("quarantine/**/*.parquet")
    )
    assert quarantined >= len(garbage)
    assert rate.status == "breach"
    assert rate.value == pytest.approx(quarantined / (landed + quarantined), abs=1e-4)
    assert "malformed_json" in rate.detail

    # the same lake, judged a day and more later: nothing ingested in the window
    [later] = run_checks(
        settings, now=datetime.now(UTC) + timedelta(hours=25), only=["dead_letter_rate"]
    ).results
    assert later.status == "unknown"


def test_an_old_last_success_breaches_build_age(tmp_path):
    settings = data_settings(tmp_path / "data")
    now = datetime.now(UTC)
    build_log.append(settings.warehouse_dir, build_record(now - timedelta(hours=9)))
    build_log.append(settings.warehouse_dir, build_record(now - timedelta(hours=1), "error"))
    report = run_checks(settings, only=["build_age"])
    [age] = report.results
    assert age.status == "breach" and age.value == pytest.approx(9.0, abs=0.01)
    assert not report.ok


def test_failed_tests_of_the_newest_build_breach(tmp_path):
    settings = data_settings(tmp_path / "data")
    names = ["unique_fact_shipment_shipment_id", "not_null_fact_order_lifecycle_order_id"]
    build_log.append(
        settings.warehouse_dir,
        build_record(
            datetime.now(UTC), "tests_failed", tests_passed=465, tests_failed=2, failed_tests=names
        ),
    )
    [failed] = run_checks(settings, only=["failed_tests"]).results
    assert failed.status == "breach" and failed.value == 2
    assert all(n in failed.detail for n in names)


# --- Kafka ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker with topics `check.one` (1 partition, offsets 0-9) and `check.two` (2
    partitions, offsets 0-2 each). One record per produce call: Tansu reports a partition's
    high watermark as its last record batch's base offset + 1."""
    with embedded_broker(tmp_path_factory.mktemp("check-broker") / "b", partitions=1) as info:
        admin = AdminClient({"bootstrap.servers": info.bootstrap})
        for future in admin.create_topics(
            [NewTopic("check.one", 1, 1), NewTopic("check.two", 2, 1)]
        ).values():
            future.result(30)
        producer = Producer({"bootstrap.servers": info.bootstrap, "linger.ms": 0})
        for topic, partition, n in (("check.one", 0, 10), ("check.two", 0, 3), ("check.two", 1, 3)):
            for i in range(n):
                producer.produce(topic, value=b"x%d" % i, partition=partition)
                assert producer.flush(10) == 0
        yield info.bootstrap


def commit_offsets(bootstrap: str, group: str, offsets: list[tuple[str, int, int]]) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for t, p, o in offsets], asynchronous=False
        )
    finally:
        consumer.close()


def test_consumer_lag_sums_what_each_group_has_not_committed(broker, tmp_path):
    commit_offsets(broker, "check-behind", [("check.one", 0, 4)])
    commit_offsets(broker, "check-current", [("check.one", 0, 10)])
    commit_offsets(broker, "check-partial", [("check.two", 0, 3)])  # partition 1: never
    settings = data_settings(
        tmp_path / "data",
        kafka_bootstrap_servers=broker,
        check_groups=["check-behind", "check-current", "check-partial", "check-unused"],
        check_consumer_max_lag=5,
    )
    started = time.monotonic()
    lags = by_rule(run_checks(settings, only=["consumer_lag"]), "consumer_lag")
    assert time.monotonic() - started < HANG_BOUND_S
    assert (lags["check-behind"].status, lags["check-behind"].value) == ("breach", 6)
    assert (lags["check-current"].status, lags["check-current"].value) == ("ok", 0)
    partial = lags["check-partial"]
    assert (partial.status, partial.value) == ("ok", 3)  # all of the uncommitted partition
    assert "2 partition(s) of 1 topic(s)" in partial.detail
    assert lags["check-unused"].status == "unknown"
    assert "no committed offsets" in lags["check-unused"].detail


def test_the_default_groups_are_judged_once_they_commit(broker, tmp_path):
    settings = data_settings(tmp_path / "data", kafka_bootstrap_servers=broker)
    [none] = run_checks(settings, only=["consumer_lag"]).results
    assert (none.subject, none.status) == ("kafka", "unknown")
    assert "pharmaflow-ingest" in none.detail

    commit_offsets(broker, "pharmaflow-realtime", [("check.one", 0, 9)])
    [realtime] = run_checks(settings, only=["consumer_lag"]).results
    assert (realtime.subject, realtime.status, realtime.value) == ("pharmaflow-realtime", "ok", 1)


def test_no_kafka_configured_is_unknown(tmp_path):
    for servers in (None, "", "  "):
        settings = data_settings(tmp_path / "data").model_copy(
            update={"kafka_bootstrap_servers": servers, "check_groups": ["g"]}
        )
        [result] = run_checks(settings, only=["consumer_lag"]).results
        assert (result.subject, result.status) == ("g", "unknown")
        assert "no Kafka configured" in result.detail


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_broker_is_unknown_within_the_timeout(tmp_path, busy_port, kind):
    import socket

    if kind == "refused":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # closed again: nothing listens
    else:
        port = busy_port  # listens, never answers
    settings = data_settings(
        tmp_path / "data", kafka_bootstrap_servers=f"127.0.0.1:{port}", check_kafka_timeout_s=0.5
    )
    started = time.monotonic()
    [result] = run_checks(settings, only=["consumer_lag"]).results
    assert time.monotonic() - started < HANG_BOUND_S
    assert result.status == "unknown" and "in time" in result.detail


def test_an_unreachable_postgres_warehouse_is_unknown(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = data_settings(
        tmp_path / "data",
        warehouse_target="postgres",
        warehouse_dsn=f"postgresql://check:s3cret-pw@127.0.0.1:{port}/warehouse",
        check_warehouse_timeout_s=1.0,
    )
    report = run_checks(settings, only=["freshness_gold", "delivery_sla"])
    assert report.ok and report.results
    assert all(r.status == "unknown" for r in report.results)
    assert all("PostgreSQL warehouse" in r.detail for r in report.results)
    assert not any("s3cret-pw" in r.detail for r in report.results)
