output "topic_id" {
  description = "The events topic id (projects/<p>/topics/<name>)."
  value       = google_pubsub_topic.events.id
}

output "dlq_topic_name" {
  description = "The sealed dead-letter topic ingest publishes quarantined records to."
  value       = google_pubsub_topic.dlq.name
}

output "undeliverable_topic_name" {
  description = "The topic Pub/Sub moves undeliverable messages to (unsealed: no reader is granted)."
  value       = google_pubsub_topic.undeliverable.name
}

output "subscription_names" {
  description = "Consumer subscription names by consumer (ingest): what pubsub://<project>/<name> sources name."
  value       = { for k, s in google_pubsub_subscription.consumer : k => s.name }
}
