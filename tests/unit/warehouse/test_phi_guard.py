"""The warehouse PHI guard (a dbt test) must run after every gold model, new ones included."""

from __future__ import annotations

import re

from pharmaflow.warehouse.runner import PROJECT_DIR


def test_the_phi_guard_runs_after_every_gold_model():
    guard = (PROJECT_DIR / "tests" / "assert_no_direct_patient_identifiers.sql").read_text()
    listed = set(re.findall(r"'([a-z_0-9]+)'", guard.split("for model in")[1].split("%}")[0]))
    models = {p.stem for p in (PROJECT_DIR / "models" / "gold").rglob("*.sql")}
    assert models == listed
