"""Airflow DAG `pharma_survey_extract`, built by pharmaflow.orchestrate.airflow_dags.

See docs/orchestration.md.
"""

from pharmaflow.orchestrate.airflow_dags import survey_extract

dag = survey_extract()
