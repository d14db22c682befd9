# Identities and their grants: one service account per service, each granted predefined roles
# on the one resource it uses (a dataset, a bucket, a subscription, a topic), never a primitive
# role (owner, editor, viewer) and never an admin role on the project.
#
# Two roles can only be granted on the project, both narrow:
# - roles/bigquery.jobUser: running a query is a project-level permission (bigquery.jobs.create);
#   what a job may read or write is still decided by the dataset grants below.
# - roles/composer.worker: Composer 3 requires it of the environment's service account.
#
# Secret accessors are granted in the secrets module, Cloud Run invokers in the cloudrun module,
# next to the resources they guard.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  services = {
    api       = "pharmaflow analytics API (pharmaflow serve)"
    dashboard = "pharmaflow dashboard (pharmaflow dashboard)"
    ingest    = "pharmaflow ingest worker: Pub/Sub to the bronze lake"
    # the speed layer's account exists in every environment, but has no grant beyond its
    # secrets, and those only when it is deployed (envs/*: speed_layer_kafka_url)
    realtime  = "pharmaflow speed layer (pharmaflow realtime, from Kafka)"
    composer  = "pharmaflow Airflow DAGs on Cloud Composer"
    warehouse = "pharmaflow warehouse build: bronze loader and dbt on BigQuery"
    mlflow    = "pharmaflow MLflow tracking server"
  }

  # (service, dataset layer, role): BigQuery access, per dataset.
  dataset_grants = [
    # the build loads bronze and dbt writes silver, gold and reference (seeds, snapshots)
    { sa = "warehouse", layer = "bronze", role = "roles/bigquery.dataEditor" },
    { sa = "warehouse", layer = "silver", role = "roles/bigquery.dataEditor" },
    { sa = "warehouse", layer = "gold", role = "roles/bigquery.dataEditor" },
    { sa = "warehouse", layer = "reference", role = "roles/bigquery.dataEditor" },
    # serving shows gold and silver (docs/serving.md), read only
    { sa = "api", layer = "gold", role = "roles/bigquery.dataViewer" },
    { sa = "api", layer = "silver", role = "roles/bigquery.dataViewer" },
    { sa = "dashboard", layer = "gold", role = "roles/bigquery.dataViewer" },
    { sa = "dashboard", layer = "silver", role = "roles/bigquery.dataViewer" },
    # pharmaflow check (freshness, delivery SLA) and the reconciliation read; writes go through
    # the warehouse account, which Composer impersonates for builds and scoring
    { sa = "composer", layer = "gold", role = "roles/bigquery.dataViewer" },
    { sa = "composer", layer = "silver", role = "roles/bigquery.dataViewer" },
  ]

  project_grants = [
    { sa = "warehouse", role = "roles/bigquery.jobUser" },
    { sa = "api", role = "roles/bigquery.jobUser" },
    { sa = "dashboard", role = "roles/bigquery.jobUser" },
    { sa = "composer", role = "roles/bigquery.jobUser" },
    { sa = "composer", role = "roles/composer.worker" },
  ]

  # (service, bucket, role, object prefix or null): Cloud Storage access.
  bucket_grants = [
    # ingest writes lake parts, manifests, the event index and the vault, and removes crash debris
    { sa = "ingest", bucket = var.lake_bucket, role = "roles/storage.objectAdmin", prefix = null },
    # the survey extract DAG is an ingest run (it lands batches like the worker)
    { sa = "composer", bucket = var.lake_bucket, role = "roles/storage.objectAdmin", prefix = null },
    # the bronze loader reads committed batches
    { sa = "warehouse", bucket = var.lake_bucket, role = "roles/storage.objectViewer", prefix = "lake/" },
    # re-identification opens the vault and appends to its access log; the key fingerprints
    # (keys.json) sit at the data dir's root
    { sa = "api", bucket = var.lake_bucket, role = "roles/storage.objectViewer", prefix = "keys.json" },
    { sa = "api", bucket = var.lake_bucket, role = "roles/storage.objectAdmin", prefix = "vault/" },
    # An object-prefix condition cannot cover listing (storage.objects.list is checked on the
    # bucket, not on an object), which the Cloud Storage FUSE mount needs to walk directories:
    # object names only, no content.
    { sa = "warehouse", bucket = var.lake_bucket, role = "roles/storage.legacyBucketReader", prefix = null },
    { sa = "api", bucket = var.lake_bucket, role = "roles/storage.legacyBucketReader", prefix = null },
    { sa = "mlflow", bucket = var.mlflow_bucket, role = "roles/storage.objectAdmin", prefix = null },
  ]

}

