# pharmaflow: one image, several entry points (docs/deploy-compose.md).
#
#   docker build -t pharmaflow:0.1.0 .
#   docker run --rm pharmaflow:0.1.0 --help                    # the CLI
#   docker run --rm -p 127.0.0.1:8000:8000 -v pharmaflow-data:/data pharmaflow:0.1.0   # the API
#   docker run --rm --entrypoint airflow pharmaflow:0.1.0 version   # Airflow, same environment
#
# The API, the dashboard, the ingest worker, the speed layer and Airflow (the `airflow` extra)
# all run from this image, so every process imports exactly the same locked packages; what a
# container does is its command (docker-compose.yml). No secret is built in: keys, passwords
# and DSNs come from the environment at run time.
#
# Other extras: --build-arg EXTRAS="airflow bigquery pubsub". The `spark` extra also needs a
# Java 17 runtime, which this image deliberately does not carry (a JRE is ~200 MB that no
# service here uses): build it FROM this image with openjdk-17-jre-headless added as root.

# ---- build: uv installs uv.lock as locked into /app/.venv ------------------------------------
FROM python:3.11.13-slim-bookworm AS build

# The uv release the Makefile pins (UV_VERSION there): the same resolver reads the same lock.
ARG UV_VERSION=0.13.9
# Space-separated names from [project.optional-dependencies].
ARG EXTRAS="airflow"

ENV UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m pip install "uv==${UV_VERSION}"

WORKDIR /src

# Dependencies first, in their own layer: a source change does not reinstall 300 packages.
COPY pyproject.toml uv.lock README.md ./
RUN set --; for extra in ${EXTRAS}; do set -- "$@" --extra "$extra"; done; \
    uv sync --frozen --no-dev --no-install-project "$@" --python /usr/local/bin/python3.11

# Then the project itself, as a regular (non-editable) install: /app/.venv is all the
# runtime stage needs, and /src is left behind with the build stage.
COPY src ./src
RUN set --; for extra in ${EXTRAS}; do set -- "$@" --extra "$extra"; done; \
    uv sync --frozen --no-dev --no-editable "$@" --python /usr/local/bin/python3.11

# ---- runtime ---------------------------------------------------------------------------------
FROM python:3.11.13-slim-bookworm AS runtime

# libgomp1: LightGBM's shared library links the system OpenMP runtime (every other native
# library in the environment ships its own, or needs only libc, libstdc++ and zlib).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric UID/GID, so a volume's files have the same owner whichever container (or
# host backup job) touches them; no login shell: nobody logs in to a service account.
RUN groupadd --system --gid 10001 pharmaflow \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/pharmaflow \
        --shell /usr/sbin/nologin pharmaflow \
    && mkdir -p /data /opt/airflow/logs /opt/airflow/auth \
    && chown -R 10001:10001 /data /opt/airflow

# Owned by root and not writable by the service user: running code cannot change itself.
COPY --from=build /app/.venv /app/.venv
COPY deploy/compose/healthcheck.py /usr/local/bin/pharmaflow-healthcheck
RUN chmod 0755 /usr/local/bin/pharmaflow-healthcheck

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PHARMAFLOW_DATA_DIR=/data \
    AIRFLOW_HOME=/opt/airflow \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false

USER 10001:10001
WORKDIR /data

# Lake, vault, warehouse snapshots and logs: one data dir shared by every pharmaflow service.
VOLUME ["/data"]

# API, dashboard, Airflow's API server, ingest and speed-layer metrics.
EXPOSE 8000 8501 8080 9501 9511

# The default command is the API; compose gives every other service a check of its own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["pharmaflow-healthcheck"]

ENTRYPOINT ["pharmaflow"]
CMD ["serve", "--host", "0.0.0.0"]
