output "name" {
  description = "The service name."
  value       = google_cloud_run_v2_service.this.name
}

output "uri" {
  description = "The service's URL (reachable only as ingress allows, by the invoker members)."
  value       = google_cloud_run_v2_service.this.uri
}
