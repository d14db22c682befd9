# pharmaflow on GCP, production: the same modules as dev, with what a GxP production system
# needs on top — customer-managed encryption keys (CMEK) on every data store, the lake under a
# locked retention policy (no object deleted or replaced before the record retention period),
# deletion protection on tables and services, pinned secret versions, a highly resilient
# Composer environment and more instances. docs/deploy-gcp.md explains every choice.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }

  # Partial configuration: the state bucket is given at init,
  #   terraform init -backend-config=bucket=<state bucket>
  backend "gcs" {
    prefix = "pharmaflow/prod"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

locals {
  env    = "prod"
  prefix = "pf-prod"
  labels = {
    app        = "pharmaflow"
    env        = local.env
    managed-by = "terraform"
  }
  data_dir = "/data"

  # The speed layer runs only against a Kafka cluster: `pharmaflow realtime` reads kafka://
  # sources only (its exactly-once state is keyed by Kafka partitions and offsets; the Pub/Sub
  # source's replay ledger lives in the lake's manifests, which the speed layer does not write).
  speed_layer = var.speed_layer_kafka_url != ""
  # Its SASL credentials (secrets kafka-username, kafka-password) never cross the network in the
  # clear: SASL over TLS, which Managed Service for Apache Kafka requires anyway.
  speed_layer_env = merge(local.common_env, { PHARMAFLOW_KAFKA_SECURITY_PROTOCOL = "SASL_SSL" })

  # Settings every pharmaflow process shares (config.py, PHARMAFLOW_*); secrets come separately.
  common_env = {
    PHARMAFLOW_DATA_DIR          = local.data_dir
    PHARMAFLOW_WAREHOUSE_TARGET  = "bigquery"
    PHARMAFLOW_BIGQUERY_PROJECT  = var.project_id
    PHARMAFLOW_BIGQUERY_DATASET  = var.bigquery_dataset_prefix
    PHARMAFLOW_BIGQUERY_LOCATION = var.bigquery_location
    PHARMAFLOW_LOG_FORMAT        = "json"
  }

  # Each service's secrets as Cloud Run environment references, at the versions QA released
  # (a new version is a reviewed change, not whatever was added last; keys.md: a changed key is
  # refused by its fingerprint anyway).
  # Every service has an entry, empty for one that reads none (or is not deployed).
  secret_env = {
    for svc in keys(module.iam.members) : svc => {
      for s in lookup(module.secrets.by_accessor, svc, []) : s.env => { secret = s.id, version = var.secret_versions[s.name] }
    }
  }

  # The Google service agents that encrypt and decrypt with the CMEK key on the data's behalf.
  cmek_agents = {
    storage  = "serviceAccount:service-${data.google_project.this.number}@gs-project-accounts.iam.gserviceaccount.com"
    bigquery = "serviceAccount:bq-${data.google_project.this.number}@bigquery-encryption.iam.gserviceaccount.com"
    pubsub   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    secrets  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-secretmanager.iam.gserviceaccount.com"
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

# CMEK: each service agent may use the key (and only that key) to encrypt its service's data.
resource "google_kms_crypto_key_iam_member" "cmek_agents" {
  for_each = local.cmek_agents

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value

  depends_on = [google_project_service.enabled]

  lifecycle {
    # CMEK keys are regional: the buckets, datasets, topics' storage and secret replicas that
    # use the key must be where it is.
    precondition {
      condition     = split("/", var.kms_key_name)[3] == var.region && lower(var.bigquery_location) == var.region
      error_message = "kms_key_name, region and bigquery_location must name the same location."
    }
  }
}

resource "google_project_service" "enabled" {
  for_each = toset([
    "bigquery.googleapis.com",
    "cloudkms.googleapis.com",
    "composer.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "lake" {
  source = "../../modules/storage"

  project_id            = var.project_id
  name                  = "${var.project_id}-${local.prefix}-lake"
  location              = var.region
  kms_key_name          = var.kms_key_name
  versioning_enabled    = false
  gxp_retention_days    = var.gxp_retention_days
  retention_policy_days = var.gxp_retention_days
  lock_retention_policy = var.lock_lake_retention
  labels                = local.labels

  depends_on = [google_project_service.enabled, google_kms_crypto_key_iam_member.cmek_agents]
}

module "mlflow_artifacts" {
  source = "../../modules/storage"

  project_id         = var.project_id
  name               = "${var.project_id}-${local.prefix}-mlflow"
  location           = var.region
  kms_key_name       = var.kms_key_name
  versioning_enabled = true
  gxp_retention_days = var.gxp_retention_days
  labels             = local.labels

  depends_on = [google_project_service.enabled, google_kms_crypto_key_iam_member.cmek_agents]
}

module "bigquery" {
  source = "../../modules/bigquery"

  project_id          = var.project_id
  dataset_prefix      = var.bigquery_dataset_prefix
  location            = var.bigquery_location
  kms_key_name        = var.kms_key_name
  deletion_protection = true
  labels              = local.labels

  depends_on = [google_project_service.enabled, google_kms_crypto_key_iam_member.cmek_agents]
}

module "pubsub" {
  source = "../../modules/pubsub"

  project_id                  = var.project_id
  allowed_persistence_regions = [var.region]
  kms_key_name                = var.kms_key_name
  publisher_members           = var.event_publishers
  labels                      = local.labels

  depends_on = [google_project_service.enabled, google_kms_crypto_key_iam_member.cmek_agents]
}

module "iam" {
  source = "../../modules/iam"

  project_id          = var.project_id
  name_prefix         = local.prefix
  dataset_ids         = module.bigquery.dataset_ids
  lake_bucket         = module.lake.name
  mlflow_bucket       = module.mlflow_artifacts.name
  ingest_subscription = module.pubsub.subscription_names["ingest"]
  dlq_topic           = module.pubsub.dlq_topic_name

  depends_on = [google_project_service.enabled]
}

module "secrets" {
  source = "../../modules/secrets"

  project_id        = var.project_id
  name_prefix       = local.prefix
  accessor_members  = module.iam.members
  absent_services   = local.speed_layer ? [] : ["realtime"]
  replica_locations = [var.region]
  kms_key_name      = var.kms_key_name
  labels            = local.labels

  depends_on = [google_project_service.enabled, google_kms_crypto_key_iam_member.cmek_agents]
}

module "api" {
  source = "../../modules/cloudrun"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-api"
  description           = "pharmaflow analytics API"
  image                 = var.image
  args                  = ["serve", "--host", "0.0.0.0", "--port", "8080"]
  service_account_email = module.iam.emails["api"]
  ingress               = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
  health_path           = "/health"
  min_instances         = 1
  max_instances         = 10
  cpu                   = "2"
  memory                = "2Gi"
  env                   = local.common_env
  secret_env            = local.secret_env["api"]
  data_bucket           = module.lake.name
  data_mount_path       = local.data_dir
  vpc_network           = var.vpc_network
  vpc_subnetwork        = var.vpc_subnetwork
  invoker_members       = var.frontend_invokers
  deletion_protection   = true
  labels                = local.labels
}

module "dashboard" {
  source = "../../modules/cloudrun"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-dashboard"
  description           = "pharmaflow dashboard"
  image                 = var.image
  args                  = ["dashboard", "--host", "0.0.0.0", "--port", "8080"]
  service_account_email = module.iam.emails["dashboard"]
  ingress               = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
  min_instances         = 1
  max_instances         = 4
  memory                = "2Gi"
  env                   = local.common_env
  secret_env            = local.secret_env["dashboard"]
  vpc_network           = var.vpc_network
  vpc_subnetwork        = var.vpc_subnetwork
  invoker_members       = var.frontend_invokers
  deletion_protection   = true
  labels                = local.labels
}

module "ingest" {
  source = "../../modules/cloudrun"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-ingest"
  description           = "pharmaflow ingest worker (Pub/Sub to the bronze lake)"
  image                 = var.image
  args                  = ["ingest", "--source", "pubsub://${var.project_id}/${module.pubsub.subscription_names["ingest"]}?dead_letter_topic=${module.pubsub.dlq_topic_name}", "--metrics-port", "8080"]
  service_account_email = module.iam.emails["ingest"]
  ingress               = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  cpu_always_allocated  = true
  min_instances         = 1
  max_instances         = 1
  cpu                   = "2"
  memory                = "4Gi"
  env                   = local.common_env
  secret_env            = local.secret_env["ingest"]
  data_bucket           = module.lake.name
  data_mount_path       = local.data_dir
  vpc_network           = var.vpc_network
  vpc_subnetwork        = var.vpc_subnetwork
  deletion_protection   = true
  labels                = local.labels
}

# The speed layer, from Kafka (e.g. Google Cloud Managed Service for Apache Kafka), only when a
# cluster is given; its SASL credentials are the kafka-username and kafka-password secrets.
module "realtime" {
  source = "../../modules/cloudrun"
  count  = local.speed_layer ? 1 : 0

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-realtime"
  description           = "pharmaflow speed layer (Kafka to the speed-layer store)"
  image                 = var.image
  args                  = ["realtime", "--source", var.speed_layer_kafka_url, "--metrics-port", "8080"]
  service_account_email = module.iam.emails["realtime"]
  ingress               = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  cpu_always_allocated  = true
  min_instances         = 1
  max_instances         = 1
  cpu                   = "2"
  memory                = "2Gi"
  env                   = local.speed_layer_env
  secret_env            = local.secret_env["realtime"]
  vpc_network           = var.vpc_network
  vpc_subnetwork        = var.vpc_subnetwork
  deletion_protection   = true
  labels                = local.labels
}

module "mlflow" {
  source = "../../modules/cloudrun"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-mlflow"
  description           = "MLflow tracking server and model registry"
  image                 = var.mlflow_image
  args                  = ["mlflow", "server", "--host", "0.0.0.0", "--port", "8080", "--serve-artifacts", "--artifacts-destination", "${module.mlflow_artifacts.url}/artifacts"]
  service_account_email = module.iam.emails["mlflow"]
  ingress               = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  min_instances         = 1
  max_instances         = 1
  secret_env            = local.secret_env["mlflow"]
  vpc_network           = var.vpc_network
  vpc_subnetwork        = var.vpc_subnetwork
  invoker_members       = [module.iam.members["composer"]]
  deletion_protection   = true
  labels                = local.labels
}

module "composer" {
  source = "../../modules/composer"

  project_id            = var.project_id
  region                = var.region
  name                  = "${local.prefix}-airflow"
  image_version         = var.composer_image_version
  pypi_packages         = { pharmaflow = var.pharmaflow_pypi_spec }
  env_variables         = merge(local.common_env, { PHARMAFLOW_DATA_DIR = "/home/airflow/gcs/data/pharmaflow", PHARMAFLOW_MLFLOW_TRACKING_URI = module.mlflow.uri })
  secret_prefix         = local.prefix
  service_account_email = module.iam.emails["composer"]
  environment_size      = "ENVIRONMENT_SIZE_MEDIUM"
  high_resilience       = true
  worker_min_count      = 2
  worker_max_count      = 6
  network               = var.vpc_network
  subnetwork            = var.vpc_subnetwork
  labels                = local.labels

  depends_on = [module.iam]
}
