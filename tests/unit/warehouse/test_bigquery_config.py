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
