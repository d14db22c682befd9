variable "project_id" {
  description = "GCP project that holds the topics and subscriptions."
  type        = string
}

variable "topic_name" {
  description = "The events topic every producer publishes to (ordering key: the envelope key); its dead-letter topics are <name>.dlq and <name>.undeliverable."
  type        = string
  default     = "pharma.events"
}

variable "subscription_prefix" {
  description = "Prefix of the subscription names: <prefix>-ingest and the hold subscriptions."
  type        = string
  default     = "pharmaflow"
}

variable "kms_key_name" {
  description = "Cloud KMS key encrypting every topic's messages (CMEK); null: Google-managed encryption."
  type        = string
  default     = null
}

variable "allowed_persistence_regions" {
  description = "Regions where Pub/Sub may store messages (data residency: messages are events before PHI protection)."
  type        = list(string)
}

variable "topic_retention" {
  description = "How long the events topic keeps messages, acknowledged or not, for replay by seek (a duration like \"604800s\"; at most 31 days)."
  type        = string
  default     = "604800s"
}

variable "subscription_retention" {
  description = "How long a subscription keeps unacknowledged messages, e.g. a backlog during an outage (duration; at most 7 days)."
  type        = string
  default     = "604800s"
}

variable "ack_deadline_seconds" {
  description = "Seconds a consumer has to acknowledge a message before it is redelivered (10 to 600): covers landing and committing a batch."
  type        = number
  default     = 300

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "ack_deadline_seconds must be between 10 and 600."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of one message before Pub/Sub moves it to the undeliverable topic (5 to 100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "retry_minimum_backoff" {
  description = "Shortest wait before a nacked or expired message is redelivered (duration, e.g. \"10s\")."
  type        = string
  default     = "10s"
}

variable "retry_maximum_backoff" {
  description = "Longest wait before redelivery (duration, at most \"600s\")."
  type        = string
  default     = "600s"
}

variable "publisher_members" {
  description = "IAM members (serviceAccount:...) of the event producers, granted roles/pubsub.publisher on the events topic only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.publisher_members : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "publisher_members must name principals, never allUsers or allAuthenticatedUsers."
  }
}

variable "labels" {
  description = "Labels put on every topic and subscription."
  type        = map(string)
  default     = {}
}
