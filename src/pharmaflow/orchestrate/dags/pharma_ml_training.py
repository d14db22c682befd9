"""Airflow DAG `pharma_ml_training`, built by pharmaflow.orchestrate.airflow_dags.

See docs/orchestration.md.
"""

from pharmaflow.orchestrate.airflow_dags import ml_training

dag = ml_training()
