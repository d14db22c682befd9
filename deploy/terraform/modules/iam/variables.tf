variable "project_id" {
  description = "GCP project of the service accounts and the resources they are granted on."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the service account ids (<prefix>-<service>, at most 30 characters), e.g. pf-dev."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name_prefix))
    error_message = "name_prefix must be 2 to 20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "dataset_ids" {
  description = "BigQuery dataset id per layer (bronze, silver, gold, reference): the bigquery module's dataset_ids."
  type        = map(string)
}

variable "lake_bucket" {
  description = "Name of the lake bucket (the data dir: lake/, vault/, ...)."
  type        = string
}

variable "mlflow_bucket" {
  description = "Name of the MLflow artifacts bucket."
  type        = string
}

variable "ingest_subscription" {
  description = "The ingest subscription's name, granted roles/pubsub.subscriber for the ingest account."
  type        = string
}

variable "dlq_topic" {
  description = "The sealed dead-letter topic's name, granted roles/pubsub.publisher for the ingest account."
  type        = string
}

variable "enable_data_access_audit_logs" {
  description = "Turn on Data Access audit logs for Cloud Storage and Secret Manager (authoritative for those two services' audit configuration in the project)."
  type        = bool
  default     = true
}
