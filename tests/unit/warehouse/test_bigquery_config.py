"""Every large model (silver, incremental gold facts) declares its BigQuery partitioning and
clustering, through the macros that apply them only on BigQuery."""

from __future__ import annotations

import re

from pharmaflow.warehouse.runner import PROJECT_DIR


def test_every_silver_model_and_gold_fact_is_partitioned_and_clustered_on_bigquery():
    models = sorted((PROJECT_DIR / "models" / "silver").glob("*.sql"))
    models += sorted((PROJECT_DIR / "models" / "gold").rglob("fact_*.sql"))
    assert len(models) == 18 + 8
    for path in models:
        config = path.read_text().split(") }}")[0]
        assert re.search(r"partition_by=pf_bq_partition\('\w+'", config), path.name
        assert re.search(r"cluster_by=pf_bq_cluster\(\[", config), path.name
        # a bare dict would reach dbt-duckdb, which reads partition_by as partitioned writes
        assert "partition_by={" not in path.read_text(), path.name


# Dispatched macros that DuckDB overrides and BigQuery takes in their default version, and why
# that default is BigQuery SQL. A new duckdb__ macro must get a bigquery__ one
# (macros/bigquery/) or a line here: the compile test then checks what it renders.
BIGQUERY_USES_THE_DEFAULT = {
    "bronze": "the `bronze` source: the tables load_bigquery.py loads",
    "pf_bronze_unread": "a filter of that table on _unread_batches",
    "pf_committed_batches_sql": "select distinct batch_id from the bronze table",
    "pf_late_payload": "bronze holds `payload` (the loader extracts it, as for PostgreSQL)",
    "pf_set_aside_event_dup": "null: the loader took DuckDB's payload (as for PostgreSQL)",
    "pf_set_aside_raw": "null: the BigQuery checks read the parsed JSON (macros/bigquery/)",
}


def _macro_names(pattern: str) -> set[str]:
    names: set[str] = set()
    for path in (PROJECT_DIR / "macros").rglob("*.sql"):
        names |= set(re.findall(pattern, path.read_text()))
    return names


def test_every_macro_duckdb_overrides_has_a_bigquery_decision():
    duckdb = _macro_names(r"macro duckdb__(\w+)\(")
    bigquery = _macro_names(r"macro bigquery__(\w+)\(")
    undecided = duckdb - bigquery - set(BIGQUERY_USES_THE_DEFAULT)
    assert undecided == set(), "a bigquery__ macro or a BIGQUERY_USES_THE_DEFAULT entry"
    # and the list above stays true: none of them got a BigQuery version meanwhile
    assert set(BIGQUERY_USES_THE_DEFAULT) & bigquery == set()
    assert set(BIGQUERY_USES_THE_DEFAULT) <= duckdb


def test_no_bigquery_macro_is_a_placeholder():
    """The port is written (macros/bigquery/, plus two older ones beside their defaults): no
    bigquery__ macro raises "not yet" at compile time any more."""
    bodies = []
    for path in (PROJECT_DIR / "macros").rglob("*.sql"):
        bodies += re.findall(r"macro bigquery__\w+\(.*?endmacro", path.read_text(), re.S)
    assert len(bodies) >= 20
    for body in bodies:
        assert "raise_compiler_error" not in body or "unknown payload column type" in body, body
