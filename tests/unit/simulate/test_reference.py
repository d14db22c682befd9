"""Reference data loads from the packaged seeds or from a user's own files."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from pharmaflow.contracts.reference import DEFAULT_DIR, load_reference


def test_packaged_seeds_load_with_typed_rows() -> None:
    ref = load_reference()
    assert [f.facility_id for f in ref.plants] == ["PL-01", "PL-02", "PL-03"]
    assert len(ref.dcs) == 4 and len(ref.pharmacies) == 25
    assert all(p.cold_chain and p.storage == "COLD_CHAIN" for p in ref.cold_chain_products)
    assert ref.product("00074-0554-02").list_price == Decimal("6922.30")
    assert isinstance(ref.equipment[0].capacity_kg, float)
    assert ref.carriers[0].cold_chain_capable is True
    assert {e.site_id for e in ref.equipment} <= {p.facility_id for p in ref.plants}
    assert ref.equipment_at("PL-02")[0].equipment_id == "EQ-PL02-01"
    with pytest.raises(KeyError):
        ref.facility("PL-99")


def test_user_files_with_extra_columns_load(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_DIR, tmp_path, dirs_exist_ok=True)
    payers = tmp_path / "payers.csv"
    lines = payers.read_text().splitlines()
    payers.write_text("\n".join([lines[0] + ",region"] + [f"{line},US" for line in lines[1:]]))
    assert len(load_reference(tmp_path).payers) == len(lines) - 1


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "carriers.csv").write_text("carrier_id,name\nCR-X,X\n")
    with pytest.raises(ValueError, match=r"carriers\.csv.*cold_chain_capable"):
        load_reference(tmp_path)
