"""Silver reads every payload column with the type its contract implies.

A silver column typed narrower than the contract (INTEGER for an Avro long, DECIMAL(12,2) for a
double that may carry 3 decimals, a timestamp read as a date) turns a valid event's value into
NULL or a rounded number without an error. This reads the models' `payload_columns` and the
contracts and compares them; it needs no warehouse build.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pharmaflow.contracts.model import FieldSpec, Kind
from pharmaflow.contracts.registry import default_registry
from tests.warehouse_read import silver_payload_columns

LAKE_LAYOUT = Path(__file__).parents[3] / "docs" / "lake-layout.md"

_SIMPLE = {
    Kind.STRING: "string",
    Kind.ENUM: "string",
    Kind.DOUBLE: "double",
    Kind.BOOLEAN: "boolean",
    Kind.DATE: "date",
    Kind.TIMESTAMP: "timestamp",
    Kind.STRING_LIST: "string_list",
}
_JSON_EXAMPLE = {str: "string", int: "int", bool: "boolean", float: "double"}


def implied_type(spec: FieldSpec) -> str:
    """The silver column type (json_payload.sql vocabulary) that holds every valid value."""
    if spec.kind is Kind.INT:
        return {"int": "int", "long": "bigint"}[spec.avro_type]
    if spec.kind is Kind.DECIMAL:
        # the warehouse's one decimal type is DECIMAL(12,2) (pf_duckdb_json_type)
        return "decimal" if (spec.precision, spec.scale) == (12, 2) else "decimal(?)"
    return _SIMPLE[spec.kind]


def protected_patient() -> dict[str, str]:
    """The patient record as bronze holds it after PHI protection (docs/lake-layout.md)."""
    example = re.search(r'```json\n(\{"patient_key".*?\})\n```', LAKE_LAYOUT.read_text(), re.S)
    assert example, "docs/lake-layout.md no longer shows the protected patient"
    return {k: _JSON_EXAMPLE[type(v)] for k, v in json.loads(example.group(1)).items()}


def _contract_types(event_type: str) -> dict[str, str]:
    contract = default_registry().get(event_type)
    assert contract is not None, event_type
    types = {
        leaf.path.removeprefix("payload."): implied_type(leaf) for leaf in contract.payload.leaves()
    }
    if any(spec.phi and spec.phi != "free_text" for spec in contract.phi_fields):
        types = {k: v for k, v in types.items() if not k.startswith("patient.")}
        types.update({f"patient.{k}": v for k, v in protected_patient().items()})
    return types


MODELS = silver_payload_columns()


def test_every_event_type_has_a_silver_model():
    assert sorted(MODELS) == default_registry().event_types()


@pytest.mark.parametrize("event_type", sorted(MODELS))
def test_silver_column_types_are_the_contract_types(event_type):
    expected = _contract_types(event_type)
    declared = {path: kind for _, kind, path in MODELS[event_type]}
    unknown = sorted(set(declared) - set(expected))
    assert not unknown, f"silver reads fields the contract does not have: {unknown}"
    wrong = {
        path: f"silver {kind}, contract implies {expected[path]}"
        for path, kind in declared.items()
        if kind != expected[path]
    }
    assert not wrong, wrong
