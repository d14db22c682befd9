"""Every text field of every contract has exactly one class, and every pattern is sound.

A string field with no rule is where a person's name or e-mail slips into silver and gold, so
each one must be free text (scrubbed), an enum, patient PHI (protected), a constant, or an
identifier with a pattern that refuses such values. The schemas are read as JSON here, not
through `FieldSpec`, so the test holds whatever the contract model reads of them.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pharmaflow.contracts.registry import SCHEMA_DIR
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from tests import factories

PATIENT_PHI = {"identifier", "name", "remove", "zip", "date_of_birth"}
HOSTILE = (
    "jane.doe@example.com",
    "Jane Doe",
    "+1 (415) 555-0134",
    "(415) 555-0134",
    "415 555 0134",
    "MRN: 00424242",
    "Doe, Jane",
    "ORD-1\n",  # RE2's `$` is the end of the text; Python's would allow a final newline
    "",
)


def _schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in sorted(SCHEMA_DIR.glob("*/v*.avsc")):
        schema = json.loads(path.read_text())
        schemas[f"{schema['pharmaflow.event_type']} {path.stem}"] = schema
    return schemas


SCHEMAS = _schemas()


def _text_fields(fields: list[dict[str, Any]], parent: str = "") -> Iterator[tuple[str, dict]]:
    """(dotted path, Avro field) of every string, string-list and enum field, nested too."""
    for field in fields:
        path = f"{parent}.{field['name']}" if parent else field["name"]
        avro_type = field["type"]
        if isinstance(avro_type, list):
            avro_type = next(t for t in avro_type if t != "null")
        if isinstance(avro_type, dict) and avro_type.get("type") == "record":
            yield from _text_fields(avro_type["fields"], path)
        elif avro_type == "string" or (
            isinstance(avro_type, dict)
            and (avro_type.get("type") == "enum" or avro_type.get("items") == "string")
        ):
            yield path, field


def _classes(path: str, field: dict[str, Any]) -> set[str]:
    avro_type = field["type"]
    if isinstance(avro_type, list):
        avro_type = next(t for t in avro_type if t != "null")
    found = set()
    if isinstance(avro_type, dict) and avro_type.get("type") == "enum":
        found.add("enum")
    if field.get("pharmaflow.phi") == "free_text":
        found.add("free text")
    if field.get("pharmaflow.phi") in PATIENT_PHI and path.startswith("payload.patient."):
        found.add("patient PHI")
    if field.get("pharmaflow.identifier") is True and isinstance(
        field.get("pharmaflow.pattern"), str
    ):
        found.add("identifier")
    if isinstance(field.get("pharmaflow.const"), str):
        found.add("constant")
    return found


def _identifiers() -> list[tuple[str, str, str]]:
    """(event type, path, pattern) of every identifier field."""
    out = []
    for name, schema in SCHEMAS.items():
        for path, field in _text_fields(schema["fields"]):
            if field.get("pharmaflow.identifier") is True:
                out.append((name.split()[0], path, field["pharmaflow.pattern"]))
    return out


def _all_patterns() -> set[str]:
    patterns = set()
    for schema in SCHEMAS.values():
        for _, field in _text_fields(schema["fields"]):
            if "pharmaflow.pattern" in field:
                patterns.add(field["pharmaflow.pattern"])
    return patterns


def _re2_matches(values: list[str], pattern: str) -> list[bool]:
    """What the ingest validator computes: Arrow's RE2 search over a string column."""
    return pc.match_substring_regex(pa.array(values, pa.string()), pattern=pattern).to_pylist()


def test_every_contract_is_read():
    assert len(SCHEMAS) == 18


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_text_field_has_exactly_one_class(name):
    problems = []
    for path, field in _text_fields(SCHEMAS[name]["fields"]):
        found = _classes(path, field)
        if len(found) != 1:
            problems.append(f"{path}: {sorted(found) or 'unclassified'}")
        phi = field.get("pharmaflow.phi")
        if phi is not None and phi != "free_text" and phi not in PATIENT_PHI:
            problems.append(f"{path}: unknown pharmaflow.phi {phi!r}")
        if "pharmaflow.identifier" in field and field["pharmaflow.identifier"] is not True:
            problems.append(f"{path}: pharmaflow.identifier must be true")
    assert problems == []


def test_the_classifier_refuses_what_it_should():
    """The check above can fail: an id without a pattern, or free text marked as an id."""
    assert _classes("payload.operator_id", {"name": "operator_id", "type": "string"}) == set()
    bare = {"name": "x", "type": "string", "pharmaflow.identifier": True}
    assert _classes("payload.x", bare) == set()
    both = {**bare, "pharmaflow.pattern": "^a$", "pharmaflow.phi": "free_text"}
    assert len(_classes("payload.x", both)) == 2
    outside = {"name": "email", "type": "string", "pharmaflow.phi": "remove"}
    assert _classes("payload.contact.email", outside) == set()  # PHI only in patient


@pytest.mark.parametrize("pattern", sorted(_all_patterns()))
def test_every_pattern_compiles_in_python_and_in_re2_and_is_anchored(pattern):
    re.compile(pattern)
    _re2_matches(["x"], pattern)  # raises ArrowInvalid if RE2 cannot compile it
    assert pattern.startswith("^") and pattern.endswith("$")


