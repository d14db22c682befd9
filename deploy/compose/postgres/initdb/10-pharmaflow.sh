#!/bin/sh
# First start of the postgres service only (the image runs /docker-entrypoint-initdb.d/ on an
# empty data volume): one role and one database each for pharmaflow (surveys, speed-layer
# state, a postgres warehouse) and for Airflow's metadata, so neither can read the other's.
# The passwords come from the container's environment (docker-compose.yml, from .env) and
# reach SQL as psql variables (:'name' quotes them), never spliced into the script.
set -eu

: "${POSTGRES_PHARMAFLOW_PASSWORD:?}"
: "${POSTGRES_AIRFLOW_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v pharmaflow_password="$POSTGRES_PHARMAFLOW_PASSWORD" \
    -v airflow_password="$POSTGRES_AIRFLOW_PASSWORD" <<'SQL'
CREATE ROLE pharmaflow LOGIN PASSWORD :'pharmaflow_password';
CREATE DATABASE pharmaflow OWNER pharmaflow;
REVOKE ALL ON DATABASE pharmaflow FROM PUBLIC;

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
SQL
