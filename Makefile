# pharmaflow — the two commands: `make demo` and `make test`. Both create the environment first.
PYTHON ?= python3
VENV   := .venv
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_VERSION_CHECK := false
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: env demo test lint format bench docs clean up screenshots browser ml prometheus java

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Every extra is installed (Airflow, Spark, BigQuery, Pub/Sub): their tests run in `make test`.
# Bytecode is compiled here because PYTHONDONTWRITEBYTECODE=1 may be set (it is on CI machines):
# without .pyc files every command recompiles its imports and `pharmaflow --help` takes seconds.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --all-extras --python $(PYTHON)
	@touch $@

# The project itself is installed editable: compile its sources on every run (only changed
# files are recompiled; Python ignores a stale .pyc, so this can never run old code).
env: $(VENV)/.synced
	@$(VENV)/bin/python -m compileall -q src

demo: env
	$(VENV)/bin/pharmaflow --data-dir data/demo demo

# The models need weeks of history: a 9-week window ending two days ago (an event stamped in
# the future is quarantined), landed and built, then all four models trained and scored.
ML_DATA := data/ml
ML_START = $(shell date -u -d '65 days ago' +%F)
ml: env
	$(VENV)/bin/pharmaflow --data-dir $(ML_DATA) simulate --days 63 --scale 0.25 --seed 7 --start $(ML_START)
	$(VENV)/bin/pharmaflow --data-dir $(ML_DATA) ingest --source $(ML_DATA)/input/events.jsonl
	$(VENV)/bin/pharmaflow --data-dir $(ML_DATA) build
	$(VENV)/bin/pharmaflow --data-dir $(ML_DATA) train
	$(VENV)/bin/pharmaflow --data-dir $(ML_DATA) score

# The dashboard's browser tests drive Debian's Chromium (Playwright never downloads one).
CHROMIUM := /usr/bin/chromium
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) $(APT_INSTALL) chromium || ($(SUDO) apt-get update -q && $(SUDO) $(APT_INSTALL) chromium)

browser: $(CHROMIUM)

# The observability tests run Debian's Prometheus and promtool (deploy/prometheus/: rules,
# their unit tests, a live server scraping the workers; docs/observability.md).
PROMETHEUS := /usr/bin/prometheus

$(PROMETHEUS):
	$(SUDO) $(APT_INSTALL) prometheus || ($(SUDO) apt-get update -q && $(SUDO) $(APT_INSTALL) prometheus)

prometheus: $(PROMETHEUS)

# The Spark warehouse target's parity test runs PySpark in local mode, which needs a Java 17
# runtime (docs/warehouse-targets.md); Debian's headless JRE when no `java` is on the PATH.
JAVA := $(shell command -v java 2>/dev/null || echo /usr/bin/java)

$(JAVA):
	$(SUDO) $(APT_INSTALL) openjdk-17-jre-headless || ($(SUDO) apt-get update -q && $(SUDO) $(APT_INSTALL) openjdk-17-jre-headless)

java: $(JAVA)

# The compose tests validate docker-compose.yml with Debian's docker-compose 1.29: `config`
# only reads files, no Docker engine is needed (docs/deploy-compose.md). `compose-check` runs
# it in a clean environment, so no exported variable stands in for one .env.example lacks.
DOCKER_COMPOSE := /usr/bin/docker-compose

$(DOCKER_COMPOSE):
	$(SUDO) $(APT_INSTALL) docker-compose || ($(SUDO) apt-get update -q && $(SUDO) $(APT_INSTALL) docker-compose)

.PHONY: compose compose-check compose-env
compose: $(DOCKER_COMPOSE)

compose-check: $(DOCKER_COMPOSE)
	env -i PATH="$$PATH" $(DOCKER_COMPOSE) -f docker-compose.yml --env-file .env.example config -q

# A .env with fresh random secrets from .env.example (never overwrites an existing .env).
compose-env:
	$(PYTHON) deploy/compose/make_env.py .env.example .env

test: env browser prometheus java compose checkov
	$(VENV)/bin/python -m pytest

# The GCP deployment's static checks (deploy/terraform, docs/deploy-gcp.md): the Terraform
# files parse, are `terraform fmt` clean and keep the design's promises (tests/unit/deploy),
# and checkov finds nothing (tests/integration/deploy). checkov lives in its own environment:
# its pinned fork of hcl2 clashes with the project's python-hcl2. It runs offline: no API key,
# --skip-download, no mapping or package-update fetch. `make test` needs only the install.
CHECKOV_VERSION := 3.3.30
CHECKOV_ENV := $(TOOLS)/checkov
CHECKOV_STAMP := $(CHECKOV_ENV)/.installed-$(CHECKOV_VERSION)
CHECKOV_OFFLINE := BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE

$(CHECKOV_STAMP): $(UV)
	$(UV) venv --clear --python $(PYTHON) $(CHECKOV_ENV)
	$(UV) pip install --python $(CHECKOV_ENV)/bin/python "checkov==$(CHECKOV_VERSION)"
	@touch $@

.PHONY: checkov terraform-check
checkov: $(CHECKOV_STAMP)

terraform-check: env checkov
	$(VENV)/bin/python -m pytest -q tests/unit/deploy/test_terraform.py
	$(CHECKOV_OFFLINE) $(CHECKOV_ENV)/bin/checkov -d deploy/terraform --framework terraform --quiet --compact --skip-download

# The whole platform live on this machine (Ctrl-C stops it; see docs/serving.md).
up: env
	$(VENV)/bin/pharmaflow --data-dir data/up up

# One screenshot per dashboard page, from a real headless Chromium, for the README.
screenshots: env browser
	PHARMAFLOW_SCREENSHOTS=docs/screenshots $(VENV)/bin/python -m pytest -q \
		tests/e2e/test_dashboard_browser.py -k pages

lint: env
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: env
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

docs: env
	$(VENV)/bin/pharmaflow --data-dir data/docs docs --out docs/data-dictionary.md --lineage docs/lineage/index.html
	$(VENV)/bin/python -m pharmaflow.contracts.docs docs/contracts.md
	$(VENV)/bin/python -m pharmaflow.orchestrate.dbt_graph

bench: env
	$(VENV)/bin/python bench/ingest_file.py
	$(VENV)/bin/python bench/ingest_kafka.py
	$(VENV)/bin/python bench/build_warehouse.py
	$(VENV)/bin/python bench/phi_detection.py
	$(VENV)/bin/python bench/realtime.py
	$(VENV)/bin/python bench/api_load.py
	$(VENV)/bin/python bench/ml_train.py --repeat
	$(VENV)/bin/python bench/orchestrate_marts.py

clean:
	rm -rf data .pytest_cache .ruff_cache
