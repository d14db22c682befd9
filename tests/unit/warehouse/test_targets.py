"""The dbt profile outputs of each warehouse target (no database needed)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse.runner import prepare_project
from pharmaflow.warehouse.targets import (
    check_target,
    postgres_connection_params,
    profile_outputs,
)


def test_a_postgres_url_gives_the_profile_fields():
    params = postgres_connection_params(
        "postgresql://pf%40user:p%3Ass@db.example:6543/warehouse?sslmode=require"
    )
    assert params == {
        "host": "db.example",
        "port": 6543,
        "user": "pf@user",
        "password": "p:ss",
        "dbname": "warehouse",
        "sslmode": "require",
    }


def test_a_key_value_dsn_and_libpq_defaults():
    params = postgres_connection_params("host=127.0.0.1 user=postgres")
    assert params == {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "postgres",
        "password": "",
        "dbname": "postgres",
    }


def test_a_dsn_that_is_not_one_is_refused():
    with pytest.raises(PharmaflowError, match="warehouse_dsn"):
        postgres_connection_params("postgresql://host:notaport/x")


def test_every_target_has_an_output(tmp_path: Path):
    keyfile = tmp_path / "key.json"
    settings = Settings(
        data_dir=tmp_path,
        warehouse_dsn="postgresql://u:pw@pg:5433/wh",
        bigquery_project="proj",
        bigquery_dataset="pf",
        bigquery_location="EU",
        bigquery_keyfile=keyfile,
        dbt_threads=3,
    )
    outputs = profile_outputs(settings)
    assert outputs["duckdb"] == {
        "type": "duckdb",
        "path": str(settings.warehouse_path),
        "threads": 3,
    }
    assert outputs["postgres"] == {
        "type": "postgres",
        "host": "pg",
        "port": 5433,
        "user": "u",
        "password": "pw",
        "dbname": "wh",
        "schema": "public",
        "threads": 3,
    }
    assert outputs["bigquery"] == {
        "type": "bigquery",
        "method": "service-account",
        "keyfile": str(keyfile.resolve()),
        "project": "proj",
        "dataset": "pf",
        "location": "EU",
        "threads": 3,
    }
    no_key = profile_outputs(settings.model_copy(update={"bigquery_keyfile": None}))
    assert no_key["bigquery"]["method"] == "oauth" and "keyfile" not in no_key["bigquery"]


def test_the_profile_selects_the_configured_target_and_is_private(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, warehouse_target="postgres")
    prepare_project(settings)
    profiles = settings.warehouse_dir / "dbt" / "profiles.yml"
    profile = orjson.loads(profiles.read_bytes())["pharmaflow"]
    assert profile["target"] == "postgres"
    assert set(profile["outputs"]) == {"duckdb", "postgres", "bigquery"}
    assert profiles.stat().st_mode & 0o777 == 0o600


def test_bigquery_without_a_project_fails_with_a_sentence(tmp_path: Path):
    with pytest.raises(PharmaflowError, match="BIGQUERY_PROJECT"):
        check_target(Settings(data_dir=tmp_path, warehouse_target="bigquery"))
