# Cloud Composer 3 (managed Airflow) running pharmaflow's DAGs (docs/orchestration.md): the
# package is installed from PyPI into the environment, the DAG files are the package's
# (`pharmaflow.orchestrate.dags`, copied to the environment bucket's dags/ folder at release),
# and every task reads its settings from PHARMAFLOW_* environment variables, as the CLI does.
#
# Secrets are not environment variables here (Composer's env_variables are plain text in the
# environment's configuration): Airflow reads them from Secret Manager through the secrets
# backend configured below.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

resource "google_composer_environment" "this" {
  project = var.project_id
  name    = var.name
  region  = var.region

  config {
    environment_size = var.environment_size
    resilience_mode  = var.high_resilience ? "HIGH_RESILIENCE" : "STANDARD_RESILIENCE"

    software_config {
      image_version = var.image_version
      # name => extras and version specifier, e.g. { pharmaflow = "[bigquery,pubsub]==0.1.0" }
      pypi_packages = var.pypi_packages
      env_variables = var.env_variables

      airflow_config_overrides = merge(
        {
          # Airflow variables and connections from Secret Manager, prefixed by the environment
          "secrets-backend"        = "airflow.providers.google.cloud.secrets.secret_manager.CloudSecretManagerBackend"
          "secrets-backend_kwargs" = jsonencode({ project_id = var.project_id, connections_prefix = "${var.secret_prefix}-airflow-connections", variables_prefix = "${var.secret_prefix}-airflow-variables", sep = "-" })
          # the DAGs set their own schedules; a paused new DAG is reviewed before it runs
          "core-dags_are_paused_at_creation" = "True"
        },
        var.airflow_config_overrides,
      )
    }

    node_config {
      service_account = var.service_account_email
      network         = var.network
      subnetwork      = var.subnetwork
    }

    enable_private_environment = var.private_environment

    dynamic "encryption_config" {
      for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
      content {
        kms_key_name = encryption_config.value
      }
    }

    workloads_config {
      scheduler {
        cpu        = var.scheduler_cpu
        memory_gb  = var.scheduler_memory_gb
        storage_gb = 1
        count      = var.high_resilience ? 2 : 1
      }
      web_server {
        cpu        = 1
        memory_gb  = 2
        storage_gb = 1
      }
      worker {
        cpu        = var.worker_cpu
        memory_gb  = var.worker_memory_gb
        storage_gb = 10
        min_count  = var.worker_min_count
        max_count  = var.worker_max_count
      }
    }
  }

  labels = var.labels
}
