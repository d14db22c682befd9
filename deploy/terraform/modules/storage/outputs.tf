output "name" {
  description = "The bucket name (for IAM bindings and Cloud Storage volume mounts)."
  value       = google_storage_bucket.this.name
}

output "url" {
  description = "The bucket's gs:// URL."
  value       = google_storage_bucket.this.url
}
