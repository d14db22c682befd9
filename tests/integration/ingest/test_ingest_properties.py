"""Property: whatever a file holds, ingest never crashes, loses or doubles nothing, and every
event it lands is read by the warehouse as the value it validated.

Hypothesis writes JSONL files of odd-but-valid events (Unicode in free text, big in-range
integers, 9-digit fractions, decimal strings, offsets like +05:45, keys written with escapes or
whitespace, colons and quotes inside strings) mixed with malformed ones (a key repeated at some
depth, integers beyond the Avro type, null list items, wrong types, truncated lines, a stray
byte-order mark, implausible dates). Each file goes through the real `IngestEngine`; then
  * input == landed + duplicates + quarantined, line by line;
  * a malformed line is quarantined with the reason its malformation implies;
  * for a landed line, DuckDB's reading of bronze `event_json` with the silver column types
    (`tests/warehouse_read.py`) equals the value an independent oracle derives from what was
    generated (timestamps in UTC truncated to microseconds, decimals at scale 2).
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as ds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pharmaflow.config import Settings
from pharmaflow.ingest.pipeline import IngestEngine
from pharmaflow.ingest.sources import open_sources
from tests.conftest import TEST_KEYS
from tests.factories import event
from tests.warehouse_read import read_payloads, silver_payload_columns

NOW = datetime.now(UTC)
BOM = b"\xef\xbb\xbf"
TEMPERATURE = {"shipment_id": "SHP-1", "logger_id": "LOG-1", "celsius": 4.5}
TYPES = [
    "sales.sale.completed",
    "logistics.shipment.created",
    "feedback.survey.submitted",
    "pharmacy.order.insurance_validated",
    "pharmacy.order.placed",
    "logistics.temperature.reading",
]

# --------------------------------------------------------------------------- odd, valid values

# Free text: any Unicode a producer may send (NFD accents, emoji, right-to-left scripts, quotes,
# colons and backslashes), but no NUL (refused on purpose) and no surrogates (not UTF-8).
free_text = st.lists(
    st.one_of(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        st.sampled_from(['"', ":", '":', "\\", "e\u0301", "\U0001f48a", "\u05e9\u05dc", "\u202e"]),
    ),
    min_size=1,
    max_size=20,
).map("".join)
identifier = st.from_regex(r"\A[A-Z][A-Z0-9-]{0,10}\Z")
offsets = st.sampled_from(["Z", "+05:45", "-03:30", "+0545", "-1200", "+14:00", "+00:00"])


@st.composite
def timestamp_text(draw: st.DrawFn, lo: datetime, hi: datetime) -> str:
    """An ISO-8601 timestamp with 0-9 fractional digits and some offset, between lo and hi."""
    seconds = draw(st.integers(0, int((hi - lo).total_seconds())))
    moment = lo + timedelta(seconds=seconds)
    offset = draw(offsets)
    shift = _offset(offset)
    local = (moment + shift).replace(tzinfo=None)
    digits = draw(st.integers(0, 9))
    fraction = (
        "."
        + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
        if digits
        else ""
    )
    sep = draw(st.sampled_from(["T", " "]))
    return f"{local:%Y-%m-%d}{sep}{local:%H:%M:%S}{fraction}{offset}"


def _offset(text: str) -> timedelta:
    if text == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))


decimal_value = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2, allow_nan=False
)


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES))
    if kind == "logistics.temperature.reading":
        e = event("sales.sale.completed")
        e["event_type"] = kind
        e["payload"] = dict(TEMPERATURE)
        e["payload"]["celsius"] = draw(st.floats(-80, 80, allow_nan=False))
        e["payload"]["spec_min"] = draw(st.floats(-1e300, 1e300, allow_nan=False))
        e["payload"]["spec_max"] = draw(st.integers(-(2**62), 2**62))  # an integer for a double
    else:
        e = event(kind)
    e["event_time"] = draw(
        timestamp_text(datetime(2000, 1, 2, tzinfo=UTC), NOW - timedelta(days=1))
    )
    e["trace_id"] = draw(st.one_of(st.none(), identifier))
    p = e["payload"]
    if kind == "sales.sale.completed":
        p["quantity"] = draw(st.integers(1, 2**31 - 1))
        price = draw(decimal_value)
        p["unit_price"] = draw(st.sampled_from([str(price), float(price), f"{price:013.2f}"]))
    elif kind == "pharmacy.order.insurance_validated":
        p["copay_amount"] = draw(st.one_of(decimal_value.map(str), st.integers(0, 10**9)))
    elif kind == "logistics.shipment.created":
        p["promised_delivery_time"] = draw(
            timestamp_text(datetime(2000, 1, 2, tzinfo=UTC), NOW + timedelta(days=300))
        )
        p["lot_numbers"] = draw(st.lists(identifier, max_size=4))
        p["cold_chain"] = draw(st.booleans())
    elif kind == "feedback.survey.submitted":
        p["nps"] = draw(st.integers(0, 10))
        p["comment"] = draw(st.one_of(st.none(), free_text))
    elif kind == "pharmacy.order.placed":
        p["quantity"] = draw(st.integers(1, 2**31 - 1))
        p["days_supply"] = draw(st.integers(1, 2**31 - 1))
    return e


# --------------------------------------------------------------------------- writing JSON


def encode(value: Any, style: dict[str, Any], repeat: tuple[int, str, Any] | None = None) -> str:
    """JSON text of `value`, written the odd ways producers write it: keys with \\u escapes and
    whitespace before the colon, colons in strings as \\u003a. `repeat`: (id of a dict, key,
    value) writes that key twice in that dict, `value` first."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if repeat is not None and repeat[0] == id(value) and repeat[1] == key:
                parts.append(_key(key, style) + ":" + encode(repeat[2], style))
            parts.append(_key(key, style) + ":" + encode(item, style, repeat))
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v, style, repeat) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    text = orjson.dumps(value).decode()
    if isinstance(value, str) and style["escape_colons"]:
        text = text.replace(":", "\\u003a")
    return text


