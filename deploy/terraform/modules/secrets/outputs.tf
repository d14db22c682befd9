output "secret_ids" {
  description = "Secret resource id (projects/<p>/secrets/<id>) per secret name, for Cloud Run's secret references."
  value       = { for k, s in google_secret_manager_secret.this : k => s.id }
}

output "env" {
  description = "Environment variable name per secret name (what each service reads it into)."
  value       = { for k, s in local.secrets : k => s.env }
}

output "by_accessor" {
  description = "Per deployed service that reads any: the secrets it may read, as a list of { name, env, id } (what its Cloud Run service maps into environment variables)."
  value = {
    for a in distinct(flatten([for s in values(local.secrets) : s.accessors])) : a => [
      for name, s in local.secrets : { name = name, env = s.env, id = google_secret_manager_secret.this[name].id } if contains(s.accessors, a)
    ]
  }
}