@pytest.mark.parametrize(("event_type", "path", "pattern"), _identifiers())
def test_identifiers_refuse_personal_data_and_malformed_values(event_type, path, pattern):
    accepted = [
        v for v, ok in zip(HOSTILE, _re2_matches(list(HOSTILE), pattern), strict=True) if ok
    ]
    assert accepted == [], f"{event_type} {path}"
    # Python's `re` (the bench baseline), matching the whole text, agrees.
    assert [v for v in HOSTILE if re.fullmatch(pattern, v)] == []


def _values(
    event: dict[str, Any], fields: list[dict[str, Any]], out: dict, parent: str = ""
) -> None:
    for field in fields:
        path = f"{parent}.{field['name']}" if parent else field["name"]
        value = event.get(field["name"])
        avro_type = field["type"]
        if isinstance(avro_type, list):
            avro_type = next(t for t in avro_type if t != "null")
        if isinstance(avro_type, dict) and avro_type.get("type") == "record":
            if isinstance(value, dict):
                _values(value, avro_type["fields"], out, path)
        elif isinstance(value, str):
            out[path].add(value)
        elif isinstance(value, list):
            out[path].update(v for v in value if isinstance(v, str))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, set[str]]]:
    """Per event type, per field path: every text value a small fault-free simulation writes
    (five days at a tenth of the default scale holds all 18 types and every optional field)."""
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    config = SimConfig(
        seed=3,
        days=5,
        scale=0.1,
        duplicate_rate=0,
        late_rate=0,
        out_of_order_rate=0,
        malformed_rate=0,
    )
    simulate(config, path)
    schemas = {name.split()[0]: s for name, s in SCHEMAS.items()}
    values: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for line in Path(path).read_bytes().splitlines():
        event = orjson.loads(line)
        _values(event, schemas[event["event_type"]]["fields"], values[event["event_type"]])
    return values


def test_the_simulation_covers_every_identifier_field(simulated):
    """Each (field, pattern) gets simulated values in at least one event type (sales events,
    for one, carry no trace_id: the same envelope pattern is exercised by the others)."""
    covered = {(p, pattern) for t, p, pattern in _identifiers() if simulated[t][p]}
    missing = {(p, pattern) for _, p, pattern in _identifiers()} - covered
    assert missing == set()


@pytest.mark.parametrize(("event_type", "path", "pattern"), _identifiers())
def test_identifiers_accept_every_simulated_value(simulated, event_type, path, pattern):
    values = sorted(simulated[event_type][path])
    refused = [v for v, ok in zip(values, _re2_matches(values, pattern), strict=True) if not ok]
    assert refused == []
    assert [v for v in values if not re.search(pattern, v)] == []


def test_identifiers_accept_the_test_factories_and_real_world_forms():
    by_name: dict[str, set[str]] = defaultdict(set)
    for kind in factories.PAYLOADS:
        event = factories.event(kind)
        out: dict[str, set[str]] = defaultdict(set)
        schema = next(s for n, s in SCHEMAS.items() if n.startswith(f"{kind} "))
        _values(event, schema["fields"], out)
        for path, values in out.items():
            by_name[f"{kind} {path}"] |= values
    generic = [
        "ORD-000123",
        "RPH_42",
        "0af7651916cd43dd8448eb211c80319c",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "3f2c1e6a-9b1d-4c8e-8f7a-2d5b6c7e8f90",
        "survey-db:S-0001",
    ]
    for event_type, path, pattern in _identifiers():
        samples = sorted(by_name.get(f"{event_type} {path}", set()))
        if path in ("event_id", "trace_id", "key") or path.endswith(("order_id", "batch_id")):
            samples += generic
        if path.endswith(("pharmacist_id", "operator_id", "analyst_id")):
            samples += ["RPH-042", "RPH_42", "QC-PL01-03", "E12345"]
        refused = [
            v for v, ok in zip(samples, _re2_matches(samples, pattern), strict=True) if not ok
        ]
        assert refused == [], f"{event_type} {path}"


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("pharmacist_id", ["RPH-2", "7"], ["jdoe", "jane.doe", "JANE_DOE"]),
        ("unit", ["°C", "%RH", "mg/mL", "CFU/10 mL", "% label claim"], ["Doe Jane", "5 mg"]),
        ("test_name", ["pH", "Purity (SEC-HPLC)", "Water content (KF)"], ["Jane Doe", "(x)"]),
        ("reject_code", ["70", "MR", "1Y"], ["7000", "mr"]),
        ("lot_numbers", ["L261101-1-01"], ["L" * 21, "LOT 1"]),
    ],
)
def test_tightened_patterns_have_their_shape(field, good, bad):
    pattern = next(p for _, path, p in _identifiers() if path == f"payload.{field}")
    assert _re2_matches(good, pattern) == [True] * len(good)
    assert _re2_matches(bad, pattern) == [False] * len(bad)


def test_lot_numbers_carry_the_identifier_rule_on_the_list_field():
    """A pattern on a string list applies to each item (docs/contracts.md)."""
    schema = SCHEMAS["logistics.shipment.created v1"]
    payload = next(f for f in schema["fields"] if f["name"] == "payload")["type"]
    lots = next(f for f in payload["fields"] if f["name"] == "lot_numbers")
    assert lots["type"] == {"type": "array", "items": "string"}
    assert lots["pharmaflow.identifier"] is True and lots["pharmaflow.pattern"]
