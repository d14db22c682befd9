"""The folder Airflow reads (AIRFLOW__CORE__DAGS_FOLDER): one file per DAG.

See docs/orchestration.md.
"""
