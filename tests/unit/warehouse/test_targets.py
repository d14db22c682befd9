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
    redact_secrets,
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


# ---------------------------------------------------------------- spark


def test_the_spark_session_keeps_its_warehouse_and_metastore_in_the_data_dir(tmp_path: Path):
    """Local mode: tables, the Derby metastore and derby.log under <data_dir>/warehouse/spark
    (never the working directory), UTC session zone, loopback only, no web UI."""
    settings = Settings(data_dir=tmp_path, warehouse_target="spark", dbt_threads=3)
    output = target_output(settings, "spark")
    home = tmp_path.resolve() / "warehouse" / "spark"
    assert settings.spark_dir == home
    assert {k: output[k] for k in ("type", "method", "schema", "threads")} == {
        "type": "spark",
        "method": "session",
        "schema": "default",
        "threads": 3,
    }
    conf = output["server_side_parameters"]
    assert conf["spark.master"] == "local[*]"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.warehouse.dir"] == str(home / "tables")
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == (
        f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
    )
    assert f'-Dderby.system.home="{home}"' in conf["spark.driver.extraJavaOptions"]
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false"
    elsewhere = Settings(data_dir=tmp_path, spark_warehouse_dir=tmp_path / "sw")
    assert elsewhere.spark_dir == (tmp_path / "sw").resolve()


def test_a_spark_session_on_a_cluster_keeps_the_clusters_own_configuration(tmp_path: Path):
    """master yarn (a session on a Dataproc / EMR node): the cluster's metastore and
    warehouse apply; pharmaflow only sets the session time zone."""
    settings = Settings(data_dir=tmp_path, warehouse_target="spark", spark_master="yarn")
    conf = target_output(settings, "spark")["server_side_parameters"]
    assert conf["spark.master"] == "yarn" and conf["spark.sql.session.timeZone"] == "UTC"
    assert not any("warehouse" in k or "jdo" in k or "bindAddress" in k for k in conf)


def test_the_remote_spark_methods_give_dbt_sparks_fields(tmp_path: Path):
    common = {"data_dir": tmp_path, "warehouse_target": "spark", "spark_host": "sql.example"}
    thrift = target_output(Settings(**common, spark_method="thrift", spark_user="etl"), "spark")
    assert thrift == {
        "type": "spark",
        "method": "thrift",
        "schema": "default",
        "threads": 2,
        "host": "sql.example",
        "port": 10000,
        "user": "etl",
        "server_side_parameters": {"spark.sql.session.timeZone": "UTC"},
    }
    databricks = {**common, "spark_token": "dapi-s3cret", "spark_organization": "123"}
    http = target_output(
        Settings(**databricks, spark_method="http", spark_cluster="0101-abc"), "spark"
    )
    assert {k: http[k] for k in ("method", "port", "token", "cluster", "organization")} == {
        "method": "http",
        "port": 443,
        "token": "dapi-s3cret",
        "cluster": "0101-abc",
        "organization": "123",
    }
    odbc = target_output(
        Settings(**databricks, spark_method="odbc", spark_endpoint="wh1", spark_odbc_driver="/d"),
        "spark",
    )
    assert odbc["endpoint"] == "wh1" and odbc["driver"] == "/d" and "cluster" not in odbc


@pytest.mark.parametrize(
    ("method", "given", "named"),
    [
        ("thrift", {}, ["PHARMAFLOW_SPARK_HOST"]),
        ("http", {"spark_host": "h"}, ["PHARMAFLOW_SPARK_TOKEN", "PHARMAFLOW_SPARK_CLUSTER"]),
        (
            "odbc",
            {"spark_host": "h", "spark_token": "t"},
            ["PHARMAFLOW_SPARK_ODBC_DRIVER", "PHARMAFLOW_SPARK_CLUSTER (or"],
        ),
    ],
)
def test_a_remote_spark_method_without_its_settings_fails_with_a_sentence(
    tmp_path: Path, method: str, given: dict[str, str], named: list[str]
):
    settings = Settings(data_dir=tmp_path, warehouse_target="spark", spark_method=method, **given)
    with pytest.raises(PharmaflowError) as info:
        check_target(settings)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and f"method {method}" in message
    assert all(name in message for name in named), message


def test_a_local_spark_session_without_java_fails_with_a_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `java` on it
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(PharmaflowError, match="Java 17"):
        check_target(Settings(data_dir=tmp_path, warehouse_target="spark"))


def test_the_databricks_token_reaches_only_the_spark_profile_and_never_a_message(
    tmp_path: Path,
):
    common = {
        "data_dir": tmp_path / "data",
        "spark_method": "http",
        "spark_host": "dbc.example",
        "spark_cluster": "c1",
        "spark_token": "dapi-t0ken-s3cret",
    }
    profiles = tmp_path / "data" / "warehouse" / "dbt" / "profiles.yml"
    prepare_project(Settings(**common, warehouse_target="duckdb"))
    assert "dapi-t0ken-s3cret" not in profiles.read_text()
    on_spark = Settings(**common, warehouse_target="spark")
    prepare_project(on_spark)
    assert "dapi-t0ken-s3cret" in profiles.read_text()
    assert profiles.stat().st_mode & 0o777 == 0o600
    assert "dapi-t0ken-s3cret" not in repr(on_spark)
    said = redact_secrets(on_spark, "could not connect with PWD=dapi-t0ken-s3cret;HOST=x")
    assert said == "could not connect with PWD=***;HOST=x"
