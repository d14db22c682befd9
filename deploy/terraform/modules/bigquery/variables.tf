variable "project_id" {
  description = "GCP project that holds the datasets (PHARMAFLOW_BIGQUERY_PROJECT)."
  type        = string
}

variable "dataset_prefix" {
  description = "Dataset name prefix (PHARMAFLOW_BIGQUERY_DATASET): datasets are <prefix>_bronze, _silver, _gold and _reference, as dbt's generate_schema_name makes them."
  type        = string
  default     = "pharmaflow"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1000}$", var.dataset_prefix))
    error_message = "dataset_prefix must be letters, digits and underscores, not starting with a digit."
  }
}

variable "location" {
  description = "BigQuery location of every dataset (PHARMAFLOW_BIGQUERY_LOCATION); with CMEK the key must be in the same location."
  type        = string
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/.../cryptoKeys/...) encrypting the datasets' tables (CMEK); null: Google-managed encryption."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to delete the Terraform-owned bronze tables (terraform destroy or a replacement)."
  type        = bool
  default     = true
}

variable "max_time_travel_hours" {
  description = "BigQuery time travel window of each dataset, in hours (48 to 168): how far back a dropped or overwritten table can be restored."
  type        = number
  default     = 168

  validation {
    condition     = var.max_time_travel_hours >= 48 && var.max_time_travel_hours <= 168 && var.max_time_travel_hours % 24 == 0
    error_message = "max_time_travel_hours must be a multiple of 24 between 48 and 168."
  }
}

variable "labels" {
  description = "Labels put on every dataset and table (environment, owner, cost centre)."
  type        = map(string)
  default     = {}
}
