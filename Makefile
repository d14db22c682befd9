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

.PHONY: env demo test lint format bench docs clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced

demo: env
	$(VENV)/bin/pharmaflow --data-dir data/demo demo

test: env
	$(VENV)/bin/python -m pytest

lint: env
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: env
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

docs: env
	$(VENV)/bin/pharmaflow --data-dir data/docs docs --out docs/data-dictionary.md --lineage docs/lineage/index.html

bench: env
	$(VENV)/bin/python bench/ingest_file.py
	$(VENV)/bin/python bench/ingest_kafka.py
	$(VENV)/bin/python bench/build_warehouse.py

clean:
	rm -rf data .pytest_cache .ruff_cache
