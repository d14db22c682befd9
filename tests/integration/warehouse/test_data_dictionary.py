"""The data dictionary is generated from the dbt project and kept true by these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmaflow.config import Settings
from pharmaflow.warehouse.dictionary import lineage_page, parse_manifest, render, undocumented

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


def test_dictionary_shows_lineage_and_dbt_renders_its_lineage_site(manifest, tmp_path):
    text = render(manifest)
    fact = text.split("### `gold.fact_order_lifecycle`")[1].split("### ")[0]
    assert "Built from: " in fact
    assert "`silver.pharmacy_order_placed`" in fact and "`gold.dim_facility`" in fact
    page = lineage_page(Settings(data_dir=tmp_path / "site")).read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "model.pharmaflow.fact_order_lifecycle" in page  # the manifest is inlined
