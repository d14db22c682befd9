"""SCD type 2 reference history: a pharmacy that changes region keeps its old orders on the old
region, and orders placed after the change land on the new one.

The change arrives as a new version of the reference file (PHARMAFLOW_REFERENCE_DIR) whose row
carries the time the change took effect (`updated_at`), in the middle of the simulated orders.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from pathlib import Path

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.warehouse.runner import PROJECT_DIR, build

pytestmark = pytest.mark.slow


def query(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    # a copy: dbt's DuckDB instance may still hold the file in this process
    copy = settings.warehouse_dir / "query-copy.duckdb"
    shutil.copyfile(settings.warehouse_path, copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def write_facilities(into: Path, facility_id: str, region: str, effective: dt.datetime) -> None:
    rows = list(csv.DictReader(io.StringIO((PROJECT_DIR / "seeds" / "facilities.csv").read_text())))
    for row in rows:
        if row["facility_id"] == facility_id:
            row["region"] = region
            row["updated_at"] = effective.strftime("%Y-%m-%d %H:%M:%S")
    into.mkdir(parents=True, exist_ok=True)
    with (into / "facilities.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_a_pharmacy_changing_region_keeps_old_orders_on_the_old_region(
    settings, faulty_input, tmp_path, monkeypatch
):
    source, _ = faulty_input
    engine = IngestEngine(settings)
    engine.run(open_sources(str(source), engine.registry))
    first = build(settings)
    assert first.success, first.failures

    # the busiest pharmacy, and the middle of its orders
    pharmacy, old_region, placed = query(
        settings,
        "select pharmacy_id, any_value(pharmacy_region), list(placed_at order by placed_at) "
        "from gold.fact_order_lifecycle where placed_at is not null "
        "group by pharmacy_id order by count(*) desc, pharmacy_id limit 1",
    )[0]
    assert len(placed) >= 4
    effective = placed[len(placed) // 2].replace(microsecond=0)
    before_change = {
        order_id: region
        for order_id, region in query(
            settings,
            "select order_id, pharmacy_region from gold.fact_order_lifecycle where pharmacy_id = ?",
            [pharmacy],
        )
    }
    assert set(before_change.values()) == {old_region}

    reference = tmp_path / "reference"
    write_facilities(reference, pharmacy, "PACIFIC", effective)
    monkeypatch.setenv("PHARMAFLOW_REFERENCE_DIR", str(reference))
    changed_settings = Settings(data_dir=settings.data_dir, batch_size=settings.batch_size)
    second = build(changed_settings)
    assert second.success, second.failures
    assert second.full_refresh_reason is not None  # reference data changed: gold rebuilt

    versions = query(
        changed_settings,
        "select version, region, valid_from, valid_to, is_current from gold.dim_facility "
        "where facility_id = ? order by version",
        [pharmacy],
    )
    assert [(v, r, c) for v, r, _, _, c in versions] == [
        (1, old_region, False),
        (2, "PACIFIC", True),
    ]
    assert versions[0][3] == effective == versions[1][2]
    assert versions[0][2] == dt.datetime(1900, 1, 1)
    assert versions[1][3] == dt.datetime(9999, 12, 31)

    after = query(
        changed_settings,
        "select order_id, placed_at, pharmacy_region, pharmacy_sk = d.facility_sk "
        "from gold.fact_order_lifecycle f join gold.dim_facility d "
        "on d.facility_id = f.pharmacy_id "
        "and d.version = case when f.placed_at < ? then 1 else 2 end "
        "where pharmacy_id = ?",
        [effective, pharmacy],
    )
    assert len(after) == len(before_change)
    old = [r for r in after if r[1] < effective]
    new = [r for r in after if r[1] >= effective]
    assert old and new
    assert {r[2] for r in old} == {old_region}  # last year's figures stay where they were
    assert {r[2] for r in new} == {"PACIFIC"}
    assert all(r[3] for r in after)  # and point at the version they were joined to

    # other pharmacies are untouched
    others = query(
        changed_settings,
        "select count(*) from gold.dim_facility where facility_id <> ? and version > 1",
        [pharmacy],
    )
    assert others == [(0,)]
