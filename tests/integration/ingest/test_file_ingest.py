"""The ingest engine end to end on simulated files: conservation, idempotency, crash safety."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from pharmaflow.simulate.people import patient_pool
from tests.conftest import FAULTY, env_with_keys
from tests.phi_scan import lake_strings, leaks, phi_values


def ingest(settings: Settings, path: Path):
    engine = IngestEngine(settings)
    return engine.run(open_sources(str(path), engine.registry))


def lake_snapshot(root: Path) -> dict[str, str]:
    """Every committed file of the lake, with a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def lake_rows(settings: Settings) -> tuple[set[tuple], set[tuple]]:
    """Bronze and quarantine contents, without ingest times (they differ run to run)."""
    bronze = ds.dataset(settings.lake_dir / "bronze", format="parquet", partitioning=None)
    b = bronze.to_table(
        columns=["event_id", "event_type", "event_time", "event_json", "source_offset"]
    )
    quarantine = ds.dataset(settings.lake_dir / "quarantine", format="parquet", partitioning=None)
    q = quarantine.to_table(columns=["source_offset", "event_id", "reason_code", "reason_field"])
    bronze_rows = set(zip(*(b[c].to_pylist() for c in b.column_names), strict=True))
    quarantine_rows = set(zip(*(q[c].to_pylist() for c in q.column_names), strict=True))
    assert len(bronze_rows) == b.num_rows and len(quarantine_rows) == q.num_rows  # no doubles
    return bronze_rows, quarantine_rows


def test_every_event_is_landed_counted_as_duplicate_or_quarantined(settings, faulty_input):
    path, stats = faulty_input
    result = ingest(settings, path)
    assert result.input == stats.lines
    assert result.landed == stats.valid_unique
    assert result.duplicates == stats.duplicates
    assert result.quarantined == stats.malformed
    assert result.input == result.landed + result.duplicates + result.quarantined
    assert dict(result.landed_by_type) == stats.by_type
    # Each malformed kind the simulator injected is recognised for what it is.
    assert set(result.quarantine_reasons) >= {
        "malformed_json",
        "missing_field",
        "wrong_type",
        "unknown_enum",
        "unknown_event_type",
        "out_of_range",
    }
    bronze, quarantine = lake_rows(settings)
    assert len(bronze) == stats.valid_unique and len(quarantine) == stats.malformed
    assert len({row[0] for row in bronze}) == len(bronze)  # event ids unique in bronze


def test_reingesting_the_same_file_changes_nothing(settings, faulty_input):
    path, stats = faulty_input
    ingest(settings, path)
    before = lake_snapshot(settings.root / "lake")
    vault_before = lake_snapshot(settings.vault_dir)
    again = ingest(settings, path)
    assert again.replayed == stats.lines and again.landed == again.quarantined == 0
    assert lake_snapshot(settings.root / "lake") == before
    assert lake_snapshot(settings.vault_dir) == vault_before


def test_the_same_events_in_another_file_land_only_once(settings, faulty_input, tmp_path):
    path, stats = faulty_input
    ingest(settings, path)
    copy = tmp_path / "copy.jsonl"
    # Same events, different batching: nothing is recognised by batch, only by event id.
    copy.write_bytes(b"\n" + path.read_bytes())
    again = ingest(settings.model_copy(update={"batch_size": 3_333}), copy)
    assert again.landed == 0
    assert again.duplicates == stats.valid_unique + stats.duplicates
    assert again.quarantined == stats.malformed


def test_csv_sales_file_goes_through_the_same_pipeline(settings, tmp_path):
    path = tmp_path / "sales.csv"
    header = (
        "event_id,event_type,event_version,event_time,source_system,trace_id,key,"
        "sale_id,pharmacy_id,ndc,quantity,unit_price,promotion_code\n"
    )
    rows = [
        "s1,sales.sale.completed,1,2026-11-02T10:00:00Z,pos,,SAL-1,SAL-1,PH-001,00002-1433-80,2,9.99,",
        "s2,sales.sale.completed,1,2026-11-02T11:00:00Z,pos,t-2,SAL-2,SAL-2,PH-002,00002-1433-80,"
        "1,4.50,FALL10",
        "s1,sales.sale.completed,1,2026-11-02T10:00:00Z,pos,,SAL-1,SAL-1,PH-001,00002-1433-80,2,9.99,",
        "s3,sales.sale.completed,1,2026-11-02T12:00:00Z,pos,,SAL-3,SAL-3,PH-001,00002-1433-80,two,"
        "1.00,",
        "s4,sales.sale.completed,1,2026-11-02T12:00:00Z,pos",
    ]
    path.write_text(header + "\n".join(rows) + "\n")
    result = ingest(settings, path)
    assert (result.landed, result.duplicates, result.quarantined) == (2, 1, 2)
    assert dict(result.quarantine_reasons) == {"wrong_type": 1, "malformed_json": 1}
    bronze = ds.dataset(settings.lake_dir / "bronze", format="parquet", partitioning=None)
    table = bronze.to_table().sort_by("event_id")
    assert table["source_offset"].to_pylist() == [2, 3]  # line numbers, header is line 1
    second = orjson.loads(table["event_json"][1].as_py())
    assert second["payload"]["quantity"] == 1 and second["payload"]["promotion_code"] == "FALL10"


