# Tickflow: `make run` starts the whole pipeline locally, `make test` runs the test suite.
# Both set up everything first: Debian packages (when root), the virtualenv, the package.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint bench stack-up stack-down system-deps install clean

run: install system-deps stack-up
	$(BIN)/tickflow db migrate
	$(BIN)/tickflow topics create
	@echo "Starting the pipeline (Ctrl-C stops it and the local stack)..."
	$(BIN)/honcho start -f Procfile; status=$$?; $(BIN)/tickflow stack down; exit $$status

test: install system-deps lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install system-deps
	@for script in bench/bench_*.py; do echo "=== $$script"; $(BIN)/python $$script || exit 1; done

stack-up: install system-deps
	$(BIN)/tickflow stack up

stack-down: install
	$(BIN)/tickflow stack down

system-deps:
	@bash infra/local/install-system-deps.sh

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	-$(BIN)/tickflow stack down
	rm -rf $(VENV) .tickflow *.egg-info
