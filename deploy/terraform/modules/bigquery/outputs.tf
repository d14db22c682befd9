output "dataset_ids" {
  description = "Dataset id per layer (bronze, silver, gold, reference), for IAM bindings and the services' settings."
  value       = { for layer, ds in google_bigquery_dataset.layer : layer => ds.dataset_id }
}

output "bronze_table_ids" {
  description = "The Terraform-owned bronze tables, by table name (full resource ids)."
  value       = { for name, t in google_bigquery_table.bronze : name => t.id }
}

output "dbt_physical_design" {
  description = "Partitioning and clustering of the dbt-owned silver and gold tables as the models set them on BigQuery (documentation: dbt creates these tables, Terraform does not)."
  value       = local.dbt_physical_design
}
