# One Cloud Storage bucket for GxP records: the lake (the data dir: lake/, vault/, ... —
# docs/lake-layout.md) or the MLflow artifacts. Private by construction (uniform bucket-level
# access, public access prevention enforced), aged down the storage classes as it is read less,
# and deleted only once the record retention period has passed.
#
# Retention (gxp_retention_days, default 2555 days = 7 years): 21 CFR Part 11 (11.10(c)) and
# EU GMP Annex 11 (§7.1, §17) require electronic records to stay accurate, readable and
# retrievable for the retention period the predicate rules set, without fixing one number
# themselves. Those rules are shorter or equal: 21 CFR 211.180(a) keeps batch records one year
# past the batch's expiry date (shelf lives run up to about five years), EU GMP Chapter 4 (4.10)
# one year past expiry or five years after QP certification, and the US DSCSA six years for
# transaction information. Seven years covers all of them with a margin; a QA record-retention
# schedule that asks for more sets a larger value. The lifecycle deletes nothing before it.
#
# The bucket retention policy (retention_policy_days) makes that floor enforceable: no object
# can be deleted or replaced before it is that old, by anyone; locked (prod), not even the
# policy can be removed or shortened. Cloud Storage refuses Object Versioning together with a
# retention policy, so a bucket has one or the other: versioning (undo an accidental delete or
# overwrite) where there is no policy, the policy (no delete or overwrite at all) where there is.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

resource "google_storage_bucket" "this" {
  # Access is logged by Cloud Audit Logs (Data Access logs for storage.googleapis.com, turned on
  # by the iam module), which name the principal of every read and write; usage logs in a
  # second bucket would be a weaker copy of the same.
  #checkov:skip=CKV_GCP_62:object access is recorded by Cloud Audit Logs Data Access logs (iam module), which name the principal
  # Versioning is an input: Cloud Storage refuses it together with a retention policy, and prod's
  # lake has a locked one instead (stronger: nothing can be deleted or replaced at all).
  # tests/unit/deploy/test_terraform.py asserts every bucket has one or the other.
  #checkov:skip=CKV_GCP_78:versioning and a retention policy are mutually exclusive; buckets without versioning have a locked retention policy (asserted by tests/unit/deploy/test_terraform.py)
  project       = var.project_id
  name          = var.name
  location      = var.location
  storage_class = "STANDARD"

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Never delete a bucket that still holds records.
  force_destroy = false

  versioning {
    enabled = var.versioning_enabled
  }

  dynamic "retention_policy" {
    for_each = var.retention_policy_days == null ? [] : [var.retention_policy_days]
    content {
      retention_period = retention_policy.value * 86400
      is_locked        = var.lock_retention_policy
    }
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 86400
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  # Standard -> Nearline -> Coldline -> Archive as the objects age (lake parts are written once
  # and read mostly in their first weeks: builds read new batches, audits and recalls read old
  # ones rarely), then deleted once the GxP retention period has passed.
  lifecycle_rule {
    condition {
      age                   = var.nearline_after_days
      matches_storage_class = ["STANDARD"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age                   = var.coldline_after_days
      matches_storage_class = ["STANDARD", "NEARLINE"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  lifecycle_rule {
    condition {
      age                   = var.archive_after_days
      matches_storage_class = ["STANDARD", "NEARLINE", "COLDLINE"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "ARCHIVE"
    }
  }

  lifecycle_rule {
    condition {
      age = var.gxp_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # With versioning, a delete leaves a noncurrent version: drop those after a grace period so a
  # record past its retention is really gone (and an accidental delete can be undone meanwhile).
  dynamic "lifecycle_rule" {
    for_each = var.versioning_enabled ? [var.noncurrent_version_retention_days] : []
    content {
      condition {
        days_since_noncurrent_time = lifecycle_rule.value
        with_state                 = "ARCHIVED"
      }
      action {
        type = "Delete"
      }
    }
  }

  labels = var.labels

  lifecycle {
    precondition {
      condition     = var.nearline_after_days < var.coldline_after_days && var.coldline_after_days < var.archive_after_days && var.archive_after_days < var.gxp_retention_days
      error_message = "Storage class ages must increase: nearline_after_days < coldline_after_days < archive_after_days < gxp_retention_days."
    }
    precondition {
      condition     = !(var.versioning_enabled && var.retention_policy_days != null)
      error_message = "Cloud Storage does not allow Object Versioning together with a retention policy: set versioning_enabled = false when retention_policy_days is set."
    }
    precondition {
      condition     = var.retention_policy_days == null || coalesce(var.retention_policy_days, 0) <= var.gxp_retention_days
      error_message = "retention_policy_days must not exceed gxp_retention_days (the lifecycle could never delete the objects)."
    }
    precondition {
      condition     = !var.lock_retention_policy || var.retention_policy_days != null
      error_message = "lock_retention_policy needs retention_policy_days."
    }
  }
}