def _key(key: str, style: dict[str, Any]) -> str:
    text = json.dumps(key)
    if style["escape_keys"] and len(key) > 1:
        text = '"' + key[0] + "".join(f"\\u{ord(c):04x}" for c in key[1:2]) + text[3:]
    return text + style["space"]


styles = st.fixed_dictionaries(
    {
        "escape_colons": st.booleans(),
        "escape_keys": st.booleans(),
        "space": st.sampled_from(["", " ", "\t", " \t\r "]),  # no newline: one line each
    }
)


def _dicts(value: Any) -> list[dict[str, Any]]:
    """Every object inside `value` (itself included), at any depth."""
    if isinstance(value, dict):
        return [value, *(d for v in value.values() for d in _dicts(v))]
    if isinstance(value, list):
        return [d for v in value for d in _dicts(v)]
    return []


# --------------------------------------------------------------------------- malformed lines


@st.composite
def line(draw: st.DrawFn) -> tuple[bytes, tuple]:
    """One line and what must become of it: ("landed", event) or ("quarantined", code)."""
    e = draw(valid_event())
    style = draw(styles)
    fault = draw(
        st.sampled_from(
            ["none"] * 6
            + ["repeat", "int", "null_item", "wrong_type", "truncate", "bom", "when", "scale"]
        )
    )
    p = e["payload"]
    expected: tuple = ("landed", e)
    repeat = None
    if fault == "repeat":
        target = draw(st.sampled_from([d for d in _dicts(e) if d]))
        key = draw(st.sampled_from(sorted(target)))
        repeat = (id(target), key, draw(st.sampled_from([None, 1, "other", [], {}])))
        expected = ("quarantined", "duplicate_key")
    elif fault == "int" and "quantity" in p:
        p["quantity"] = draw(
            st.one_of(st.integers(2**31, 2**70), st.integers(-(2**70), -(2**31) - 1))
        )
        expected = ("quarantined", "out_of_range")
    elif fault == "null_item" and "lot_numbers" in p:
        items = list(p["lot_numbers"])
        items.insert(draw(st.integers(0, len(items))), None)
        p["lot_numbers"] = items
        expected = ("quarantined", "missing_field")
    elif fault == "wrong_type":
        e["source_system"] = draw(st.sampled_from([5, 2.5, True, ["pos"], {"a": "b"}]))
        expected = ("quarantined", "wrong_type")
    elif fault == "when":
        e["event_time"] = draw(
            st.one_of(
                timestamp_text(
                    datetime(1900, 1, 1, tzinfo=UTC), datetime(1999, 12, 30, tzinfo=UTC)
                ),
                timestamp_text(NOW + timedelta(days=2), datetime(9998, 1, 1, tzinfo=UTC)),
            )
        )
        expected = ("quarantined", "out_of_range")
    elif fault == "scale" and "unit_price" in p:
        p["unit_price"] = draw(st.sampled_from(["1.005", "12.3456", 0.125, "12345678901.5"]))
        expected = ("quarantined", "out_of_range")
    text = encode(e, style, repeat).encode()
    if fault == "truncate":
        text = text[: draw(st.integers(1, len(text) - 1))]
        expected = ("quarantined", "malformed_json")
    elif fault == "bom":
        text = BOM + text  # a mark in the middle of a file is not the file's
        expected = ("quarantined", "malformed_json", e)
    return text, expected


