"""Ingest: decode → envelope → validate → dedupe → protect PHI → route, one batch at a time."""