def test_no_raw_patient_identifier_reaches_the_lake_or_the_logs(settings, faulty_input):
    path, _ = faulty_input
    ingest(settings, path)
    values, names = phi_values(patient_pool(FAULTY))
    assert values and names
    assert leaks(lake_strings(settings.lake_dir), values, names) == []
    log = settings.logs_dir / "pharmaflow.log"
    texts = [log.read_text()] if log.exists() else []
    assert leaks(texts, values, names) == []


def test_reidentification_through_the_vault_returns_the_original(settings, faulty_input):
    path, _ = faulty_input
    engine = IngestEngine(settings)
    engine.run(open_sources(str(path), engine.registry))
    token = Tokenizer(bytes.fromhex(settings.hmac_key.get_secret_value()))
    placed = ds.dataset(
        settings.lake_dir / "bronze" / "event_type=pharmacy.order.placed",
        format="parquet",
        partitioning=None,
    ).to_table(columns=["event_json"])
    landed_keys = {
        orjson.loads(e)["payload"]["patient"]["patient_key"]
        for e in placed["event_json"].to_pylist()
    }
    checked = 0
    for patient in patient_pool(FAULTY):
        key = token.patient_key(patient.patient_id)
        if key in landed_keys:
            assert (
                engine.vault.reidentify(key, requested_by="test", reason="unit test")
                == patient.to_payload()
            )
            checked += 1
    assert checked > 10


def _kill_during_ingest(path: Path, data_dir: Path, after_manifests: int) -> None:
    """Start `pharmaflow ingest` in a subprocess and SIGKILL it once some batches committed."""
    env = env_with_keys(PHARMAFLOW_DATA_DIR=str(data_dir), PHARMAFLOW_BATCH_SIZE="1000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pharmaflow", "ingest", "--source", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    manifests = data_dir / "lake" / "_manifests"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifests.exists() and len(list(manifests.glob("*.json"))) >= after_manifests:
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the ingest process only, as a crash would
        proc.wait()
    _assert_no_survivors(proc.pid)


def _assert_no_survivors(session: int) -> None:
    """The crashed ingest's worker processes must die with it (and are cleaned up if not)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _session(p) == session]
        if not left:
            return
        time.sleep(0.05)
    os.killpg(session, signal.SIGKILL)
    raise AssertionError(f"workers outlived the crashed ingest: {left}")


def _session(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.slow
def test_a_crash_mid_ingest_then_rerun_gives_the_same_lake(settings, faulty_input, tmp_path):
    path, stats = faulty_input
    clean = settings.model_copy(update={"batch_size": 1000})
    ingest(clean, path)
    expected = lake_rows(clean)

    rng = random.Random(5)
    batches = -(-stats.lines // 1000)
    for attempt in range(3):
        data_dir = tmp_path / f"crashed-{attempt}"
        kills = sorted(rng.sample(range(1, batches), 2))
        for after in kills:  # crash twice at random points, resuming in between
            _kill_during_ingest(path, data_dir, after)
        crashed = Settings(data_dir=data_dir, batch_size=1000)
        result = ingest(crashed, path)
        assert result.input == stats.lines
        assert lake_rows(crashed) == expected
        vault = ds.dataset(crashed.vault_dir / "patients", format="parquet")
        assert vault.count_rows() == stats.by_type["pharmacy.order.placed"]


def test_undeclared_fields_are_not_stored(settings, tmp_path):
    """A field no contract declares has never been classified for PHI: it is dropped."""
    from tests.factories import event, jsonl

    shipped = event("pharmacy.order.insurance_validated", payload__patient_note="Zuleika Okonkwo")
    shipped["courier_note"] = "call 415-555-0134"
    placed = event("pharmacy.order.placed")
    placed["payload"]["patient"]["ssn"] = "123-45-6789"
    plain = event("sales.sale.completed")
    path = tmp_path / "extra.jsonl"
    path.write_bytes(jsonl([shipped, placed, plain]))
    result = ingest(settings, path)
    assert result.landed == 3 and result.undeclared_stripped == 2
    text = "\n".join(v for col in lake_strings(settings.lake_dir) for v in col.to_pylist() if v)
    for value in ("Zuleika", "555-0134", "123-45-6789", "patient_note", "courier_note", "ssn"):
        assert value not in text
    bronze = ds.dataset(settings.lake_dir / "bronze", format="parquet", partitioning=None)
    stored = {r["event_id"]: r["event_json"] for r in bronze.to_table().to_pylist()}
    assert stored[plain["event_id"]] == orjson.dumps(plain).decode()  # untouched: as it arrived
