"""freshness_source and dead_letter_rate from manifests written the way a commit writes them
(lake.commits.CommitLog), hostile manifests beside them; and the consumer groups the lag rule
judges by default, against the modules that define them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pharmaflow.config import Settings
from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.layout import LakeLayout
from pharmaflow.orchestrate.checks.kafka import PLATFORM_GROUPS
from pharmaflow.orchestrate.checks.lake import dead_letter_rate, freshness_source, summarise

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        check_source_max_age_minutes=60.0,
        check_dead_letter_window_hours=24.0,
        check_dead_letter_max_rate=0.05,
    )


def commit(
    settings: Settings,
    batch: str,
    ingested: datetime,
    types: list[str],
    landed: int,
    quarantined: int = 0,
    reasons: dict[str, int] | None = None,
) -> None:
    layout = LakeLayout(settings.lake_dir)
    layout.manifests.mkdir(parents=True, exist_ok=True)
    naive = ingested.astimezone(UTC).replace(tzinfo=None)
    files = [str(layout.bronze_part(t, naive, batch).relative_to(settings.root)) for t in types] + [
        str(layout.quarantine_part(naive, batch).relative_to(settings.root))
    ]
    manifest = {
        "source": "file",
        "ingest_time": naive.isoformat(),
        "counts": {
            "records": landed + quarantined,
            "landed": landed,
            "duplicates": 3,
            "quarantined": quarantined,
            "blank": 0,
        },
        "quarantine_reasons": reasons or {},
        "files": files,
    }
    CommitLog(layout, []).commit(batch, manifest)


def by_subject(results):
    return {r.subject: r for r in results}


def test_no_lake_is_unknown(settings):
    [fresh] = freshness_source(settings, NOW)
    [rate] = dead_letter_rate(settings, NOW)
    assert (fresh.subject, fresh.status) == ("lake", "unknown")
    assert (rate.subject, rate.status) == ("ingest", "unknown")


def test_each_event_type_is_as_fresh_as_its_newest_batch(settings):
    commit(
        settings,
        "b1",
        NOW - timedelta(hours=5),
        ["pharmacy.order.placed", "sales.sale.completed"],
        10,
    )
    commit(settings, "b2", NOW - timedelta(minutes=20), ["pharmacy.order.placed"], 5)
    results = by_subject(freshness_source(settings, NOW))
    assert set(results) == {"pharmacy.order.placed", "sales.sale.completed"}
    placed, sales = results["pharmacy.order.placed"], results["sales.sale.completed"]
    assert placed.status == "ok" and placed.value == pytest.approx(20.0)
    assert sales.status == "breach" and sales.value == pytest.approx(300.0)
    assert sales.unit == "minutes" and sales.threshold == 60.0


def test_a_quiet_event_type_gets_its_own_limit(settings):
    commit(settings, "b1", NOW - timedelta(hours=5), ["manufacturing.deviation.opened"], 1)
    quiet = settings.model_copy(
        update={"check_source_max_age_by_type": {"manufacturing.deviation.opened": 1440.0}}
    )
    [result] = freshness_source(quiet, NOW)
    assert result.status == "ok" and result.threshold == 1440.0


def test_dead_letter_rate_counts_the_window_and_leaves_duplicates_out(settings):
    commit(settings, "old", NOW - timedelta(hours=30), ["sales.sale.completed"], 0, 1000)
    commit(
        settings, "new1", NOW - timedelta(hours=2), ["sales.sale.completed"], 90, 6,
        {"malformed_json": 4, "out_of_range": 2},
    )  # fmt: skip
    commit(
        settings,
        "new2",
        NOW - timedelta(hours=1),
        ["sales.sale.completed"],
        0,
        4,
        {"malformed_json": 4},
    )
    [result] = dead_letter_rate(settings, NOW)
    assert result.status == "breach"
    assert result.value == pytest.approx(10 / 100)  # 3 duplicates per batch count for nothing
    assert result.unit == "ratio" and result.threshold == 0.05
    assert "10 of 100 records" in result.detail and "2 batch(es)" in result.detail
    assert "malformed_json 8, out_of_range 2" in result.detail

    lenient = settings.model_copy(update={"check_dead_letter_max_rate": 0.1})
    assert dead_letter_rate(lenient, NOW)[0].status == "ok"
    [quiet] = dead_letter_rate(settings, NOW + timedelta(days=3))
    assert quiet.status == "unknown" and "no record ingested in the last 24 h" in quiet.detail


def test_unreadable_manifests_are_skipped_and_said(settings):
    commit(settings, "good", NOW - timedelta(minutes=5), ["sales.sale.completed"], 10)
    manifests = LakeLayout(settings.lake_dir).manifests
    (manifests / "torn.json").write_bytes(b'{"ingest_time": "2026-')
    (manifests / "array.json").write_bytes(b"[1, 2]")
    (manifests / "badcount.json").write_bytes(
        b'{"ingest_time": "2026-12-02T11:00:00", "counts": {"landed": "many"}, "files": []}'
    )
    (manifests / ".tmp-123-inflight.json").write_bytes(b"{}")  # a commit in progress: ignored
    [fresh] = freshness_source(settings, NOW)
    assert fresh.status == "ok" and "3 unreadable manifest(s) skipped" in fresh.detail
    [rate] = dead_letter_rate(settings, NOW)
    assert rate.value == 0.0 and "3 unreadable" in rate.detail


def test_a_batch_committed_since_the_last_run_is_seen(settings):
    commit(settings, "b1", NOW - timedelta(hours=3), ["sales.sale.completed"], 10)
    assert freshness_source(settings, NOW)[0].status == "breach"
    commit(settings, "b2", NOW - timedelta(minutes=1), ["sales.sale.completed"], 10)
    assert freshness_source(settings, NOW)[0].status == "ok"


@pytest.mark.parametrize(
    "manifest",
    [
        [],
        {"counts": {}, "files": []},  # no ingest_time
        {"ingest_time": "soon", "files": []},
        {"ingest_time": "2026-12-02T11:00:00", "files": "lake/bronze/event_type=x/"},
        {"ingest_time": "2026-12-02T11:00:00", "counts": {"quarantined": -1}},
        {"ingest_time": "2026-12-02T11:00:00", "counts": {"landed": True}},
        {"ingest_time": "2026-12-02T11:00:00", "quarantine_reasons": ["x"]},
    ],
)
def test_summarise_refuses_what_a_commit_never_writes(manifest):
    with pytest.raises((TypeError, ValueError, KeyError)):
        summarise(manifest)


def test_summarise_reads_event_types_from_bronze_paths_only():
    summary = summarise(
        {
            "ingest_time": "2026-12-02T11:00:00",
            "counts": {"landed": 3},
            "files": [
                "lake/bronze/event_type=a.b.c/date=2026-12-02/hour=11/part-x.parquet",
                "lake/_event_ids/date=2026-11-01/part-x.parquet",
                "lake/quarantine/date=2026-12-02/hour=11/part-x.parquet",
                "vault/patients/part-x.parquet",
                7,
            ],
        }
    )
    assert summary.event_types == {"a.b.c"} and summary.landed == 3
    assert summary.ingest_time == datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


def test_the_default_groups_are_the_ones_the_commands_use():
    from pharmaflow.ingest.sources.kafka import DEFAULT_GROUP
    from pharmaflow.orchestrate.local import GROUPS
    from pharmaflow.realtime.workers import REALTIME_GROUP

    assert set(PLATFORM_GROUPS) == {DEFAULT_GROUP, REALTIME_GROUP, *GROUPS.values()}
