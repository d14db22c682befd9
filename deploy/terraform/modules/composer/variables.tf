variable "project_id" {
  description = "GCP project of the Composer environment."
  type        = string
}

variable "region" {
  description = "Region of the Composer environment."
  type        = string
}

variable "name" {
  description = "Environment name (e.g. pf-prod-airflow)."
  type        = string
}

variable "image_version" {
  description = "Composer 3 image with Airflow 3 (e.g. composer-3-airflow-3.x.y-build.n): pharmaflow[airflow] needs apache-airflow>=3.3.2,<3.4, so pick the image that ships it."
  type        = string

  validation {
    condition     = startswith(var.image_version, "composer-3-airflow-3")
    error_message = "image_version must be a Composer 3 image with Airflow 3 (composer-3-airflow-3...)."
  }
}

variable "pypi_packages" {
  description = "PyPI packages installed in the environment: name => extras and version specifier (pin pharmaflow's version)."
  type        = map(string)
}

variable "env_variables" {
  description = "Plain environment variables of every Airflow component: the PHARMAFLOW_* settings the tasks read that are not secret."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.env_variables) : !can(regex("(KEY|PASSWORD|TOKEN|SECRET|DSN|STORE|_URL)$", k))])
    error_message = "Secrets do not belong in env_variables (plain text in the environment's configuration): use Secret Manager."
  }
}

variable "airflow_config_overrides" {
  description = "Extra Airflow configuration (section-key => value), merged over the module's own."
  type        = map(string)
  default     = {}
}

variable "secret_prefix" {
  description = "Prefix of the Secret Manager secrets the Airflow secrets backend reads (<prefix>-airflow-variables-<name>, <prefix>-airflow-connections-<name>)."
  type        = string
}

variable "service_account_email" {
  description = "The environment's own service account (iam module: the composer account), which every task runs as."
  type        = string
}

variable "environment_size" {
  description = "Composer environment size: ENVIRONMENT_SIZE_SMALL, _MEDIUM or _LARGE."
  type        = string
  default     = "ENVIRONMENT_SIZE_SMALL"

  validation {
    condition     = contains(["ENVIRONMENT_SIZE_SMALL", "ENVIRONMENT_SIZE_MEDIUM", "ENVIRONMENT_SIZE_LARGE"], var.environment_size)
    error_message = "environment_size must be ENVIRONMENT_SIZE_SMALL, ENVIRONMENT_SIZE_MEDIUM or ENVIRONMENT_SIZE_LARGE."
  }
}

variable "high_resilience" {
  description = "Highly resilient environment (zonal redundancy, two schedulers): for production."
  type        = bool
  default     = false
}

variable "scheduler_cpu" {
  description = "vCPUs per Airflow scheduler."
  type        = number
  default     = 0.5
}

variable "scheduler_memory_gb" {
  description = "Memory per Airflow scheduler, in GB."
  type        = number
  default     = 2
}

variable "worker_cpu" {
  description = "vCPUs per Airflow worker (a warehouse build runs in one)."
  type        = number
  default     = 2
}

variable "worker_memory_gb" {
  description = "Memory per Airflow worker, in GB."
  type        = number
  default     = 8
}

variable "worker_min_count" {
  description = "Fewest Airflow workers."
  type        = number
  default     = 1
}

variable "worker_max_count" {
  description = "Most Airflow workers."
  type        = number
  default     = 3
}

variable "network" {
  description = "VPC network the environment attaches to (reaching the PostgreSQL stores); null: Composer's default networking."
  type        = string
  default     = null
}

variable "subnetwork" {
  description = "Subnetwork the environment attaches to; null: Composer's default networking."
  type        = string
  default     = null
}

variable "private_environment" {
  description = "No public IPs on the environment's components (private IP environment)."
  type        = bool
  default     = true
}

variable "kms_key_name" {
  description = "Cloud KMS key encrypting the environment's data (CMEK); null: Google-managed encryption."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels put on the environment."
  type        = map(string)
  default     = {}
}
