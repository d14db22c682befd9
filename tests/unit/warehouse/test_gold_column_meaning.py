"""One column name means one thing across gold.

An analyst who learns `delivered_at` in one gold table must be able to rely on it in the next:
this reads every gold YAML and fails when a column name carries different descriptions in
different gold models. A column whose meaning truly differs per model goes in EXEMPT with the
reason written beside it (today only `nps`).
"""

from __future__ import annotations

import re
from collections import defaultdict

import yaml

from pharmaflow.warehouse.runner import PROJECT_DIR

GOLD = PROJECT_DIR / "models" / "gold"

# column name -> why its description may differ per model (only where truly needed)
EXEMPT: dict[str, str] = {
    "nps": (
        "two established readings of one industry term: fact_survey.nps is a respondent's 0-10"
        " answer, kpi_nps.nps the Net Promoter Score (-100..100) computed from those answers;"
        " both columns are read by consumers, so neither is renamed. Do not add a third."
    ),
}


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def gold_columns() -> dict[str, dict[str, str]]:
    """column name -> {model: description} over every gold YAML."""
    columns: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted(GOLD.rglob("*.yml")):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            for column in model.get("columns", []):
                columns[column["name"]][model["name"]] = normalised(column.get("description"))
    return columns


def conflicts(columns: dict[str, dict[str, str]]) -> dict[str, dict[str, list[str]]]:
    """column -> {description: [models]} for the names with more than one description."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, by_model in columns.items():
        meanings: dict[str, list[str]] = defaultdict(list)
        for model, description in sorted(by_model.items()):
            meanings[normalised(description)].append(model)
        if len(meanings) > 1 and name not in EXEMPT:
            out[name] = dict(meanings)
    return out


def test_every_gold_model_is_in_a_domain_folder_with_its_yaml():
    loose = sorted(p.name for p in GOLD.glob("*.sql"))
    assert loose == [], "gold models live in models/gold/<domain>/"
    for folder in sorted(p for p in GOLD.iterdir() if p.is_dir()):
        documented = {
            m["name"]
            for y in folder.glob("*.yml")
            for m in yaml.safe_load(y.read_text()).get("models", [])
        }
        assert {p.stem for p in folder.glob("*.sql")} == documented, folder.name


def test_a_column_name_has_one_description_across_gold_models():
    columns = gold_columns()
    shared = [name for name, by_model in columns.items() if len(by_model) > 1]
    assert "delivered_at" in shared and len(shared) > 20  # the audit reads the real YAMLs
    assert conflicts(columns) == {}


def test_exemptions_name_real_shared_columns_and_say_why():
    columns = gold_columns()
    for name, reason in EXEMPT.items():
        assert len(columns.get(name, {})) > 1, f"{name} is not shared: drop the exemption"
        assert len(reason) > 20, f"{name}: write why its meaning differs per model"


def test_the_check_sees_a_conflict():
    columns = {"delivered_at": {"a": "First delivery.", "b": "Latest delivery."}}
    assert conflicts(columns) == {
        "delivered_at": {"First delivery.": ["a"], "Latest delivery.": ["b"]}
    }
    assert conflicts({"x": {"a": "Same  text.", "b": "Same text."}}) == {}
