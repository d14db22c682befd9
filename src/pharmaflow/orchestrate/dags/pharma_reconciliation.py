"""Airflow DAG `pharma_reconciliation`, built by pharmaflow.orchestrate.airflow_dags.

See docs/orchestration.md.
"""

from pharmaflow.orchestrate.airflow_dags import reconciliation

dag = reconciliation()
