"""Patient-data protection (HIPAA Safe Harbor) applied at ingest, before anything is written."""
