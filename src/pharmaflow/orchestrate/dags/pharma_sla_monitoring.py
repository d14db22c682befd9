"""Airflow DAG `pharma_sla_monitoring`, built by pharmaflow.orchestrate.airflow_dags.

See docs/orchestration.md.
"""

from pharmaflow.orchestrate.airflow_dags import sla_monitoring

dag = sla_monitoring()
