"""Patient surveys as an operational PostgreSQL table: validated, idempotent submissions.

A later issue puts an HTTP API in front; ingest extracts the table incrementally into bronze
(`pharmaflow.ingest.sources.postgres`), where PHI protection happens as for Kafka-borne surveys.
"""

from pharmaflow.serve.surveys.model import InvalidSurvey, SurveySubmission
from pharmaflow.serve.surveys.store import SubmitResult, SurveyStore

__all__ = ["InvalidSurvey", "SubmitResult", "SurveyStore", "SurveySubmission"]
