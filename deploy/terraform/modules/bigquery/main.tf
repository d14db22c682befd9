# BigQuery warehouse: the four datasets dbt builds in (`<prefix>_bronze`, `_silver`, `_gold`,
# `_reference`: macros/generate_schema_name.sql) and the bronze tables the loader writes.
#
# Who owns what:
# - Terraform owns the datasets (location, encryption, retention behaviour) and the bronze tables,
#   because bronze is the raw arrival log: its schema is the lake's (docs/lake-layout.md,
#   macros/bronze.sql `pf_bronze_columns()`), not something a dbt run may change.
# - dbt owns every silver, gold and reference table (it creates and replaces them). Their
#   partitioning and clustering are set in the models with `pf_bq_partition` / `pf_bq_cluster`
#   (macros/bigquery.sql). `local.dbt_physical_design` below restates them so a reviewer sees the
#   whole physical design here, and tests/unit/deploy/test_terraform.py fails when it and the
#   models' `config(...)` disagree. Terraform creates none of those tables.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

locals {
  layers = toset(["bronze", "silver", "gold", "reference"])

  # One bronze table per event type, named like the dbt `bronze` source tables
  # (models/bronze/sources.yml: the event type with "." replaced by "_").
  bronze_event_types = [
    "pharmacy.order.placed",
    "pharmacy.order.insurance_validated",
    "pharmacy.order.filled",
    "pharmacy.order.shipped",
    "pharmacy.order.delivered",
    "pharmacy.order.cancelled",
    "manufacturing.batch.status",
    "manufacturing.sensor.reading",
    "manufacturing.lab.result",
    "manufacturing.deviation.opened",
    "manufacturing.deviation.closed",
    "logistics.shipment.created",
    "logistics.shipment.scanned",
    "logistics.shipment.delivered",
    "logistics.shipment.exception",
    "logistics.temperature.reading",
    "feedback.survey.submitted",
    "sales.sale.completed",
  ]
  bronze_tables = toset([for t in local.bronze_event_types : replace(t, ".", "_")])

  # macros/bronze.sql `pf_bronze_columns()` in BigQuery types (dbt's type_string, type_int,
  # type_bigint, type_timestamp on bigquery). Timestamps are UTC. Every column is NULLABLE, as
  # the lake's Parquet fields are: a load job refuses a NULLABLE Parquet field into a REQUIRED
  # column, and not_null is asserted by the dbt source tests instead (models/bronze/sources.yml).
  bronze_columns = [
    { name = "event_id", type = "STRING", mode = "NULLABLE" },
    { name = "event_type", type = "STRING", mode = "NULLABLE" },
    { name = "event_version", type = "INT64", mode = "NULLABLE" },
    { name = "event_time", type = "TIMESTAMP", mode = "NULLABLE" },
    { name = "source_system", type = "STRING", mode = "NULLABLE" },
    { name = "trace_id", type = "STRING", mode = "NULLABLE" },
    { name = "key", type = "STRING", mode = "NULLABLE" },
    { name = "event_json", type = "STRING", mode = "NULLABLE" },
    { name = "payload", type = "STRING", mode = "NULLABLE" },
    { name = "ingest_time", type = "TIMESTAMP", mode = "NULLABLE" },
    { name = "source", type = "STRING", mode = "NULLABLE" },
    { name = "source_uri", type = "STRING", mode = "NULLABLE" },
    { name = "source_partition", type = "INT64", mode = "NULLABLE" },
    { name = "source_offset", type = "INT64", mode = "NULLABLE" },
    { name = "batch_id", type = "STRING", mode = "NULLABLE" },
  ]

  # The dbt-owned tables' physical design, as the models set it on BigQuery: documentation and a
  # tested contract, not resources. partition = [field, data_type, granularity] of
  # pf_bq_partition(field, data_type='timestamp', granularity='day'); cluster = pf_bq_cluster.
  # Every silver model (silver_<bronze table>) is partitioned by event day and clustered by the
  # envelope key; the gold facts by their own event time and the keys they are filtered on.
  dbt_silver_design = {
    partition = ["event_time", "timestamp", "day"]
    cluster   = ["key"]
  }
  dbt_gold_design = {
    fact_order_lifecycle = {
      partition = ["placed_at", "timestamp", "day"]
      cluster   = ["pharmacy_id", "current_status", "ndc"]
    }
    fact_batch_production = {
      partition = ["status_changed_at", "timestamp", "day"]
      cluster   = ["site_id", "ndc", "quality_flag"]
    }
    fact_deviation = {
      partition = ["opened_at", "timestamp", "day"]
      cluster   = ["batch_id", "severity"]
    }
    fact_shipment = {
      partition = ["created_at", "timestamp", "day"]
      cluster   = ["carrier_id", "origin_facility_id", "current_status"]
    }
    fact_shipment_temperature_hourly = {
      partition = ["reading_hour", "timestamp", "day"]
      cluster   = ["shipment_id"]
    }
    fact_survey = {
      partition = ["submitted_at", "timestamp", "day"]
      cluster   = ["pharmacy_id", "ndc"]
    }
    fact_sales_daily = {
      partition = ["sale_date", "date", "day"]
      cluster   = ["pharmacy_id", "ndc"]
    }
    fact_sales_daily_local = {
      partition = ["business_date", "date", "day"]
      cluster   = ["pharmacy_id", "ndc"]
    }
  }
  dbt_physical_design = merge(
    { for t in local.bronze_tables : "silver_${t}" => merge(local.dbt_silver_design, { dataset = "silver" }) },
    { for m, d in local.dbt_gold_design : m => merge(d, { dataset = "gold" }) },
  )
}

