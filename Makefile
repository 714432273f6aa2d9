# Safe RLHF platform. Quick start: `make demo` and `make test` (see README.md).
# Every target works on a fresh machine with Python 3.11 and a C compiler.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

# Never reach for a model hub: a stray lookup stalls for a minute before it fails.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# DeepSpeed JIT-builds a CPU op once (minutes); keep the build between runs.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.dev/torch_extensions
export PIP_DISABLE_PIP_VERSION_CHECK := 1

DEMO_STATE ?= .dev/services
TEST_STATE ?= .dev/test-services
PORT ?= 8000
SERVE ?= 1
# Toy-world rounds the demo runs through the API (scripts/demo_rounds.py); 0 skips them.
ROUNDS ?= 2
PYTEST_ARGS ?=

.PHONY: help install services services-down services-status migrate demo test lint typecheck \
        importlint migration-check pytest browser clean

help:
	@echo "make demo            start Postgres + Valkey, migrate, create an admin, serve the app and a worker,"
	@echo "                     and run ROUNDS (default 2) toy-world rounds in the background"
	@echo "make demo SERVE=0    the same set-up and rounds, headless; print the table and exit"
	@echo "make demo ROUNDS=0   no rounds (with SERVE=0: set up and exit)"
	@echo "make test            lint, types, import contracts, migrations and the whole test suite"
	@echo "make services        start the embedded Postgres and Valkey (or use DATABASE_URL / REDIS_URL)"
	@echo "make services-down   stop them"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || \
	  { echo "error: Python 3.11 is required (found $$($(PYTHON) --version 2>&1) at $(PYTHON)); set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $@
	@echo "installed into $(VENV)"

services: install
	@$(PY) scripts/devservices.py up --state $(DEMO_STATE) --persist

services-down:
	@test -x $(PY) && $(PY) scripts/devservices.py down --state $(DEMO_STATE) || true

services-status: install
	@$(PY) scripts/devservices.py status --state $(DEMO_STATE)

migrate: install
	@scripts/with_services.sh $(DEMO_STATE) fixed keep -- $(BIN)/saferlhf migrate

demo: install
	@SERVE=$(SERVE) ROUNDS=$(ROUNDS) PORT=$(PORT) DEMO_STATE=$(DEMO_STATE) scripts/demo.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

importlint: install
	$(BIN)/lint-imports

browser:
	@scripts/ensure_chromium.sh

# Migrations and the test suite run against test servers on free ports, stopped afterwards.
test: install browser lint typecheck importlint
	@REQUIRE_SERVICES=1 scripts/with_services.sh $(TEST_STATE) auto stop -- \
	  bash -c '$(PY) scripts/migration_check.py && $(BIN)/pytest $(PYTEST_ARGS)'

pytest: install
	@REQUIRE_SERVICES=1 scripts/with_services.sh $(TEST_STATE) auto stop -- $(BIN)/pytest $(PYTEST_ARGS)

# The test servers' data may live outside the checkout (devservices.py data_root), so the script
# deletes it; the demo's data is kept.
clean: services-down
	@test -x $(PY) && $(PY) scripts/devservices.py down --state $(TEST_STATE) --delete || true
	rm -rf .dev/test-services .pytest_cache .mypy_cache .ruff_cache
