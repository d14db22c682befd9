"""Reference files as history input, and when a build must be a full refresh."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pharmaflow.warehouse import build_state
from pharmaflow.warehouse.history import copy_reference_file
from pharmaflow.warehouse.runner import PROJECT_DIR


def test_a_reference_file_without_updated_at_takes_effect_when_it_was_written(tmp_path):
    src = tmp_path / "in" / "facilities.csv"
    src.parent.mkdir()
    src.write_text("facility_id,facility_type,name,region,state\nPH-1,PHARMACY,A,WEST,CA\n\n")
    os.utime(src, (1_700_000_000, 1_700_000_000))  # 2023-11-14 22:13:20 UTC
    dest = tmp_path / "facilities.csv"
    copy_reference_file(src, dest)
    # a file older than the timezone column gets it empty (gold: the facility counts in UTC)
    assert dest.read_text().splitlines() == [
        "facility_id,facility_type,name,region,state,timezone,updated_at",
        "PH-1,PHARMACY,A,WEST,CA,,2023-11-14 22:13:20",
    ]


def test_a_reference_file_with_updated_at_but_without_timezone_gets_an_empty_one(tmp_path):
    src = tmp_path / "in-facilities.csv"
    src.write_text("facility_id,region,updated_at\nPH-1,WEST,2024-05-01 00:00:00\nPH-2,EAST,\n")
    dest = tmp_path / "facilities.csv"
    copy_reference_file(src, dest)
    assert dest.read_text().splitlines() == [
        "facility_id,region,updated_at,timezone",
        "PH-1,WEST,2024-05-01 00:00:00,",
        "PH-2,EAST,,",
    ]


def test_a_reference_file_with_updated_at_or_without_history_is_copied_as_is(tmp_path):
    text = "facility_id,region,timezone,updated_at\nPH-1,WEST,America/Denver,2024-05-01 00:00:00\n"
    for name in ("facilities.csv", "equipment.csv"):
        src = tmp_path / f"src-{name}"
        src.write_text(text if name == "facilities.csv" else "equipment_id\nEQ-1\n")
        copy_reference_file(src, tmp_path / name)
        assert (tmp_path / name).read_bytes() == src.read_bytes()


def project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    return project


def test_the_fingerprint_is_stable_and_sees_code_and_reference_changes(tmp_path):
    project = project_copy(tmp_path)
    first = build_state.fingerprint(project, "duckdb")
    assert build_state.fingerprint(project, "duckdb") == first
    assert build_state.fingerprint(project, "postgres") != first

    seed = project / "seeds" / "facilities.csv"
    seed.write_text(seed.read_text().replace("MIDWEST", "CENTRAL", 1))
    after_seed = build_state.fingerprint(project, "duckdb")
    assert after_seed != first

    model = project / "models" / "gold" / "pharmacy" / "fact_order_lifecycle.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    assert build_state.fingerprint(project, "duckdb") not in (first, after_seed)


def test_a_full_refresh_is_needed_first_after_a_change_and_after_a_failure(tmp_path):
    wh = tmp_path / "warehouse"
    wh.mkdir()
    assert build_state.needs_full_refresh(wh, "duckdb", "abc") == "first build"
    build_state.record(wh, "duckdb", "abc")
    assert build_state.needs_full_refresh(wh, "duckdb", "abc") is None
    assert build_state.needs_full_refresh(wh, "duckdb", "abd") is not None
    assert build_state.needs_full_refresh(wh, "postgres", "abc") == "first build"
    build_state.mark_unfinished(wh, "duckdb")  # a build started (and was killed, or failed)
    assert build_state.needs_full_refresh(wh, "duckdb", "abc") == build_state.UNFINISHED
    assert build_state.needs_full_refresh(wh, "postgres", "abc") == "first build"
    build_state.restore(wh, "duckdb")  # ... but changed no table (dbt could not start)
    assert build_state.needs_full_refresh(wh, "duckdb", "abc") is None
    build_state.mark_unfinished(wh, "duckdb")
    build_state.record(wh, "duckdb", "abd")  # it finished
    assert build_state.needs_full_refresh(wh, "duckdb", "abd") is None
    (wh / "duckdb-build-state.json").write_text("{truncated")
    assert build_state.needs_full_refresh(wh, "duckdb", "abd") == (
        "the build state file is unreadable"
    )
