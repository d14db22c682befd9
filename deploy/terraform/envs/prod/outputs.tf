output "service_urls" {
  description = "Cloud Run URLs of the API, the dashboard and the MLflow server (reachable only as their ingress allows)."
  value = {
    api       = module.api.uri
    dashboard = module.dashboard.uri
    mlflow    = module.mlflow.uri
  }
}

output "speed_layer_service" {
  description = "The speed layer's Cloud Run service name, or null when speed_layer_kafka_url is empty (no speed layer)."
  value       = one(module.realtime[*].name)
}

output "service_accounts" {
  description = "Service account e-mail per service."
  value       = module.iam.emails
}

output "secret_ids" {
  description = "Secret Manager secrets to add versions to (gcloud secrets versions add <id> --data-file=-) before the services start."
  value       = module.secrets.secret_ids
}

output "lake_bucket" {
  description = "The lake bucket (the services' data dir)."
  value       = module.lake.name
}

output "bigquery_datasets" {
  description = "BigQuery dataset per layer."
  value       = module.bigquery.dataset_ids
}

output "pubsub_subscriptions" {
  description = "Pub/Sub subscriptions by consumer (ingest: the speed layer reads Kafka, not Pub/Sub)."
  value       = module.pubsub.subscription_names
}

output "airflow_uri" {
  description = "The Composer environment's Airflow UI."
  value       = module.composer.airflow_uri
}

output "dag_gcs_prefix" {
  description = "The Composer environment bucket's dags/ folder, where a release copies pharmaflow's DAG files."
  value       = module.composer.dag_gcs_prefix
}
