from datetime import datetime

import pyarrow as pa

from pharmaflow.lake.commits import CommitLog
from pharmaflow.lake.files import write_parquet_atomic
from pharmaflow.lake.layout import LakeLayout

WHEN = datetime(2026, 11, 2, 10)


def _part(layout, batch):
    path = layout.bronze_part("sales.sale.completed", WHEN, batch)
    write_parquet_atomic(pa.table({"x": [1]}), path)
    return path


def test_recovery_removes_uncommitted_parts_and_temp_files_only(tmp_path):
    layout = LakeLayout(tmp_path / "lake")
    vault_dir = tmp_path / "vault" / "patients"
    log = CommitLog(layout, [vault_dir])
    kept = _part(layout, "b1")
    log.commit("b1", {"files": [str(kept)]})
    orphan = _part(layout, "b2")
    orphan_vault = vault_dir / "part-b2.parquet"
    write_parquet_atomic(pa.table({"x": [1]}), orphan_vault)
    temp = kept.with_name(".tmp-123-part-b3.parquet")
    temp.write_bytes(b"half a file")

    removed = CommitLog(layout, [vault_dir]).recover()
    assert set(removed) == {orphan, orphan_vault, temp}
    assert kept.exists() and not orphan.exists()
    assert CommitLog(layout, [vault_dir]).is_committed("b1")


def test_partitions_are_by_ingest_date_and_hour(tmp_path):
    layout = LakeLayout(tmp_path)
    path = layout.bronze_part("pharmacy.order.placed", WHEN, "b1")
    assert path.relative_to(tmp_path).as_posix() == (
        "bronze/event_type=pharmacy.order.placed/date=2026-11-02/hour=10/part-b1.parquet"
    )


def test_phi_scan_finds_what_it_is_meant_to_find():
    """The leak scanner used by the PHI tests must not be blind."""
    from tests.phi_scan import leaks

    col = pa.array(["order for Zoë Quillfeather, MRN00123456", "call (415) 555-0134", None, "Zoey"])
    found = leaks(
        [col, "log line with 1950-05-02"],
        {"MRN00123456", "(415) 555-0134", "1950-05-02", "absent@example.com"},
        {"Zoë", "Quillfeather", "Zo"},
    )
    assert found == ["(415) 555-0134", "1950-05-02", "MRN00123456", "Quillfeather", "Zoë"]
