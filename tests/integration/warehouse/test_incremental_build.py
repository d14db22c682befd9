"""Incremental builds equal a full refresh, with late, out-of-order and duplicate arrivals.

The simulated input (every fault knob on) arrives in slices, in file order — late events come
slices after their neighbours, some orders' placements after their deliveries. After each slice
is ingested the warehouse is built incrementally; then the same lake is rebuilt with
`--full-refresh` and every gold table must be identical, row for row (multiset difference both
ways), and so must silver. A build with nothing new in between changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.serve.query.ml import SCORE_TABLES
from pharmaflow.warehouse.runner import build

pytestmark = pytest.mark.slow

SLICES = 3


def ingest(settings: Settings, path: Path) -> None:
    engine = IngestEngine(settings)
    engine.run(open_sources(str(path), engine.registry))


def split(path: Path, parts: int, into: Path) -> list[Path]:
    lines = path.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    out = []
    for i in range(parts):
        piece = into / f"slice-{i}.jsonl"
        piece.write_bytes(b"".join(lines[i * size : (i + 1) * size]))
        out.append(piece)
    return out


LATE_ORDER = "ORD-H5-LATE-PLACEMENT"


def add_a_placement_that_arrives_after_its_earlier_delivery(slices: list[Path]) -> None:
    """A gold set-aside across builds: slice 0 brings the delivery of an order whose placement
    (timestamped an hour AFTER the delivery) only comes in the last slice. Until then the
    delivery is used (nothing to compare with); once the placement arrives, the order is
    rebuilt and the delivery set aside (gold._rejected), exactly as a full refresh does."""
    first = slices[0].read_text().splitlines()
    placement = json.loads(next(line for line in first if '"pharmacy.order.placed"' in line))
    placed_at = dt.datetime.fromisoformat(placement["event_time"].replace("Z", "+00:00"))
    delivered_at = placed_at - dt.timedelta(hours=1)
    placement.update(event_id="h5-late-placement", key=LATE_ORDER)
    placement["payload"]["order_id"] = LATE_ORDER
    delivery = {
        **{k: placement[k] for k in ("event_version", "source_system", "trace_id")},
        "event_id": "h5-early-delivery",
        "event_type": "pharmacy.order.delivered",
        "event_time": delivered_at.isoformat().replace("+00:00", "Z"),
        "key": LATE_ORDER,
        "payload": {"order_id": LATE_ORDER},
    }
    with slices[0].open("a") as f:
        f.write(json.dumps(delivery) + "\n")
    with slices[-1].open("a") as f:
        f.write(json.dumps(placement) + "\n")


def late_order(path: Path) -> tuple:
    with duckdb.connect(str(path)) as con:
        return con.execute(
            "select has_placed_event, delivered_at is not null, current_status, "
            "(select count(*) from gold._rejected where event_id = 'h5-early-delivery' "
            " and rule = 'delivered_before_placed') "
            "from gold.fact_order_lifecycle where order_id = ?",
            [LATE_ORDER],
        ).fetchone()


def snapshot(path: Path, into: Path) -> Path:
    """A copy of the warehouse file, so it can be attached while dbt's instance is open."""
    shutil.copyfile(path, into)
    return into


def differences(a: Path, b: Path, schema: str) -> dict[str, tuple[int, int, int]]:
    """Per table of `schema`: (rows, rows only in a, rows only in b), comparing all columns."""
    con = duckdb.connect()
    con.execute(f"attach '{a}' as a (read_only)")
    con.execute(f"attach '{b}' as b (read_only)")
    names_a = tables(con, "a", schema)
    assert names_a == tables(con, "b", schema)
    out = {}
    for name in names_a:
        cols = ", ".join(
            f'"{c}"'
            for (c,) in con.execute(
                "select column_name from information_schema.columns where table_catalog = 'a' "
                "and table_schema = ? and table_name = ? order by ordinal_position",
                [schema, name],
            ).fetchall()
        )
        rel_a, rel_b = f"a.{schema}.{name}", f"b.{schema}.{name}"
        only = "select count(*) from (select {c} from {x} except all select {c} from {y})"
        rows = con.execute(f"select count(*) from {rel_a}").fetchone()[0]
        out[name] = (
            rows,
            con.execute(only.format(c=cols, x=rel_a, y=rel_b)).fetchone()[0],
            con.execute(only.format(c=cols, x=rel_b, y=rel_a)).fetchone()[0],
        )
    con.close()
    return out


