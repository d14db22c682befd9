# Secret Manager: the containers of the platform's secrets, and who may read each. Values are
# never in Terraform (a value in a .tf file, a tfvars file or the state would be readable by
# everyone who can read those): an operator adds each version out of band,
#   gcloud secrets versions add <secret id> --data-file=- < value
# and the services read it at start as an environment variable (cloudrun module).
#
# Each secret is readable by the service accounts listed in its `accessors` only
# (roles/secretmanager.secretAccessor on that secret, not on the project), and only those of
# them that are deployed (`absent_services`).

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
  # The catalogue without the services that are not deployed: a secret keeps its other readers,
  # and one nobody deployed reads is left out (a container without a reader is only something
  # to fill in, rotate and audit for nothing).
  secrets = {
    for name, s in var.secrets : name => merge(s, {
      accessors = [for a in s.accessors : a if !contains(var.absent_services, a)]
    }) if length(setsubtract(s.accessors, var.absent_services)) > 0
  }

  accessor_pairs = merge([
    for name, s in local.secrets : {
      for a in s.accessors : "${name}|${a}" => { secret = name, accessor = a }
    }
  ]...)
}

resource "google_secret_manager_secret" "this" {
  for_each = local.secrets

  project   = var.project_id
  secret_id = "${var.name_prefix}-${each.key}"

  # Replicated in the listed regions only (data residency), under CMEK when a key is given.
  replication {
    user_managed {
      dynamic "replicas" {
        for_each = var.replica_locations
        content {
          location = replicas.value
          dynamic "customer_managed_encryption" {
            for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
            content {
              kms_key_name = customer_managed_encryption.value
            }
          }
        }
      }
    }
  }

  annotations = {
    purpose = each.value.description
    env     = each.value.env
  }
  labels = var.labels
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.accessor_pairs

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = var.accessor_members[each.value.accessor]
}
