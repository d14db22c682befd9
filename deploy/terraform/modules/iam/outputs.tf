output "emails" {
  description = "Service account e-mail per service (api, dashboard, ingest, realtime, composer, warehouse, mlflow)."
  value       = { for k, sa in google_service_account.svc : k => sa.email }
}

output "members" {
  description = "IAM member string (serviceAccount:<email>) per service."
  value       = { for k, sa in google_service_account.svc : k => sa.member }
}
