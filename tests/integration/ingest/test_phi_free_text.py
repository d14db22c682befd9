"""Free-text PHI through the real engine: what a person reading bronze or the logs would see.

Each case is an event as it arrives in a file; the assertion is on the stored `event_json`
(silver and gold are built from it alone) and on every log line the engine wrote.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pytest

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from tests.factories import (
    PATIENT,
    deviation_opened,
    event,
    jsonl,
    order_placed,
    shipment_exception,
    survey,
)
from tests.phi_scan import lake_strings, leaks, record_phi_values

JOSE = {
    **copy.deepcopy(PATIENT),
    "patient_id": "MRN00777001",
    "first_name": "José",
    "last_name": "García",
    "email": "josé.garcía@exämple.com",
    "phone": "+44 20 7946 0958",
    "address": {**PATIENT["address"], "street": "400 N. Main St Apt 5"},
}


def _ingest(settings: Settings, path: Path, events: list[dict]) -> None:
    path.write_bytes(jsonl(events))
    engine = IngestEngine(settings)
    result = engine.run(open_sources(str(path), engine.registry))
    assert result.conserved


def _bronze(settings: Settings) -> dict[str, dict]:
    table = ds.dataset(settings.lake_dir / "bronze", format="parquet").to_table()
    return {
        row["event_id"]: orjson.loads(row["event_json"])
        for row in table.select(["event_id", "event_json"]).to_pylist()
    }


@pytest.fixture
def lake(settings, tmp_path, caplog):
    """Run 1: an order for each patient; run 2: free text naming them, without order ids."""
    caplog.set_level(logging.DEBUG)
    cases = {
        "exception": shipment_exception(
            "Recipient Zuleika Okonkwo not home at 12 Quillfeather Lane, card left"
        ),
        "deviation": deviation_opened("Label for Zuleika Okonkwo, MRN: 00424242, found on line 2"),
        "nfd": survey("Thanks from Jose\u0301 Garci\u0301a, great service", order_id="ORD-x"),
        "email": survey("Write to josé.garcía@exämple.com please", order_id="ORD-x"),
        "other_order": survey("zuleika okonkwo here, box was crushed", order_id="ORD-x"),
        "common_words": survey("Will deliver the brown box, may arrive late"),
        "clean": survey("Arrived on time, thank you\u2009!"),
    }
    _ingest(
        settings,
        tmp_path / "orders.jsonl",
        [order_placed(PATIENT, "ORD-1"), order_placed(JOSE, "ORD-2")],
    )
    _ingest(settings, tmp_path / "text.jsonl", list(cases.values()))
    bronze = _bronze(settings)
    texts = {
        name: next(iter(v for k, v in bronze[e["event_id"]]["payload"].items()
                        if k in ("detail", "description", "comment")))
        for name, e in cases.items()
    }  # fmt: skip
    return texts, caplog.text


def test_names_of_any_known_patient_are_scrubbed_wherever_they_appear(lake):
    texts, _ = lake
    assert texts["exception"] == "Recipient [NAME] [NAME] not home at [ADDRESS], card left"
    assert texts["deviation"] == "Label for [NAME] [NAME], [MRN], found on line 2"
    assert texts["nfd"] == "Thanks from [NAME] [NAME], great service"
    assert texts["email"] == "Write to [EMAIL] please"
    assert texts["other_order"] == "[NAME] [NAME] here, box was crushed"


def test_ordinary_words_and_clean_text_are_left_alone(lake):
    texts, _ = lake
    assert texts["common_words"] == "Will deliver the brown box, may arrive late"
    assert texts["clean"] == "Arrived on time, thank you\u2009!"  # byte for byte, not NFKC


def test_nothing_of_either_patient_reaches_the_lake_or_the_logs(lake, settings):
    _, log_text = lake
    values, names = record_phi_values([PATIENT, JOSE])
    values.add("00424242")
    assert leaks(lake_strings(settings.lake_dir), values, names) == []
    assert log_text and leaks([log_text], values, names) == []


def test_a_comment_before_its_order_still_loses_the_name(settings, tmp_path):
    early = survey("This is Zuleika Okonkwo, leave it at 12 Quillfeather Lane", "ORD-9")
    _ingest(settings, tmp_path / "early.jsonl", [early])
    _ingest(settings, tmp_path / "late.jsonl", [order_placed(PATIENT, "ORD-9")])
    comment = _bronze(settings)[early["event_id"]]["payload"]["comment"]
    assert comment == "This is [NAME], leave it at [ADDRESS]"


def test_hostile_events_leave_no_payload_value_in_logs_or_clear_columns(settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    name = "Zuleika Okonkwo"
    hostile = [
        event("pharmacy.order.placed", event_id=f"{name} 415-555-0134"),
        event("pharmacy.order.placed", event_type=f"pharmacy.{name}"),
        event("pharmacy.order.placed", payload__patient={**PATIENT, "date_of_birth": 19500502}),
        event("pharmacy.order.placed", payload__quantity="zuleika.okonkwo@example.com"),
        event("pharmacy.order.placed", payload__order_id=None, key="12 Quillfeather Lane"),
        event("feedback.survey.submitted", payload__rating="MRN00123456"),
        {"event_id": "e-1", "payload": PATIENT},
        [PATIENT],
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(jsonl(hostile) + b'{"not json": "Zuleika Okonkwo (415) 555-0134"\n')
    engine = IngestEngine(settings)
    result = engine.run(open_sources(str(path), engine.registry))
    assert result.quarantined == len(hostile) + 1
    values, names = record_phi_values([PATIENT])
    table = ds.dataset(settings.lake_dir / "quarantine", format="parquet").to_table()
    assert table.num_rows == result.quarantined
    assert leaks(lake_strings(settings.lake_dir), values, names) == []
    assert caplog.text and leaks([caplog.text], values, names) == []
    ids = table["event_id"].to_pylist()
    assert ids.count(None) >= 1 and "e-1" in ids  # the id with a name went, a plain id stayed
    assert f"pharmacy.{name}" not in table["event_type"].to_pylist()
