variable "project_id" {
  description = "GCP project of the development environment."
  type        = string
}

variable "region" {
  description = "Region of every regional resource (Cloud Run, Composer, the buckets, Pub/Sub message storage, secret replicas)."
  type        = string
  default     = "europe-west3"
}

variable "bigquery_location" {
  description = "BigQuery location of the datasets (PHARMAFLOW_BIGQUERY_LOCATION)."
  type        = string
  default     = "europe-west3"
}

variable "bigquery_dataset_prefix" {
  description = "BigQuery dataset prefix (PHARMAFLOW_BIGQUERY_DATASET): <prefix>_bronze, _silver, _gold, _reference."
  type        = string
  default     = "pharmaflow"
}

variable "image" {
  description = "pharmaflow container image for the API, dashboard, ingest and speed layer (Artifact Registry, pinned by digest)."
  type        = string
}

variable "mlflow_image" {
  description = "MLflow server container image (with the PostgreSQL driver and google-cloud-storage installed)."
  type        = string
}

variable "composer_image_version" {
  description = "Composer 3 image with Airflow 3.3 (pharmaflow[airflow] needs apache-airflow>=3.3.2,<3.4)."
  type        = string
}

variable "pharmaflow_pypi_spec" {
  description = "Extras and version of the pharmaflow package Composer installs from PyPI, e.g. \"[bigquery,pubsub]==0.1.0\"."
  type        = string
}

variable "gxp_retention_days" {
  description = "Record retention period of the buckets in days, after which the lifecycle deletes objects (2555 = 7 years; modules/storage/main.tf explains)."
  type        = number
  default     = 2555
}

variable "event_publishers" {
  description = "IAM members of the systems that publish events (granted roles/pubsub.publisher on the events topic)."
  type        = list(string)
  default     = []
}

variable "frontend_invokers" {
  description = "IAM members allowed to invoke the API and the dashboard, e.g. the IAP service agent of the load balancer in front of them."
  type        = list(string)
  default     = []
}

variable "speed_layer_kafka_url" {
  description = "kafka:// URL the speed layer (pharmaflow realtime) reads, e.g. the bootstrap address of a Google Cloud Managed Service for Apache Kafka cluster (kafka://bootstrap.<cluster>.<region>.managedkafka.<project>.cloud.goog:9092); no credentials in it (they are the kafka-username and kafka-password secrets). Empty: no speed layer (it reads Kafka only)."
  type        = string
  default     = ""

  validation {
    condition     = var.speed_layer_kafka_url == "" || (can(regex("^kafka://[^/?#@]+", var.speed_layer_kafka_url)) && !strcontains(var.speed_layer_kafka_url, "@"))
    error_message = "speed_layer_kafka_url must be empty or a kafka://HOST:PORT[,HOST:PORT...][?...] URL without credentials (pharmaflow realtime reads Kafka only; the SASL user and password come from Secret Manager)."
  }
}

variable "vpc_network" {
  description = "VPC network the services reach the PostgreSQL stores through (Direct VPC egress); null: none."
  type        = string
  default     = null
}

variable "vpc_subnetwork" {
  description = "Subnetwork for Direct VPC egress and Composer; null: none."
  type        = string
  default     = null
}