resource "google_service_account" "svc" {
  for_each = local.services

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = each.value
  description  = "${each.value}. Grants: deploy/terraform/modules/iam."
}

resource "google_bigquery_dataset_iam_member" "dataset" {
  for_each = { for g in local.dataset_grants : "${g.sa}|${g.layer}|${g.role}" => g }

  project    = var.project_id
  dataset_id = var.dataset_ids[each.value.layer]
  role       = each.value.role
  member     = google_service_account.svc[each.value.sa].member
}

resource "google_project_iam_member" "project" {
  for_each = { for g in local.project_grants : "${g.sa}|${g.role}" => g }

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.svc[each.value.sa].member
}

resource "google_storage_bucket_iam_member" "bucket" {
  for_each = { for g in local.bucket_grants : "${g.sa}|${g.role}|${coalesce(g.prefix, "*")}" => g }

  bucket = each.value.bucket
  role   = each.value.role
  member = google_service_account.svc[each.value.sa].member

  dynamic "condition" {
    for_each = each.value.prefix == null ? [] : [each.value.prefix]
    content {
      title       = "only ${condition.value}"
      description = "Objects under ${condition.value} only."
      expression  = "resource.name.startsWith(\"projects/_/buckets/${each.value.bucket}/objects/${condition.value}\")"
    }
  }
}

# Ingest pulls its subscription, the only Pub/Sub consumer: the speed layer reads Kafka
# (modules/pubsub/main.tf says why), so its account has no Pub/Sub grant at all.
resource "google_pubsub_subscription_iam_member" "ingest_pulls" {
  project      = var.project_id
  subscription = var.ingest_subscription
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.svc["ingest"].member
}

# The Pub/Sub source reads its subscription's settings at start (ack deadline, exactly-once
# delivery, dead-letter policy: pubsub.subscriptions.get, docs/pubsub.md), which the subscriber
# role does not grant; the viewer role on that one subscription does.
resource "google_pubsub_subscription_iam_member" "ingest_reads_settings" {
  project      = var.project_id
  subscription = var.ingest_subscription
  role         = "roles/pubsub.viewer"
  member       = google_service_account.svc["ingest"].member
}

# Ingest publishes the records it quarantines, sealed, to the dead-letter topic.
resource "google_pubsub_topic_iam_member" "ingest_dead_letters" {
  project = var.project_id
  topic   = var.dlq_topic
  role    = "roles/pubsub.publisher"
  member  = google_service_account.svc["ingest"].member
}

# Composer's tasks run dbt as the warehouse account (dbt-bigquery `impersonate_service_account`),
# so the warehouse's write grants are not also Composer's.
resource "google_service_account_iam_member" "composer_impersonates_warehouse" {
  service_account_id = google_service_account.svc["warehouse"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.svc["composer"].member
}

# The Composer service agent binds the environment's account to the environment's workloads
# (iam.serviceAccounts.getIamPolicy / setIamPolicy, roles/composer.ServiceAgentV2Ext); granted
# on that one account instead of the project, which is all the agent needs it for.
resource "google_service_account_iam_member" "composer_agent_binds_environment_account" {
  service_account_id = google_service_account.svc["composer"].name
  role               = "roles/composer.ServiceAgentV2Ext"
  member             = "serviceAccount:service-${data.google_project.this.number}@cloudcomposer-accounts.iam.gserviceaccount.com"
}

# Data Access audit logs: who read or wrote which object and which secret (21 CFR 11.10(e)
# audit trails reach the storage layer too). BigQuery's data access logs are always on.
resource "google_project_iam_audit_config" "data_access" {
  for_each = toset(var.enable_data_access_audit_logs ? ["storage.googleapis.com", "secretmanager.googleapis.com"] : [])

  project = var.project_id
  service = each.value

  audit_log_config {
    log_type = "ADMIN_READ"
  }
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
