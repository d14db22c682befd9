"""Property: whatever ingest lets into bronze, `pharmaflow build` stays green.

Hypothesis writes files of odd-but-valid and malformed events (the generators of
tests/integration/ingest/test_ingest_properties.py: huge in-range quantities and prices,
9-digit fractions, far offsets, Unicode free text, repeated keys, truncated lines, ...). Every
file of every example is ingested into ONE data dir, so the lake ends up holding all of them;
then the warehouse is built once, and once more after another batch of examples (incremental).
Each build must succeed with every dbt test passing, silver must hold every landed event except
those it set aside (each listed with its rule), and gold must exist in full.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.warehouse.runner import build
from tests.conftest import TEST_KEYS
from tests.integration.ingest.test_ingest_properties import line

pytestmark = pytest.mark.slow


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        ingest_workers=0,
        batch_size=32,
    )


def _ingest_examples(data_dir: Path, examples: int, seed: int) -> int:
    """Ingest `examples` Hypothesis-generated files into the data dir; return lines landed."""
    landed: list[int] = []
    files = iter(range(10**6))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(lines=st.lists(line(), min_size=1, max_size=40))
    def ingest_one(lines: list[tuple[bytes, tuple]]) -> None:
        path = data_dir.parent / f"input-{seed}-{next(files)}.jsonl"
        path.write_bytes(b"\n".join(text for text, _ in lines) + b"\n")
        engine = IngestEngine(_settings(data_dir))
        result = engine.run(open_sources(str(path), engine.registry))
        assert result.conserved
        landed.append(result.landed)

    ingest_one()
    return sum(landed)


def _counts(settings_: Settings) -> tuple[int, int, set[str]]:
    """(silver rows, distinct set-aside events, gold tables) of the built warehouse."""
    # default configuration: dbt ran in this process and its DuckDB instance may be open
    with duckdb.connect(str(settings_.warehouse_path)) as con:
        silver_tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'silver' and table_name <> '_rejected'"
            ).fetchall()
        ]
        silver = sum(
            con.execute(f'select count(*) from silver."{t}"').fetchone()[0] for t in silver_tables
        )
        rejected = con.execute("select count(distinct event_id) from silver._rejected").fetchone()
        gold = {
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'gold'"
            ).fetchall()
        }
    return silver, rejected[0], gold


def test_build_stays_green_whatever_ingest_landed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings_ = _settings(data_dir)
    landed = _ingest_examples(data_dir, examples=40, seed=1)
    assert landed > 0

    first = build(settings_)
    assert first.success, first.failures
    assert first.tests_failed == 0
    silver, rejected, gold = _counts(settings_)
    # every landed event is in silver or set aside with a reason (ingest dedupes across files,
    # so the landed count is of distinct events)
    assert silver + rejected == landed
    assert {"fact_order_lifecycle", "fact_sales_daily", "fact_survey", "kpi_nps"} <= gold

    landed += _ingest_examples(data_dir, examples=15, seed=2)
    second = build(settings_)
    assert second.success, second.failures
    assert second.full_refresh_reason is None  # incremental
    silver, rejected, _ = _counts(settings_)
    assert silver + rejected == landed
