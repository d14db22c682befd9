# Pub/Sub: the event bus on GCP (docs/pubsub.md). One events topic, not one per domain: ingest
# reads one subscription (`pharmaflow ingest --source pubsub://PROJECT/SUBSCRIPTION`), and the reason the
# Kafka layout has a topic per domain (src/pharmaflow/broker/topics.py: an order's events in
# one partition, in order) is met on Pub/Sub by ordering keys — publishers set the ordering key
# to the envelope `key`, and a subscription with message ordering delivers each key's messages
# in publish order whatever topic they share.
#
# One consumer, `<prefix>-ingest` (bronze), with exactly-once delivery (an acknowledged message
# is never redelivered; ingest acknowledges once its batch is committed in the lake) and a
# dead-letter policy: a message that fails delivery `max_delivery_attempts` times moves to
# `<topic>.undeliverable` instead of holding back its ordering key forever.
#
# The speed layer (`pharmaflow realtime`) has no subscription: it reads Kafka only (its
# exactly-once state is keyed by Kafka partitions and offsets, and the Pub/Sub source's replay
# ledger lives in the lake's manifests, which the speed layer does not write), so it is deployed
# only against a Kafka cluster (envs/*: speed_layer_kafka_url). A subscription nobody reads would
# keep every message for its retention, and be billed for it.
#
# Two dead-letter topics, kept apart on purpose:
# - `<topic>.dlq`: the records ingest quarantines, published by ingest SEALED under the vault key
#   (docs/phi.md; the source's `?dead_letter_topic=`), like the Kafka `<topic>.dlq`;
# - `<topic>.undeliverable`: what Pub/Sub itself gave up delivering, forwarded as published —
#   unsealed, so possibly with patient identifiers in the clear. No reader is granted on it.
# Each has a hold subscription, since a topic without a subscription drops what it receives.

terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  consumers    = toset(["ingest"])
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  # 31 days, the longest a topic keeps messages: time to investigate a dead letter and replay it
  dead_letter_retention = "2678400s"
}

resource "google_pubsub_topic" "events" {
  project                    = var.project_id
  name                       = var.topic_name
  kms_key_name               = var.kms_key_name
  message_retention_duration = var.topic_retention

  message_storage_policy {
    allowed_persistence_regions = var.allowed_persistence_regions
  }

  labels = var.labels
}

resource "google_pubsub_topic" "dlq" {
  project                    = var.project_id
  name                       = "${var.topic_name}.dlq"
  kms_key_name               = var.kms_key_name
  message_retention_duration = local.dead_letter_retention

  message_storage_policy {
    allowed_persistence_regions = var.allowed_persistence_regions
  }

  labels = merge(var.labels, { role = "dead-letter" })
}

resource "google_pubsub_topic" "undeliverable" {
  project                    = var.project_id
  name                       = "${var.topic_name}.undeliverable"
  kms_key_name               = var.kms_key_name
  message_retention_duration = local.dead_letter_retention

  message_storage_policy {
    allowed_persistence_regions = var.allowed_persistence_regions
  }

  labels = merge(var.labels, { role = "dead-letter" })
}

resource "google_pubsub_subscription" "consumer" {
  for_each = local.consumers

  project = var.project_id
  name    = "${var.subscription_prefix}-${each.key}"
  topic   = google_pubsub_topic.events.id

  enable_exactly_once_delivery = true
  enable_message_ordering      = true
  # Long enough for a batch to be landed and committed before it is acknowledged.
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.subscription_retention
  retain_acked_messages      = false

  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.undeliverable.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  # Never delete the subscription for inactivity (the default is after 31 days): a quiet
  # environment would silently lose its consumer and every message published meanwhile.
  expiration_policy {
    ttl = ""
  }

  labels = merge(var.labels, { consumer = each.key })
}

# Hold subscriptions on the dead-letter topics. No dead-letter policy of their own (they are
# the end of the line) and no automatic reader: a repair tool with vault access pulls from the
# `.dlq` one (PhiVault.open_reject, docs/phi.md); the undeliverable one is read by an operator.
resource "google_pubsub_subscription" "hold" {
  for_each = {
    dlq           = google_pubsub_topic.dlq.id
    undeliverable = google_pubsub_topic.undeliverable.id
  }

  project = var.project_id
  name    = "${var.subscription_prefix}-${each.key}-hold"
  topic   = each.value

  enable_exactly_once_delivery = true
  ack_deadline_seconds         = 60
  message_retention_duration   = var.subscription_retention

  expiration_policy {
    ttl = ""
  }

  labels = merge(var.labels, { role = "dead-letter-hold" })
}

# Dead-lettering is done by the Pub/Sub service agent: it must be able to publish to the
# dead-letter topic and to acknowledge the message on the source subscription.
resource "google_pubsub_topic_iam_member" "agent_publishes_undeliverable" {
  project = var.project_id
  topic   = google_pubsub_topic.undeliverable.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acks_dead_letters" {
  for_each = google_pubsub_subscription.consumer

  project      = var.project_id
  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# The event producers (source systems' service accounts) may publish to the events topic only.
resource "google_pubsub_topic_iam_member" "publishers" {
  for_each = toset(var.publisher_members)

  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}
