"""docs/contracts.md is generated from the schema files and kept true by these tests."""

from __future__ import annotations

import copy
from pathlib import Path

from pharmaflow.contracts.docs import PATTERN_NOTES, main, render_contracts_doc
from pharmaflow.contracts.registry import ContractRegistry, default_registry

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "contracts.md"
REGENERATE = "run `python -m pharmaflow.contracts.docs docs/contracts.md` and commit the result"


def test_committed_doc_matches_the_schemas():
    assert COMMITTED.read_text() == render_contracts_doc(), REGENERATE


def test_every_event_type_and_field_is_documented():
    text = render_contracts_doc()
    registry = default_registry()
    for contract in registry:
        section = text.split(f"### `{contract.event_type}` v{contract.version}\n")[1]
        section = section.split("\n### ")[0]
        for leaf in contract.payload.leaves():
            assert f"| `{leaf.path}` |" in section, leaf.path
        assert f"Key: `payload.{contract.key_field}`" in section
    for spec in registry.envelope:
        assert f"| `{spec.name}` |" in text.split("## The envelope")[1].split("\n## ")[0]


def test_every_pattern_in_use_has_a_note_and_every_note_a_pattern():
    used = {
        line.removeprefix("- `").removesuffix("`")
        for line in render_contracts_doc().split("## Patterns")[1].split("\n## ")[0].splitlines()
        if line.startswith("- `")
    }
    assert used == set(PATTERN_NOTES)
    assert "(no note)" not in render_contracts_doc()


def test_a_schema_change_changes_the_doc():
    """The tables come from the schemas: a new rule shows up without touching docs.py."""
    registry = ContractRegistry()
    for contract in default_registry():
        schema = copy.deepcopy(contract.schema)
        if contract.event_type == "pharmacy.order.delivered":
            payload = next(f for f in schema["fields"] if f["name"] == "payload")
            payload["type"]["fields"].append(
                {"name": "signed_by", "type": ["null", "string"], "default": None}
            )
        registry.register(schema)
    text = render_contracts_doc(registry)
    assert "| `payload.signed_by` | string | no |  |  |" in text
    assert text != render_contracts_doc()


def test_main_writes_the_file(tmp_path, capsys):
    out = tmp_path / "docs" / "contracts.md"
    assert main([str(out)]) == 0
    assert out.read_text() == render_contracts_doc()
    assert main([]) == 0
    assert capsys.readouterr().out == render_contracts_doc()
