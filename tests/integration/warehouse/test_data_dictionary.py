"""The data dictionary is generated from the dbt project and kept true by these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmaflow.config import Settings
from pharmaflow.warehouse.dictionary import parse_manifest, render, undocumented

pytestmark = pytest.mark.slow
COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "data-dictionary.md"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory):
    return parse_manifest(Settings(data_dir=tmp_path_factory.mktemp("docs")))


def test_every_table_and_column_is_described(manifest):
    assert undocumented(manifest) == []


def test_committed_dictionary_matches_the_project(manifest):
    assert COMMITTED.read_text() == render(manifest), "run `make docs` and commit the result"


def test_dictionary_covers_the_gold_star_schema(manifest):
    text = render(manifest)
    for table in (
        "gold.fact_order_lifecycle",
        "gold.fact_batch_production",
        "gold.dim_patient",
        "gold.daily_order_summary",
        "silver.pharmacy_order_placed",
    ):
        assert f"### `{table}`" in text
    assert "| `hours_to_deliver` |" in text and "| `yield_pct` |" in text