def tables(con: duckdb.DuckDBPyConnection, catalog: str, schema: str) -> list[str]:
    return [
        t
        for (t,) in con.execute(
            "select table_name from information_schema.tables where table_catalog = ? "
            "and table_schema = ? and table_type = 'BASE TABLE' order by 1",
            [catalog, schema],
        ).fetchall()
    ]


def order_rows(path: Path) -> dict[str, tuple]:
    # default configuration: dbt ran in this process and may still hold the file open, and
    # DuckDB shares an open database only with connections of the same configuration
    with duckdb.connect(str(path)) as con:
        return {
            r[0]: r[1:]
            for r in con.execute(
                "select order_id, current_status, placed_at, hours_to_deliver, last_ingest_time "
                "from gold.fact_order_lifecycle"
            ).fetchall()
        }


def test_building_slice_by_slice_gives_the_same_warehouse_as_one_full_refresh(
    settings, faulty_input, tmp_path
):
    source, stats = faulty_input
    assert stats.late > 0 and stats.out_of_order > 0 and stats.duplicates > 0
    slices = split(source, SLICES, tmp_path)
    add_a_placement_that_arrives_after_its_earlier_delivery(slices)
    # no lookback: the slices are ingested seconds apart, and the default lookback (hours)
    # would make every incremental build recompute everything and prove nothing
    settings = settings.model_copy(update={"late_lookback_hours": 0})

    reasons, first_orders = [], {}
    for i, piece in enumerate(slices):
        ingest(settings, piece)
        result = build(settings)
        assert result.success, result.failures
        assert result.tests_failed == 0
        reasons.append(result.full_refresh_reason)
        if i == 0:
            first_orders = order_rows(settings.warehouse_path)
            # no placement yet: the delivery is used
            assert late_order(settings.warehouse_path) == (False, True, "DELIVERED", 0)
    # the first build starts from nothing; every later one is incremental
    assert reasons[0] == "first build"
    assert reasons[1:] == [None] * (SLICES - 1)

    # the placement came: the earlier delivery is set aside, the order is only PLACED
    assert late_order(settings.warehouse_path) == (True, False, "PLACED", 1)

    # later slices did not only add orders: they corrected rows built from earlier slices
    last_orders = order_rows(settings.warehouse_path)
    changed = [o for o, row in first_orders.items() if last_orders[o] != row]
    assert changed, "no order of the first slice was updated by a later slice"

    incremental = snapshot(settings.warehouse_path, tmp_path / "incremental.duckdb")

    # a build with nothing new is incremental and changes nothing
    again = build(settings)
    assert again.success and again.full_refresh_reason is None
    unchanged = snapshot(settings.warehouse_path, tmp_path / "again.duckdb")
    for schema in ("silver", "gold"):
        diff = differences(incremental, unchanged, schema)
        assert {name: d for name, d in diff.items() if d[1] or d[2]} == {}

    full = build(settings, full_refresh=True)
    assert full.success, full.failures
    assert full.full_refresh_reason == "requested"

    refreshed = snapshot(settings.warehouse_path, tmp_path / "full.duckdb")
    gold = differences(incremental, refreshed, "gold")
    assert {"fact_order_lifecycle", "fact_batch_production", "fact_shipment"} <= set(gold)
    # every model has rows; the ML score tables stay empty until `pharmaflow score`
    assert all(rows > 0 for name, (rows, _, _) in gold.items() if name not in SCORE_TABLES), gold
    assert all(gold[name][0] == 0 for name in SCORE_TABLES), gold
    assert {name: d for name, d in gold.items() if d[1] or d[2]} == {}
    silver = differences(incremental, refreshed, "silver")
    assert {name: d for name, d in silver.items() if d[1] or d[2]} == {}
