variable "project_id" {
  description = "GCP project that holds the secrets."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the secret ids (<prefix>-<name>), e.g. pf-dev."
  type        = string
}

variable "secrets" {
  description = "The secrets by name: what each holds, the environment variable the services read it into, and the services (keys of accessor_members) that may read it."
  type = map(object({
    description = string
    env         = string
    accessors   = list(string)
  }))

  # The platform's secrets (values are added out of band, never here). Who reads which:
  # - the vault and HMAC keys (docs/keys.md): every process that protects PHI or re-identifies
  #   loads both (`load_keys`): ingest, the speed layer, the API (re-identification) and
  #   Composer (the survey extract DAG is an ingest run);
  # - each PostgreSQL URL carries one database role's password, so each secret is one role:
  #   the speed layer writes its store, the API, dashboard and checks read it with a read-only
  #   role; the API inserts surveys, the extract reads them;
  # - the alert routes' URLs are credentials of third-party APIs (Slack, a webhook): the speed
  #   layer's notifier and Composer's failure notifications deliver alerts;
  # - the Kafka SASL user and password are the speed layer's alone (it reads Kafka; ingest reads
  #   Pub/Sub), never in its kafka:// URL, which is printed and logged.
  # API keys of pharmaflow's own API are not secrets here: the security store keeps only their
  # hashes (docs/security.md); a client holds its key in its own secret store.
  default = {
    vault-key = {
      description = "AES-256 key of the PHI vault, quarantine and dead letters (64 hex)"
      env         = "PHARMAFLOW_VAULT_KEY"
      accessors   = ["ingest", "realtime", "api", "composer"]
    }
    hmac-key = {
      description = "HMAC key of patient pseudonyms and name tokens (64 hex)"
      env         = "PHARMAFLOW_HMAC_KEY"
      accessors   = ["ingest", "realtime", "api", "composer"]
    }
    security-store-dsn = {
      description = "postgresql:// URL of the API keys and audit trail store, API role"
      env         = "PHARMAFLOW_SECURITY_STORE"
      accessors   = ["api"]
    }
    realtime-store-dsn = {
      description = "postgresql:// URL of the speed-layer state store, writer role"
      env         = "PHARMAFLOW_REALTIME_STORE"
      accessors   = ["realtime"]
    }
    realtime-store-reader-dsn = {
      description = "postgresql:// URL of the speed-layer state store, read-only role"
      env         = "PHARMAFLOW_REALTIME_STORE"
      accessors   = ["api", "dashboard", "composer"]
    }
    survey-writer-dsn = {
      description = "postgresql:// URL of survey_data, role inserting surveys"
      env         = "PHARMAFLOW_SURVEY_DSN"
      accessors   = ["api"]
    }
    survey-reader-dsn = {
      description = "postgresql:// URL of survey_data, read-only role of the extract"
      env         = "PHARMAFLOW_SURVEY_DSN"
      accessors   = ["composer"]
    }
    alerts-slack-url = {
      description = "Slack incoming-webhook URL of the alert routes"
      env         = "PHARMAFLOW_ALERTS_SLACK_URL"
      accessors   = ["realtime", "composer"]
    }
    alerts-webhook-url = {
      description = "JSON webhook URL of the alert routes"
      env         = "PHARMAFLOW_ALERTS_WEBHOOK_URL"
      accessors   = ["realtime", "composer"]
    }
    kafka-username = {
      description = "Kafka SASL user name of the speed layer (Managed Service for Apache Kafka: a service account e-mail)"
      env         = "PHARMAFLOW_KAFKA_USERNAME"
      accessors   = ["realtime"]
    }
    kafka-password = {
      description = "Kafka SASL password of the speed layer (Managed Service for Apache Kafka, SASL/PLAIN: the base64-encoded service account key)"
      env         = "PHARMAFLOW_KAFKA_PASSWORD"
      accessors   = ["realtime"]
    }
    mlflow-backend-dsn = {
      description = "postgresql:// URL of the MLflow tracking and registry store"
      env         = "MLFLOW_BACKEND_STORE_URI"
      accessors   = ["mlflow"]
    }
  }

  validation {
    condition     = alltrue([for s in values(var.secrets) : length(s.accessors) > 0])
    error_message = "Every secret needs at least one accessor: a secret nobody reads should not exist."
  }

  validation {
    condition = alltrue(flatten([
      for a in distinct(flatten([for s in values(var.secrets) : s.accessors])) : [
        length([for s in values(var.secrets) : s.env if contains(s.accessors, a)]) == length(distinct([for s in values(var.secrets) : s.env if contains(s.accessors, a)]))
      ]
    ]))
    error_message = "A service may read at most one secret per environment variable."
  }
}

variable "accessor_members" {
  description = "IAM member (serviceAccount:...) per service name used in secrets[*].accessors: the iam module's members output."
  type        = map(string)
}

variable "absent_services" {
  description = "Services (keys of accessor_members) not deployed in this environment, e.g. the speed layer without a Kafka cluster: no secret is granted to them, and a secret only they would read is not created."
  type        = list(string)
  default     = []
}

variable "replica_locations" {
  description = "Regions each secret is replicated in (user-managed replication)."
  type        = list(string)
}

variable "kms_key_name" {
  description = "Cloud KMS key encrypting the secret versions (CMEK; it must be in the replica location); null: Google-managed encryption."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels put on every secret."
  type        = map(string)
  default     = {}
}
