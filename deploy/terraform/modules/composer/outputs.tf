output "name" {
  description = "The Composer environment name."
  value       = google_composer_environment.this.name
}

output "airflow_uri" {
  description = "The Airflow web UI URL."
  value       = google_composer_environment.this.config[0].airflow_uri
}

output "dag_gcs_prefix" {
  description = "The environment bucket's dags/ folder, where the release copies pharmaflow's DAG files."
  value       = google_composer_environment.this.config[0].dag_gcs_prefix
}
