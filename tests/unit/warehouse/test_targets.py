"""The dbt profile outputs of each warehouse target (no database needed)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.warehouse.runner import prepare_project
from pharmaflow.warehouse.targets import (
    TARGETS,
    check_target,
    postgres_connection_params,
    target_output,
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
    outputs = {target: target_output(settings, target) for target in TARGETS}
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
    no_key = target_output(settings.model_copy(update={"bigquery_keyfile": None}), "bigquery")
    assert no_key["method"] == "oauth" and "keyfile" not in no_key


def test_the_profile_selects_the_configured_target_and_is_private(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, warehouse_target="postgres")
    prepare_project(settings)
    profiles = settings.warehouse_dir / "dbt" / "profiles.yml"
    profile = orjson.loads(profiles.read_bytes())["pharmaflow"]
    assert profile["target"] == "postgres"
    assert set(profile["outputs"]) == {"postgres"}
    assert profiles.stat().st_mode & 0o777 == 0o600


def test_a_secret_reaches_the_profile_only_when_its_target_needs_it(tmp_path: Path):
    """The DuckDB profile holds no PostgreSQL password and no BigQuery keyfile path; a DSN
    that is not even valid does not stop a DuckDB build."""
    keyfile = tmp_path / "service-account.json"
    common = {
        "data_dir": tmp_path / "data",
        "bigquery_project": "proj",
        "bigquery_keyfile": keyfile,
    }
    profiles = tmp_path / "data" / "warehouse" / "dbt" / "profiles.yml"
    for target, dsn in (
        ("duckdb", "postgresql://pf:s3cret-pw@db.internal:5432/wh"),
        ("duckdb", "not a dsn ==="),
        ("bigquery", "postgresql://pf:s3cret-pw@db.internal:5432/wh"),
    ):
        prepare_project(Settings(**common, warehouse_target=target, warehouse_dsn=dsn))
        text = profiles.read_text()
        assert "s3cret-pw" not in text and "db.internal" not in text
        assert orjson.loads(text)["pharmaflow"]["outputs"].keys() == {target}
        assert (str(keyfile) in text) == (target == "bigquery")
    prepare_project(
        Settings(
            **common,
            warehouse_target="postgres",
            warehouse_dsn="postgresql://pf:s3cret-pw@db.internal:5432/wh",
        )
    )
    text = profiles.read_text()
    assert "s3cret-pw" in text and str(keyfile) not in text


def test_bigquery_without_a_project_fails_with_a_sentence(tmp_path: Path):
    with pytest.raises(PharmaflowError, match="BIGQUERY_PROJECT"):
        check_target(Settings(data_dir=tmp_path, warehouse_target="bigquery"))


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://svc:s3cretpw@db.example:5432/wh?bogus=1",
        "host=db.example password=s3cretpw sslmode",
    ],
)
def test_a_bad_dsn_is_one_line_without_its_password(dsn):
    from pharmaflow.warehouse.targets import postgres_connection_params

    with pytest.raises(PharmaflowError) as info:
        postgres_connection_params(dsn)
    assert "warehouse_dsn" in str(info.value) and "s3cretpw" not in str(info.value)