resource "google_bigquery_dataset" "layer" {
  for_each = local.layers

  project       = var.project_id
  dataset_id    = "${var.dataset_prefix}_${each.key}"
  friendly_name = "pharmaflow ${each.key}"
  description   = "pharmaflow ${each.key} layer (bronze: Terraform-owned raw arrival log; silver, gold, reference: built by dbt)."
  location      = var.location

  # No default table or partition expiration: warehouse tables are GxP records (and bronze a
  # copy of the raw record) and must not silently age out; retention is decided per record type.
  # Refuse `terraform destroy` of a dataset that still holds tables.
  delete_contents_on_destroy = false
  max_time_travel_hours      = var.max_time_travel_hours

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  labels = merge(var.labels, { layer = each.key })
}

# The bronze tables the loader appends to. Partitioned by ingest day, as the lake is
# (docs/lake-layout.md: bronze is filed by ingest time, not event time), so a load or an
# incremental silver build touches only the newest partitions; clustered by batch_id because
# silver selects the batches it has not read yet. No required partition filter: silver's
# incremental select filters on batch_id, which a partition filter requirement would refuse.
resource "google_bigquery_table" "bronze" {
  # deletion_protection is an input: prod sets true, dev false so the environment can be torn
  # down; tests/unit/deploy/test_terraform.py asserts prod's value.
  #checkov:skip=CKV_GCP_121:deletion protection is per environment: true in prod (asserted by tests/unit/deploy/test_terraform.py), false in disposable dev
  for_each = local.bronze_tables

  project     = var.project_id
  dataset_id  = google_bigquery_dataset.layer["bronze"].dataset_id
  table_id    = each.key
  description = "Bronze rows of one event type (raw arrival log, PHI already protected by ingest); loaded from committed lake batches."

  deletion_protection = var.deletion_protection

  time_partitioning {
    type  = "DAY"
    field = "ingest_time"
  }
  require_partition_filter = false
  clustering               = ["batch_id", "event_id"]

  schema = jsonencode(local.bronze_columns)

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }

  labels = merge(var.labels, { layer = "bronze" })
}
