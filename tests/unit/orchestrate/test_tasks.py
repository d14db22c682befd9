"""How the marts DAG's per-node tasks read one build's node statuses."""

from __future__ import annotations

import pytest

from pharmaflow.orchestrate.tasks import TaskFailed, node_outcome

BUILD = {
    "dbt_log": "/data/warehouse/dbt/logs/dbt.log",
    "nodes": {
        "fact_shipment": "success",
        "unique_fact_shipment_shipment_id": "pass",
        "not_null_fact_shipment_carrier_id": "fail",
        "dim_date": "success",
        "unique_dim_date_date_day": "pass",
        "accepted_values_dim_date_x": "warn",
        "kpi_quality": "error",
        "fact_batch_production": "skipped",
    },
}


def test_a_model_that_built_with_passing_tests_succeeds() -> None:
    tests = ["unique_dim_date_date_day", "accepted_values_dim_date_x"]  # a warning passes
    assert node_outcome(BUILD, "dim_date", tests) == "success"


def test_a_failed_test_fails_the_model_it_tests_naming_it() -> None:
    tests = ["unique_fact_shipment_shipment_id", "not_null_fact_shipment_carrier_id"]
    with pytest.raises(TaskFailed, match="1 test\\(s\\) failed: not_null_fact_shipment_carrier_id"):
        node_outcome(BUILD, "fact_shipment", tests)


def test_an_errored_model_fails_and_points_at_dbts_log() -> None:
    with pytest.raises(TaskFailed, match=r"kpi_quality: error .*dbt\.log"):
        node_outcome(BUILD, "kpi_quality", [])


def test_a_node_dbt_skipped_or_never_saw_is_skipped() -> None:
    assert node_outcome(BUILD, "fact_batch_production", []) == "skipped"
    assert node_outcome(BUILD, "not_in_this_build", []) == "skipped"
    assert node_outcome({}, "dim_date", []) == "skipped"
