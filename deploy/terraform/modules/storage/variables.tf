variable "project_id" {
  description = "GCP project that holds the bucket."
  type        = string
}

variable "name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "location" {
  description = "Bucket location (a region for data residency, or a multi-region); with CMEK the key must be in the same location."
  type        = string
}

variable "kms_key_name" {
  description = "Cloud KMS key encrypting new objects by default (CMEK); null: Google-managed encryption."
  type        = string
  default     = null
}

variable "versioning_enabled" {
  description = "Keep noncurrent versions of deleted or replaced objects (must be false when retention_policy_days is set)."
  type        = bool
  default     = true
}

variable "nearline_after_days" {
  description = "Age in days at which objects move from Standard to Nearline storage."
  type        = number
  default     = 30
}

variable "coldline_after_days" {
  description = "Age in days at which objects move to Coldline storage."
  type        = number
  default     = 90
}

variable "archive_after_days" {
  description = "Age in days at which objects move to Archive storage."
  type        = number
  default     = 365
}

variable "gxp_retention_days" {
  description = "Record retention period in days after which the lifecycle deletes objects (default 2555 = 7 years; see the comment in main.tf for the 21 CFR Part 11 / EU GMP Annex 11 reasoning)."
  type        = number
  default     = 2555

  validation {
    condition     = var.gxp_retention_days >= 365
    error_message = "gxp_retention_days must be at least a year: GMP records outlive the batch's expiry date."
  }
}

variable "retention_policy_days" {
  description = "Bucket retention policy in days: no object can be deleted or replaced before this age; null: no policy."
  type        = number
  default     = null
}

variable "lock_retention_policy" {
  description = "Lock the retention policy (irreversible: it can then never be removed or shortened, and the bucket not deleted before its objects expire)."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days a noncurrent (deleted or replaced) object version is kept before deletion, when versioning is on."
  type        = number
  default     = 30
}

variable "soft_delete_retention_days" {
  description = "Days a deleted object stays restorable under Cloud Storage soft delete (0 to 90)."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days == 0 || (var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90)
    error_message = "soft_delete_retention_days must be 0 or between 7 and 90."
  }
}

variable "labels" {
  description = "Labels put on the bucket."
  type        = map(string)
  default     = {}
}
