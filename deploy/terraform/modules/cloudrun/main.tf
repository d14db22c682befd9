# One Cloud Run (v2) service running one pharmaflow process: the API, the dashboard, the ingest
# worker or the speed layer (and the MLflow tracking server). Each runs as its own service
# account, reads its secrets from Secret Manager as environment variables at start (never in
# the template as values), is reachable only from inside the VPC or through the internal /
# external load balancer (never directly from the internet), and can be invoked only by the
# IAM members listed — never allUsers.
#
# Pull workers (ingest from Pub/Sub, the speed layer from Kafka) keep a CPU allocated between
# requests and at least one instance: they consume continuously rather than serve requests;
# their port serves the Prometheus metrics that also answer the startup probe.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

resource "google_cloud_run_v2_service" "this" {
  project             = var.project_id
  name                = var.name
  location            = var.region
  description         = var.description
  ingress             = var.ingress
  deletion_protection = var.deletion_protection

  template {
    service_account                  = var.service_account_email
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    max_instance_request_concurrency = var.max_request_concurrency
    timeout                          = var.request_timeout
    encryption_key                   = var.kms_key_name

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    dynamic "vpc_access" {
      for_each = var.vpc_subnetwork == null ? [] : [var.vpc_subnetwork]
      content {
        # Only private ranges (the PostgreSQL stores, internal services) go through the VPC.
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.vpc_network
          subnetwork = vpc_access.value
        }
      }
    }

    containers {
      image = var.image
      args  = var.args

      ports {
        container_port = var.container_port
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = !var.cpu_always_allocated
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = env.value.version
            }
          }
        }
      }

      dynamic "volume_mounts" {
        for_each = var.data_bucket == null ? [] : [var.data_mount_path]
        content {
          name       = "data"
          mount_path = volume_mounts.value
        }
      }

      startup_probe {
        tcp_socket {
          port = var.container_port
        }
        initial_delay_seconds = 0
        period_seconds        = 5
        failure_threshold     = 24
      }

      dynamic "liveness_probe" {
        for_each = var.health_path == null ? [] : [var.health_path]
        content {
          http_get {
            path = liveness_probe.value
            port = var.container_port
          }
          period_seconds    = 30
          failure_threshold = 3
        }
      }
    }

    # The data dir (lake, vault, ...) on Cloud Storage through Cloud Storage FUSE.
    dynamic "volumes" {
      for_each = var.data_bucket == null ? [] : [var.data_bucket]
      content {
        name = "data"
        gcs {
          bucket    = volumes.value
          read_only = var.data_read_only
        }
      }
    }

    labels = var.labels
  }

  labels = var.labels

  lifecycle {
    precondition {
      condition     = var.min_instances <= var.max_instances
      error_message = "min_instances must not exceed max_instances."
    }
    precondition {
      condition     = var.vpc_subnetwork == null || var.vpc_network != null
      error_message = "vpc_subnetwork needs vpc_network."
    }
  }
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = toset(var.invoker_members)

  project  = var.project_id
  location = google_cloud_run_v2_service.this.location
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = each.value
}
