# The two commands of the README, plus the benchmark.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

## Set up and start Bastion on the embedded default (SQLite, console email) at http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/bastion serve

## Set up and run the whole suite: lint, type check, tests on SQLite and PostgreSQL
test: $(STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src
