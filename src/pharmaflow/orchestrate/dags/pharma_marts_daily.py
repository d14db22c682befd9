"""Airflow DAG `pharma_marts_daily`, built by pharmaflow.orchestrate.airflow_dags.

See docs/orchestration.md.
"""

from pharmaflow.orchestrate.airflow_dags import marts_daily

dag = marts_daily()
