"""A failing data test names the events it found; set-aside rows are counted per rule.

Against a real DuckDB file shaped like the warehouse (silver table, silver._rejected), with the
SQL dbt compiles for the tests (not_null, accepted_values, a singular test with event_id,
a gold-style test without one).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from pharmaflow.config import Settings
from pharmaflow.warehouse.set_aside import (
    describe_failed_test,
    failing_rows,
    set_aside_counts,
)
from pharmaflow.warehouse.targets import warehouse_query

RELATION = '"pharmaflow"."silver"."pharmacy_order_filled"'
NOT_NULL_SQL = f"select lot_number\nfrom {RELATION}\nwhere lot_number is null\n"
ACCEPTED_SQL = (
    f"with all_values as (select status as value_field, count(*) as n_records from {RELATION} "
    "group by status) select * from all_values where value_field not in ('OK')"
)


@pytest.fixture
def query(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    settings.warehouse_path.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create schema silver")
        con.execute("create schema gold")
        con.execute(
            "create table silver.pharmacy_order_filled as select * from (values "
            "('e1', 'O-1', 'L-1', 'OK'), ('e2', 'O-2', null, 'OK'), ('e3', 'O-3', null, 'BAD'),"
            " ('e4', 'O-4', 'L-4', 'BAD')) t(event_id, order_id, lot_number, status)"
        )
        con.execute(
            "create table silver._rejected as select * from (values "
            "('x1', 'silver_a', 'missing_value'), ('x2', 'silver_a', 'missing_value'),"
            " ('x3', 'silver_b', 'duplicate_key')) t(event_id, model, rule)"
        )
        con.execute(
            "create table gold.fact_x as select * from (values ('O-9', 'pk_secret', 3)) "
            "t(order_id, patient_key, hours)"
        )
    run = warehouse_query(settings)
    assert run is not None
    return run


def node(sql: str, column: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        name="a_test",
        compiled_code=sql,
        attached_node="model.pharmaflow.silver_pharmacy_order_filled" if column else None,
        column_name=column,
    )


MANIFEST = {
    "model.pharmaflow.silver_pharmacy_order_filled": {
        "relation_name": RELATION,
        "columns": {"event_id": {}, "lot_number": {}, "status": {}},
    }
}


def test_a_not_null_test_names_the_events_behind_its_null_values(query):
    failed = describe_failed_test(query, node(NOT_NULL_SQL, "lot_number"), "fail", MANIFEST)
    assert failed.event_ids == ["e2", "e3"]
    assert failed.describe() == "a_test: fail; event_id e2, e3"


def test_an_accepted_values_test_names_the_events_with_the_refused_value(query):
    failed = describe_failed_test(query, node(ACCEPTED_SQL, "status"), "fail", MANIFEST)
    assert failed.event_ids == ["e3", "e4"]
    assert "BAD" not in failed.describe()  # values are never shown


def test_rows_with_an_event_id_give_it_directly_at_most_ten(query):
    sql = f"select event_id, order_id from {RELATION} cross join range(20) where event_id <> 'e1'"
    event_ids, keys = failing_rows(query, sql)
    assert sorted(event_ids) == ["e2", "e3", "e4"] and keys == []
    assert len(failing_rows(query, "select 'e' || i as event_id from range(50) t(i)")[0]) == 10


def test_rows_without_event_id_give_their_id_columns_only(query):
    sql = 'select * from "pharmaflow"."gold"."fact_x"'
    failed = describe_failed_test(query, node(sql), "fail", MANIFEST)
    assert failed.event_ids == [] and failed.keys == ["order_id=O-9"]
    assert "pk_secret" not in failed.describe()


def test_an_error_or_unreadable_sql_gives_the_bare_name(query):
    assert describe_failed_test(query, node(NOT_NULL_SQL), "error", MANIFEST).describe() == (
        "a_test: error"
    )
    assert describe_failed_test(query, node("select * from nowhere"), "fail", {}).describe() == (
        "a_test: fail"
    )


def test_set_aside_rows_are_counted_per_table_model_and_rule(query):
    counts = [(s.table, s.model, s.rule, s.rows) for s in set_aside_counts(query)]
    assert counts == [
        ("silver._rejected", "silver_a", "missing_value", 2),
        ("silver._rejected", "silver_b", "duplicate_key", 1),
    ]
