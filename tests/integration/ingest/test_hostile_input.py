"""Hostile input end to end: one reading of each event, from the file to bronze or quarantine.

Every case goes through `IngestEngine` (worker processes included) and is judged by what the
lake holds afterwards: the bronze row and how the warehouse's DuckDB reading of its
`event_json` comes out, or the quarantine row and its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from tests.conftest import TEST_KEYS
from tests.factories import event
from tests.warehouse_read import read_payloads, silver_payload_columns

SALE = "sales.sale.completed"
SHIPMENT = "logistics.shipment.created"
SURVEY = "feedback.survey.submitted"


def _line(e: dict) -> bytes:
    return orjson.dumps(e)


def _survey_with_repeated_nps() -> bytes:
    e = event(SURVEY, event_id="evt-repeated-nps")
    text = _line(e).replace(b'"nps":9', b'"nps": 3, "nps": 10')
    assert text.count(b'"nps"') == 2
    return text


# (name, line, expected): ("landed",) or ("quarantined", reason code, reason field, a piece
# of the offending value, which the reason detail must not echo)
CASES: list[tuple[str, bytes, tuple]] = [
    ("plain", _line(event(event_id="evt-plain")), ("landed",)),
    (
        "repeated key",
        _survey_with_repeated_nps(),
        ("quarantined", "duplicate_key", "payload.nps", 'nps": 3'),
    ),
    (
        "quantity 2^31",
        _line(event(event_id="evt-int32", payload__quantity=2**31)),
        ("quarantined", "out_of_range", "payload.quantity", None),  # -2^31 is in the rule,
    ),
    (
        "null lot number",
        _line(event(SHIPMENT, event_id="evt-null-lot", payload__lot_numbers=[None, "LOT-1"])),
        ("quarantined", "missing_field", "payload.lot_numbers[]", "LOT-1"),
    ),
    (
        "sale in 1970",
        _line(event(event_id="evt-1970", event_time="1970-01-01T00:00:00Z")),
        ("quarantined", "out_of_range", "event_time", "1970"),
    ),
    (
        "sale in 2999",
        _line(event(event_id="evt-2999", event_time="2999-01-01T00:00:00Z")),
        ("quarantined", "out_of_range", "event_time", "2999"),
    ),
    (
        "nanoseconds",
        _line(event(event_id="evt-nanos", event_time="2026-11-02T10:00:00.123456789+05:45")),
        ("landed",),
    ),
    (
        "promised in nanoseconds",
        _line(
            event(
                SHIPMENT,
                event_id="evt-promised-nanos",
                payload__promised_delivery_time="2026-11-03T23:59:59.999999999Z",
            )
        ),
        ("landed",),
    ),
    (
        "price as text",
        _line(event(event_id="evt-price-text", payload__unit_price="12.50")),
        ("landed",),
    ),
    (
        "price with 3 decimals",
        _line(event(event_id="evt-price-3", payload__unit_price="12.505")),
        ("quarantined", "out_of_range", "payload.unit_price", "12.505"),
    ),
]


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, Settings]:
    """Ingest every case in one file; bronze rows and quarantine rows by line number."""
    root = tmp_path_factory.mktemp("hostile")
    path = root / "events.jsonl"
    path.write_bytes(b"\n".join(line for _, line, _ in CASES) + b"\n")
    settings = _settings(root / "data")
    result = _ingest(settings, path)
    assert result.input == len(CASES) and result.conserved
    return _bronze(settings), _quarantine(settings), settings


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        ingest_workers=2,  # the time window must reach the worker processes
    )


def _ingest(settings: Settings, path: Path):
    engine = IngestEngine(settings)
    return engine.run(open_sources(str(path), engine.registry))


def _bronze(settings: Settings) -> dict[int, dict]:
    if not (settings.lake_dir / "bronze").exists():
        return {}
    table = ds.dataset(settings.lake_dir / "bronze", format="parquet", partitioning=None)
    return {row["source_offset"]: row for row in table.to_table().to_pylist()}


def _quarantine(settings: Settings) -> dict[int, dict]:
    if not (settings.lake_dir / "quarantine").exists():
        return {}
    table = ds.dataset(settings.lake_dir / "quarantine", format="parquet", partitioning=None)
    return {row["source_offset"]: row for row in table.to_table().to_pylist()}


@pytest.mark.parametrize("line_no", range(1, len(CASES) + 1), ids=[c[0] for c in CASES])
def test_each_case_lands_or_is_quarantined_with_its_reason(landed, line_no):
    bronze, quarantine, _ = landed
    expected = CASES[line_no - 1][2]
    if expected[0] == "landed":
        assert line_no in bronze and line_no not in quarantine
    else:
        assert line_no not in bronze
        row = quarantine[line_no]
        assert (row["reason_code"], row["reason_field"]) == expected[1:3]
        assert expected[3] is None or expected[3] not in row["reason_detail"]


def _silver(row: dict) -> dict:
    return read_payloads([row["event_json"]], silver_payload_columns()[row["event_type"]])[0]


def test_a_nine_digit_fraction_lands_truncated_to_the_microsecond(landed):
    bronze, _, _ = landed
    row = bronze[CASES.index(next(c for c in CASES if c[0] == "nanoseconds")) + 1]
    assert row["event_time"] == datetime(2026, 11, 2, 4, 15, 0, 123456)  # UTC, truncated
    shipment = bronze[CASES.index(next(c for c in CASES if c[0] == "promised in nanoseconds")) + 1]
    assert _silver(shipment)["promised_delivery_time"] == datetime(2026, 11, 3, 23, 59, 59, 999999)


def test_a_decimal_string_lands_and_the_warehouse_reads_it_exactly(landed):
    bronze, _, _ = landed
    row = bronze[CASES.index(next(c for c in CASES if c[0] == "price as text")) + 1]
    assert orjson.loads(row["event_json"])["payload"]["unit_price"] == "12.50"  # as it arrived
    assert _silver(row)["unit_price"] == Decimal("12.50")


def test_a_byte_order_mark_does_not_cost_the_first_record(tmp_path):
    path = tmp_path / "bom.jsonl"
    first, second = event(event_id="evt-bom-1"), event(event_id="evt-bom-2")
    path.write_bytes(b"\xef\xbb\xbf" + _line(first) + b"\n" + _line(second) + b"\n")
    settings = _settings(tmp_path / "data")
    result = _ingest(settings, path)
    assert (result.landed, result.quarantined) == (2, 0)
    bronze = _bronze(settings)
    assert {r["event_id"] for r in bronze.values()} == {"evt-bom-1", "evt-bom-2"}
    assert sorted(bronze) == [1, 2]  # the marked line is still line 1
    assert not bronze[1]["event_json"].startswith("\ufeff")


_CSV_HEADER = (
    "event_id,event_type,event_version,event_time,source_system,trace_id,key,"
    "sale_id,pharmacy_id,ndc,quantity,unit_price,promotion_code"
)
_CSV_ROW = (
    "s{n},sales.sale.completed,1,2026-11-02T10:00:00Z,pos,,SAL-{n},SAL-{n},PH-001,"
    "00002-1433-80,2,{price},"
)


def test_a_csv_with_a_byte_order_mark_lands_its_first_row_exactly(tmp_path):
    path = tmp_path / "sales.csv"
    rows = [_CSV_ROW.format(n=1, price="9.99"), _CSV_ROW.format(n=2, price="12.505")]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join([_CSV_HEADER, *rows]).encode() + b"\n")
    settings = _settings(tmp_path / "data")
    result = _ingest(settings, path)
    assert (result.landed, result.quarantined) == (1, 1)
    assert dict(result.quarantine_reasons) == {"out_of_range": 1}
    (row,) = _bronze(settings).values()
    assert row["event_id"] == "s1" and row["source_offset"] == 2
    assert _silver(row)["unit_price"] == Decimal("9.99")  # the text, not a float near it


def test_a_csv_header_that_repeats_a_column_is_refused(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text(_CSV_HEADER + ",quantity\n" + _CSV_ROW.format(n=1, price="1.00") + ",3\n")
    with pytest.raises(PharmaflowError, match="repeats quantity"):
        _ingest(_settings(tmp_path / "data"), path)


def test_the_configured_time_window_reaches_the_worker_processes(tmp_path):
    path = tmp_path / "events.jsonl"
    early, late = event(event_id="evt-early"), event(event_id="evt-late")
    early["event_time"], late["event_time"] = "2026-11-02T10:00:00Z", "2026-11-02T14:00:00Z"
    path.write_bytes(_line(early) + b"\n" + _line(late) + b"\n")
    settings = _settings(tmp_path / "data").model_copy(
        update={"timestamp_min": datetime(2026, 11, 2, 12, 0, tzinfo=UTC)}
    )
    result = _ingest(settings, path)
    assert (result.landed, dict(result.quarantine_reasons)) == (1, {"out_of_range": 1})
    (row,) = _quarantine(settings).values()
    assert row["reason_detail"].startswith("must lie between 2026-11-02T12:00:00Z and 24 hours")
