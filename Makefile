# Tickflow: `make run` starts the whole pipeline locally, `make test` runs the test suite.
# Both set up everything first: Debian packages (when root), the virtualenv, the package.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test test-unit test-faults lint bench stack-up stack-down system-deps jars install clean

run: install system-deps jars
	$(BIN)/tickflow run

test: install system-deps jars lint
	$(BIN)/python -m pytest --durations=25

# the unit tier alone: every test that needs no service (Kafka, PostgreSQL, Redis, Spark, Chromium)
test-unit: install
	$(BIN)/python -m pytest -m "not services"

# the fault-injection tests alone (`make test` runs them too, with the rest of the suite)
test-faults: install system-deps jars
	$(BIN)/python -m pytest -m faults tests/faults

# ruff, and the import layering of .importlinter (stages import tickflow and themselves only)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: install system-deps jars
	@for script in bench/bench_*.py; do echo "=== $$script"; $(BIN)/python $$script || exit 1; done

stack-up: install system-deps jars
	$(BIN)/tickflow stack up

stack-down: install
	$(BIN)/tickflow stack down

system-deps:
	@bash infra/local/install-system-deps.sh

# Apache Kafka and Spark's Kafka connector from Maven Central, once (then cached in ~/.m2)
jars: install system-deps
	@$(BIN)/tickflow stack jars

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	-$(BIN)/tickflow stack down
	rm -rf $(VENV) .tickflow *.egg-info
