variable "project_id" {
  description = "GCP project of the service."
  type        = string
}

variable "region" {
  description = "Region the service runs in."
  type        = string
}

variable "name" {
  description = "Service name (e.g. pf-prod-api)."
  type        = string
}

variable "description" {
  description = "What the service runs, shown in the console."
  type        = string
}

variable "image" {
  description = "Container image with pharmaflow installed, pinned by digest or an immutable tag (Artifact Registry)."
  type        = string
}

variable "args" {
  description = "Container arguments after the image's entrypoint (e.g. [\"serve\", \"--host\", \"0.0.0.0\", \"--port\", \"8080\"])."
  type        = list(string)
  default     = []
}

variable "service_account_email" {
  description = "The service's own service account (iam module), whose grants are all the service can use."
  type        = string
}

variable "ingress" {
  description = "Who can reach the service: INGRESS_TRAFFIC_INTERNAL_ONLY (the VPC) or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER (the VPC and Google Cloud load balancers); never the whole internet."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "ingress must be INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

variable "container_port" {
  description = "Port the process listens on (the API, the dashboard, or a worker's Prometheus metrics)."
  type        = number
  default     = 8080
}

variable "health_path" {
  description = "HTTP path of the liveness probe (the API's /health); null: no liveness probe beyond the startup probe."
  type        = string
  default     = null
}

variable "min_instances" {
  description = "Instances kept running (at least 1 for pull workers; 0 lets an HTTP service scale to zero)."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Upper bound on instances."
  type        = number
  default     = 2
}

variable "max_request_concurrency" {
  description = "Requests one instance serves at once."
  type        = number
  default     = 80
}

variable "request_timeout" {
  description = "Longest a request may take (duration, e.g. \"300s\")."
  type        = string
  default     = "300s"
}

variable "cpu" {
  description = "CPU limit per instance (e.g. \"1\", \"2\")."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory limit per instance (e.g. \"1Gi\")."
  type        = string
  default     = "1Gi"
}

variable "cpu_always_allocated" {
  description = "Keep the CPU allocated between requests (pull workers, which work without requests)."
  type        = bool
  default     = false
}

variable "env" {
  description = "Plain environment variables (PHARMAFLOW_* settings that are not secret)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.env) : !can(regex("(KEY|PASSWORD|TOKEN|SECRET|DSN|STORE|_URL)$", k))])
    error_message = "A variable named like a secret (…KEY, …PASSWORD, …TOKEN, …SECRET, …DSN, …STORE, …_URL) must come from secret_env, not env."
  }
}

variable "secret_env" {
  description = "Environment variables read from Secret Manager at start: name => { secret = secret id, version = version number or \"latest\" }."
  type = map(object({
    secret  = string
    version = string
  }))
  default = {}
}

variable "data_bucket" {
  description = "Bucket mounted as the data dir with Cloud Storage FUSE; null: no data volume."
  type        = string
  default     = null
}

variable "data_mount_path" {
  description = "Where the data bucket is mounted (PHARMAFLOW_DATA_DIR)."
  type        = string
  default     = "/data"
}

variable "data_read_only" {
  description = "Mount the data bucket read-only."
  type        = bool
  default     = false
}

variable "vpc_network" {
  description = "VPC network for Direct VPC egress (to reach the PostgreSQL stores on private IPs); null: no VPC access."
  type        = string
  default     = null
}

variable "vpc_subnetwork" {
  description = "Subnetwork for Direct VPC egress; null: no VPC access."
  type        = string
  default     = null
}

variable "invoker_members" {
  description = "IAM members allowed to invoke the service (roles/run.invoker), e.g. the load balancer's IAP service agent or another service's account; never allUsers."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.invoker_members : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "invoker_members must name principals, never allUsers or allAuthenticatedUsers."
  }
}

variable "kms_key_name" {
  description = "Cloud KMS key for the container image and the service's data at rest (CMEK); null: Google-managed encryption."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to delete the service with terraform destroy."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels put on the service and its revisions."
  type        = map(string)
  default     = {}
}
