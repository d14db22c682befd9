"""PHI in odd places, end to end: ingest → build, then every readable byte is searched.

Each case of the hardening issue is an event a user could write by hand: a patient's name and
street in a shipment exception, a name and `MRN: 00424242` in a deviation, a name typed in
decomposed Unicode, an accented e-mail, MRNs, dates of birth and SSNs written the usual ways, a
name and e-mail in `pharmacist_id`, an e-mail in `trace_id`, a comment that arrives before its
order. After `pharmaflow ingest` and `pharmaflow build` (the real CLI), none of the patients'
identifiers may appear in bronze `event_json`, the quarantine's clear columns, silver, gold, the
run log or any dbt artefact (compiled SQL, run results, dbt's own log); identifiers typed into
id fields are quarantined as `invalid_identifier`; the build is green.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.conftest import env_with_keys
from tests.factories import (
    PATIENT,
    deviation_opened,
    event,
    jsonl,
    order_placed,
    shipment_exception,
    survey,
    typed_event,
)
from tests.phi_scan import lake_strings, leaks, record_phi_values, text_strings, warehouse_strings

pytestmark = pytest.mark.slow

ROSALIND = {
    **copy.deepcopy(PATIENT),
    "patient_id": "MRN00999123",
    "first_name": "Rosalind",
    "last_name": "Featherstonehaugh",
    "date_of_birth": "1944-07-19",
    "phone": "+49 30 1234567",
    "email": "rosalind.featherstonehaugh@example.org",
    "address": {**PATIENT["address"], "street": "88 Wintergreen Avenue"},
}
EXTRA_PHI = {"00424242", "87654321", "12345678", "123456789", "05/02/1950", "07/19/1944"}


def _filled(pharmacist_id: str) -> dict:
    payload = {
        "order_id": "ORD-1",
        "ndc": "00002-1433-80",
        "lot_number": "LOT-1",
        "quantity": 2,
        "pharmacist_id": pharmacist_id,
    }
    return typed_event("pharmacy.order.filled", "ORD-1", payload)


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(),
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("phi-e2e")
    data_dir = root / "data"
    early = [
        # arrives before its order: the name is unknown yet, the detector must catch it
        survey("This is Rosalind Featherstonehaugh, leave it at 88 Wintergreen Avenue", "ORD-2"),
    ]
    orders = [order_placed(PATIENT, "ORD-1"), order_placed(ROSALIND, "ORD-2")]
    text = [
        shipment_exception("Recipient Zuleika Okonkwo not home at 12 Quillfeather Lane, card left"),
        deviation_opened("Label for Zuleika Okonkwo, MRN: 00424242, found on line 2"),
        survey("Thanks from Zule\u0301ika Okonkwo, great service", "ORD-x"),  # NFD, unlinked
        survey("Write to rosalind.featherstonehaugh@example.org or josé.garcía@exämple.com", "O-1"),
        survey("my mrn 87654321, MRN#12345678, DOB 05/02/1950, born 07/19/1944", "ORD-1"),
        survey("SSN 123456789, call +49 30 1234567", "ORD-1"),
        typed_event(
            "pharmacy.order.cancelled",
            "ORD-2",
            {"order_id": "ORD-2", "reason": "Rosalind Featherstonehaugh moved away"},
        ),
    ]
    bad_ids = {
        "pharmacist": _filled("Zuleika Okonkwo zuleika.okonkwo@example.com"),
        "trace": event(trace_id="zuleika.okonkwo@example.com"),
        "source": event(source_system="Zuleika Okonkwo"),
    }
    files = []
    for name, events in (
        ("early", early),
        ("orders", orders),
        ("text", text),
        ("ids", list(bad_ids.values())),
    ):
        path = root / f"{name}.jsonl"
        path.write_bytes(jsonl(events))
        files.append(path)
    ingests = [_cli(data_dir, "ingest", "--source", str(p), "--json") for p in files]
    build = _cli(data_dir, "build", "--json")
    return {
        "data_dir": data_dir,
        "ingests": ingests,
        "build": build,
        "bad_ids": bad_ids,
    }


def test_every_ingest_and_the_build_succeed(built):
    for run in built["ingests"]:
        assert run.returncode == 0, run.stderr
    assert built["build"].returncode == 0, built["build"].stdout[-2000:]
    result = json.loads(built["build"].stdout.strip().splitlines()[-1])
    assert result["success"] and result["tests_failed"] == 0


def test_identifiers_typed_into_id_fields_are_quarantined_not_stored(built):
    table = ds.dataset(built["data_dir"] / "lake" / "quarantine", format="parquet").to_table()
    reasons = dict(
        zip(table["source_offset"].to_pylist(), table["reason_code"].to_pylist(), strict=True)
    )
    fields = dict(
        zip(table["source_offset"].to_pylist(), table["reason_field"].to_pylist(), strict=True)
    )
    # the ids file: line 1 pharmacist_id, line 2 trace_id, line 3 source_system
    assert reasons == {1: "invalid_identifier", 2: "invalid_identifier", 3: "invalid_identifier"}
    assert fields == {1: "payload.pharmacist_id", 2: "trace_id", 3: "source_system"}


def test_no_patient_identifier_is_readable_anywhere(built):
    data_dir: Path = built["data_dir"]
    values, names = record_phi_values([PATIENT, ROSALIND])
    values |= EXTRA_PHI
    assert leaks(lake_strings(data_dir / "lake"), values, names) == []
    warehouse = data_dir / "warehouse" / "pharmaflow.duckdb"
    assert leaks(warehouse_strings(warehouse), values, names) == []
    logs = [p.read_text(errors="replace") for p in (data_dir / "logs").rglob("*") if p.is_file()]
    assert logs and leaks(text_strings(logs), values, names) == []
    artefacts = [
        p.read_text(errors="replace")
        for folder in ("target", "logs")
        for p in (data_dir / "warehouse" / "dbt" / folder).rglob("*")
        if p.is_file() and p.suffix in (".json", ".log", ".sql", ".txt")
    ]
    assert artefacts and leaks(text_strings(artefacts), values, names) == []
    outputs = [r.stdout + r.stderr for r in [*built["ingests"], built["build"]]]
    assert leaks(text_strings(outputs), values, names) == []


def test_the_free_text_still_says_what_happened(built):
    """Scrubbing removes identifiers, not the message."""
    table = ds.dataset(built["data_dir"] / "lake" / "bronze", format="parquet").to_table()
    texts = " ".join(table["event_json"].to_pylist())
    for words in ("not home at", "found on line 2", "great service", "moved away"):
        assert words in texts
