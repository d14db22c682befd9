"""Runtime configuration, from `PHARMAFLOW_*` environment variables.

A `.env` file is read only when asked for (`--env-file`, or `PHARMAFLOW_ENV_FILE`): a file
that happens to sit in the working directory must not silently choose the data dir or the keys.

One `data_dir` holds everything a run writes (lake, vault, warehouse, logs), so two runs with
different data dirs never share state. Keys default to files generated once per data dir
(`secrets/` inside it: for local use only, since a copy of the data dir then carries its keys);
in production they come from the environment (a secret manager) or from `secrets_dir` outside
the data dir.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class TimeWindow:
    """The plausible span of event timestamps, relative to the moment a batch is analysed.

    A clock reset (1970), a typo (2999) or a unit slip are valid ISO-8601 yet wrong, and would
    sit in the warehouse's date range forever; ingest quarantines them instead (`out_of_range`).
    `event_time` may run a little ahead (producers' clocks drift); other timestamps (a promised
    delivery) are legitimately in the future, up to `max_ahead`. Dates (a date of birth) span
    `date_min` to the day of ingest. Plain data, so it pickles to the worker processes."""

    minimum: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    event_time_ahead: timedelta = timedelta(hours=24)
    max_ahead: timedelta = timedelta(days=366)
    date_min: date = date(1900, 1, 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHARMAFLOW_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where lake, vault, warehouse and logs live.")
    batch_size: int = Field(100_000, gt=0, description="Events per ingest batch (one commit each).")
    ingest_workers: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=0,
        description="Processes decoding and validating batches (0: in the ingest process).",
    )
    hmac_key: SecretStr | None = Field(
        None, description="Key for patient tokens (64 hex chars). Default: generated per data dir."
    )
    vault_key: SecretStr | None = Field(
        None, description="AES-256 key (64 hex chars) for the PHI vault and quarantine."
    )
    secrets_dir: Path | None = Field(
        None,
        description="Folder of the generated key files (vault.key, hmac.key). Default: "
        "<data_dir>/secrets, for local use only; set it outside the data dir (or pass the "
        "keys in the environment) wherever the data dir may be copied.",
    )
    max_workers: int = Field(
        default_factory=lambda: max(8, 4 * (os.cpu_count() or 1)),
        gt=0,
        le=1024,
        description="Upper bound on --workers and PHARMAFLOW_INGEST_WORKERS (processes).",
    )
    reference_dir: Path | None = Field(
        None, description="Your own reference CSVs (products, facilities, ...) replacing the seeds."
    )
    dedupe_ttl_hours: int = Field(
        72,
        gt=0,
        description="Event-time window of ids kept in memory for dedupe; older events are "
        "checked against the lake's event index.",
    )
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Kafka cluster for `kafka://` URLs without a host, and for `demo`.",
    )
    kafka_username: str | None = Field(
        None, description="Kafka SASL user name (never in the URL: URLs are printed and logged)."
    )
    kafka_password: SecretStr | None = Field(None, description="Kafka SASL password.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="Kafka security.protocol; SASL_* when kafka_username is set.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="Kafka sasl.mechanism, used with kafka_username."
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve ingest metrics (Prometheus) on this port."
    )
    dbt_threads: int = Field(2, gt=0, description="Threads dbt uses for the warehouse build.")
    warehouse_target: Literal["duckdb", "postgres", "bigquery", "spark"] = Field(
        "duckdb",
        description="Where dbt builds silver and gold: the embedded DuckDB file, PostgreSQL, "
        "BigQuery or Spark.",
    )
    warehouse_dsn: str = Field(
        "postgresql://127.0.0.1:5432/postgres",
        description="PostgreSQL warehouse (target `postgres`): libpq URL, credentials included.",
    )
    bigquery_project: str | None = Field(None, description="GCP project (target `bigquery`).")
    bigquery_dataset: str = Field(
        "pharmaflow", description="BigQuery dataset prefix: <prefix>_bronze, _silver, _gold."
    )
    bigquery_location: str = Field("US", description="BigQuery location of the datasets.")
    bigquery_keyfile: Path | None = Field(
        None, description="Service-account key file; default: application default credentials."
    )
    # Spark (target `spark`, dbt-spark; docs/warehouse-targets.md). `session` runs Spark SQL in
    # this process (PySpark: a JVM, Java 17); the other methods reach a cluster's SQL endpoint.
    spark_method: Literal["session", "thrift", "http", "odbc"] = Field(
        "session",
        description="How dbt reaches Spark: `session` in this process, `thrift` a Spark Thrift "
        "Server (Dataproc, EMR), `http` a Databricks cluster, `odbc` Databricks (Simba driver).",
    )
    spark_master: str = Field(
        "local[*]", description="Spark master of the `session` method (`local[*]`, `yarn`, ...)."
    )
    spark_host: str | None = Field(
        None, description="Thrift server or Databricks workspace host (not `session`)."
    )
    spark_port: int | None = Field(
        None, ge=1, le=65535, description="Its port; default 10000 (thrift), 443 (http, odbc)."
    )
    spark_user: str | None = Field(None, description="Thrift user; default: the OS user.")
    spark_token: SecretStr | None = Field(
        None, description="Databricks personal access token (`http`, `odbc`)."
    )
    spark_cluster: str | None = Field(None, description="Databricks cluster id (`http`, `odbc`).")
    spark_endpoint: str | None = Field(
        None, description="Databricks SQL warehouse id (`odbc`, instead of a cluster)."
    )
    spark_organization: str = Field(
        "0", description="Databricks organization (workspace) id; `0` on AWS and GCP."
    )
    spark_odbc_driver: str | None = Field(
        None, description="Path of the Simba Spark ODBC driver (`odbc`)."
    )
    spark_lake_uri: str | None = Field(
        None,
        description="Where the cluster reads the lake (gs://, s3://, dbfs:/, ...); default: "
        "the local lake dir, which a `session` in local mode reads directly.",
    )
    spark_warehouse_dir: Path | None = Field(
        None,
        description="`session` in local mode: the tables, the Hive metastore (Derby) and its "
        "log; default <data_dir>/warehouse/spark.",
    )
    late_lookback_hours: float = Field(
        3.0,
        ge=0,
        description="Incremental builds re-read events ingested this long before the last "
        "build's newest one, for batches committed out of order.",
    )
    survey_dsn: str = Field(
        "postgresql://127.0.0.1:5432/postgres",
        description="PostgreSQL database holding survey_data.survey_responses.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level of the run log file."
    )
    log_format: Literal["json", "text"] = Field(
        "json",
        description="Run log lines: one JSON object per line (json), or plain text (text).",
    )
    timestamp_min: datetime = Field(
        datetime(2000, 1, 1, tzinfo=UTC),
        description="Earliest plausible timestamp (event_time and every other timestamp field; "
        "ISO-8601, UTC if no offset). Earlier ones are quarantined as out_of_range.",
    )
    event_time_max_ahead_hours: float = Field(
        24.0,
        ge=0,
        description="How far an event_time may lie after the moment its batch is ingested "
        "(producer clock drift); later ones are quarantined as out_of_range.",
    )
    timestamp_max_ahead_days: float = Field(
        366.0,
        ge=0,
        description="How far other timestamp fields (e.g. a promised delivery time, legitimately "
        "in the future) may lie after ingest; later ones are quarantined as out_of_range.",
    )

    realtime_store: str | None = Field(
        None,
        description="Speed-layer state: a SQLite file (default <data_dir>/realtime/state.db, "
        "WAL) or a postgresql:// URL.",
    )
    realtime_windows: list[int] = Field(
        [60, 300], min_length=1, description="Tumbling window widths of the speed layer, seconds."
    )
    realtime_allowed_lateness_s: float = Field(
        86_400.0,
        ge=0,
        description="How long after a window's end (event time) events still count in it; "
        "later ones are counted as late and left to the batch layer.",
    )
    realtime_retention_s: float = Field(
        7 * 86_400.0, gt=0, description="Closed windows older than this are compacted away."
    )
    realtime_stuck_hours: dict[str, float] = Field(
        default_factory=lambda: {
            "placed": 2.0,
            "insurance_validated": 24.0,
            "filled": 24.0,
            "shipped": 72.0,
        },
        description="Hours an order may wait in a stage before the speed layer counts it stuck "
        "(JSON object; stages placed, insurance_validated, filled, shipped).",
    )
    alert_rules: Path | None = Field(
        None, description="Alert rules (YAML) replacing the shipped default rules."
    )

    security_store: str | None = Field(
        None,
        description="API keys and the audit trail: a SQLite file (default "
        "<data_dir>/serve/security.db) or a postgresql:// URL.",
    )
    api_host: str = Field("127.0.0.1", description="Address the API (`pharmaflow serve`) binds.")
    api_port: int = Field(8000, ge=0, le=65535, description="Port of the API.")
    dashboard_port: int = Field(8501, ge=0, le=65535, description="Port of the dashboard.")
    api_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long the API and dashboard reuse an answer of the same query on the "
        "same warehouse snapshot (0: never).",
    )
    snapshots_kept: int = Field(
        3, ge=1, description="Read-only warehouse snapshots kept for serving (the newest serve)."
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking and registry store (default "
        "sqlite:///<data_dir>/ml/mlflow.db; any MLflow URI, e.g. http://mlflow:5000).",
    )
    ml_seed: int = Field(
        7, ge=0, description="Seed of every model's training (same seed, same data: same metrics)."
    )
    ml_drift_alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Drift check: a feature drifts when its two-sample test "
        "rejects at this level after a Bonferroni correction over the features.",
    )

    # `pharmaflow check` (orchestrate/check.py, docs/checks.md): a value above its threshold
    # is a breach.
    check_source_max_age_minutes: float = Field(
        60.0,
        gt=0,
        description="freshness_source: minutes since the newest batch of an event type was "
        "ingested before the type counts as stale.",
    )
    check_source_max_age_by_type: dict[str, float] = Field(
        default_factory=dict,
        description="freshness_source: minutes per event type replacing the default for "
        'quiet streams (JSON object, e.g. {"manufacturing.deviation.opened": 1440}).',
    )
    check_gold_max_age_hours: float = Field(
        12.0,
        gt=0,
        description="freshness_gold: hours since the newest event time of a gold fact or "
        "KPI table (as served) before it counts as stale.",
    )
    check_consumer_max_lag: int = Field(
        200_000,
        ge=0,
        description="consumer_lag: records a consumer group may be behind (high watermark "
        "minus committed offset, over its partitions); ingest commits once a batch has landed.",
    )
    check_groups: list[str] | None = Field(
        None,
        description="consumer_lag: the consumer groups to judge (JSON list). Default: the "
        "platform's default groups that have committed offsets.",
    )
    check_kafka_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="consumer_lag: seconds to wait for the broker before the rule says unknown.",
    )
    check_dead_letter_max_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="dead_letter_rate: largest share quarantined / (landed + quarantined) of "
        "the records ingested in the window.",
    )
    check_dead_letter_window_hours: float = Field(
        24.0, gt=0, description="dead_letter_rate: hours of ingest (by ingest time) judged."
    )
    check_delivery_sla_max_breaches: int = Field(
        50,
        ge=0,
        description="delivery_sla: orders past their promised delivery time and not "
        "delivered (nor cancelled) that are tolerated.",
    )
    check_delivery_sla_grace_hours: float = Field(
        0.0,
        ge=0,
        description="delivery_sla: hours past the promised time before an order counts.",
    )
    check_build_max_age_hours: float = Field(
        6.0, gt=0, description="build_age: hours since the last successful build."
    )
    check_failed_tests_max: int = Field(
        0, ge=0, description="failed_tests: dbt tests the newest build may have failed."
    )
    check_warehouse_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="freshness_gold, delivery_sla: seconds to connect to (and query) a "
        "PostgreSQL warehouse before the rules say unknown.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("realtime_windows")
    @classmethod
    def _window_widths(cls, value: list[int]) -> list[int]:
        if any(w <= 0 or 86_400 % w for w in value):
            raise ValueError("each window width must be a positive divisor of a day (seconds)")
        return sorted(set(value))

    @property
    def realtime_store_url(self) -> str:
        """Where the speed layer keeps its state (a SQLite path or a postgresql:// URL)."""
        return self.realtime_store or str(self.root / "realtime" / "state.db")

    @property
    def security_store_url(self) -> str:
        """Where API keys and the audit trail live (a SQLite path or a postgresql:// URL)."""
        return self.security_store or str(self.root / "serve" / "security.db")

    @property
    def ml_dir(self) -> Path:
        """The MLflow store and artifacts by default, and the model cards."""
        return self.data_dir / "ml"

    @property
    def tracking_uri(self) -> str:
        """Where MLflow tracks runs and registers models."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.ml_dir / 'mlflow.db'}"

    @property
    def truth_dir(self) -> Path:
        """Ground truth the simulator wrote beside the data (simulate/truth.py)."""
        return self.data_dir / "truth"

    @property
    def snapshots_dir(self) -> Path:
        """Read-only copies of the warehouse that serving reads (one per successful build)."""
        return self.warehouse_dir / "snapshots"

    @property
    def time_window(self) -> TimeWindow:
        """The timestamp plausibility window that validation applies (see `TimeWindow`)."""
        minimum = self.timestamp_min
        if minimum.tzinfo is None:
            minimum = minimum.replace(tzinfo=UTC)
        return TimeWindow(
            minimum=minimum.astimezone(UTC),
            event_time_ahead=timedelta(hours=self.event_time_max_ahead_hours),
            max_ahead=timedelta(days=self.timestamp_max_ahead_days),
        )

    @cached_property
    def root(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def lake_dir(self) -> Path:
        return self.root / "lake"

    @property
    def vault_dir(self) -> Path:
        return self.root / "vault"

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse_dir / "pharmaflow.duckdb"

    @property
    def spark_dir(self) -> Path:
        """The local Spark warehouse (target `spark`, `session` in local mode): tables under
        `tables/`, the Hive metastore in `metastore_db/`, Derby's `derby.log`; never the cwd."""
        if self.spark_warehouse_dir is not None:
            return self.spark_warehouse_dir.expanduser().resolve()
        return self.warehouse_dir / "spark"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def key_dir(self) -> Path:
        """Where generated key files live: `secrets_dir`, or `<data_dir>/secrets` (local use)."""
        if self.secrets_dir is not None:
            return self.secrets_dir.expanduser().resolve()
        return self.root / "secrets"