# --------------------------------------------------------------------------- the oracle


def _utc(text: str) -> datetime:
    truncated = re.sub(r"(\.\d{6})\d+", r"\1", text)
    return datetime.fromisoformat(truncated).astimezone(UTC).replace(tzinfo=None)


def oracle(kind: str, value: Any) -> Any:
    """What the warehouse must read for a validated value, by silver column type."""
    if value is None:
        return None
    if kind == "timestamp":
        return _utc(value)
    if kind == "decimal":
        return Decimal(value if isinstance(value, str) else repr(value)).quantize(Decimal("0.01"))
    if kind == "double":
        return float(value)
    if kind == "date":
        return date.fromisoformat(value)
    return value


def _get(payload: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        payload = payload.get(part) if isinstance(payload, dict) else None
    return payload


# --------------------------------------------------------------------------- the property


@settings(
    max_examples=100,
    deadline=None,
    database=None,  # no example files in the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=st.lists(line(), min_size=1, max_size=40), bom=st.booleans(), copies=st.integers(0, 2))
def test_ingest_lands_exactly_what_it_validated(lines, bom, copies):
    texts = [t for t, _ in lines]
    expected = [x for _, x in lines]
    if not bom and texts[0].startswith(BOM):  # then it is the file's mark
        expected[0] = ("landed", expected[0][2])
    landed_at = [
        i for i, x in enumerate(expected) if x[0] == "landed" and not texts[i].startswith(BOM)
    ]
    for i in landed_at[:copies]:  # exact re-sends: duplicates, not landings
        texts.append(texts[i])
        expected.append(("duplicate",))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "events.jsonl"
        path.write_bytes((BOM if bom else b"") + b"\n".join(texts) + b"\n")
        result = _ingest(root / "data", path)
        bronze, quarantine = _lake(root / "data")

    assert result.conserved and result.input == len(texts)
    assert result.landed == sum(x[0] == "landed" for x in expected)
    assert result.duplicates == sum(x[0] == "duplicate" for x in expected)
    for line_no, want in enumerate(expected, start=1):
        if want[0] == "quarantined":
            assert quarantine.get(line_no) == want[1], (line_no, texts[line_no - 1])
        elif want[0] == "landed":
            assert line_no in bronze, (line_no, texts[line_no - 1], quarantine.get(line_no))
    _check_readings(
        bronze, {n: x[1] for n, x in enumerate(expected, start=1) if x[0] == "landed"}, texts
    )


def _check_readings(bronze: dict[int, dict], sent: dict[int, dict], texts: list[bytes]) -> None:
    columns = silver_payload_columns()
    for line_no, e in sent.items():
        row = bronze[line_no]
        assert row["event_time"] == _utc(e["event_time"])
        wanted = [c for c in columns[e["event_type"]] if not c[2].startswith("patient.")]
        (read,) = read_payloads([row["event_json"]], wanted)
        stored = orjson.loads(row["event_json"])["payload"]
        as_sent = row["event_json"].encode() == texts[line_no - 1].rstrip()
        for name, kind, path in wanted:
            # PHI protection may rewrite free text; what it stores is then what is read
            source = e["payload"] if as_sent or kind != "string" else stored
            assert read[name] == oracle(kind, _get(source, path)), (name, row["event_json"])


def _ingest(data_dir: Path, path: Path):
    settings_ = Settings(
        data_dir=data_dir,
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        ingest_workers=0,
        batch_size=16,  # several batches per file
    )
    engine = IngestEngine(settings_)
    return engine.run(open_sources(str(path), engine.registry))


def _lake(data_dir: Path) -> tuple[dict[int, dict], dict[int, str]]:
    lake = data_dir / "lake"
    bronze: dict[int, dict] = {}
    quarantine: dict[int, str] = {}
    if (lake / "bronze").exists():
        table = ds.dataset(lake / "bronze", format="parquet", partitioning=None).to_table()
        bronze = {r["source_offset"]: r for r in table.to_pylist()}
    if (lake / "quarantine").exists():
        table = ds.dataset(lake / "quarantine", format="parquet", partitioning=None).to_table()
        quarantine = dict(
            zip(table["source_offset"].to_pylist(), table["reason_code"].to_pylist(), strict=True)
        )
    return bronze, quarantine
