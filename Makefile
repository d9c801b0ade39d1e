# The two commands of the README, plus the benchmark.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench wrk chromium translations drill redis-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The verifier client (clients/python) is a package of its own; its tests run in this suite.
$(STAMP): pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]" -e ./clients/python
	touch $(STAMP)

## Set up and start Bastion on the embedded default (SQLite, console email) at http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/bastion serve

## Set up and run the whole suite: lint, type check, import contracts, tests on SQLite and PostgreSQL
test: $(STAMP) lint wrk chromium redis-server
	$(BIN)/pytest -n 3 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts drill clients/python examples
	$(BIN)/mypy --strict src clients/python/src
	$(BIN)/lint-imports --no-logo

## Benchmark Bastion against its own ceilings and FastAPI-Users (about 13 minutes; bench/README.md)
## At a million users instead: make bench BENCH_ARGS="--users 1000000"
PEER_STAMP := bench/.venv-peer/.installed
BENCH_ARGS ?=

bench: $(STAMP) $(PEER_STAMP) wrk
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# FastAPI-Users in a venv of its own, on the granian version Bastion's venv has.
$(PEER_STAMP): bench/peer/requirements.txt $(STAMP)
	test -x bench/.venv-peer/bin/python || $(PYTHON) -m venv bench/.venv-peer
	bench/.venv-peer/bin/pip install --quiet -r bench/peer/requirements.txt \
		"granian==$$($(BIN)/python -c 'import granian; print(granian.__version__)')"
	touch $(PEER_STAMP)

## wrk drives the benchmark (and its smoke test); it comes from Debian's packages
wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

## Chromium runs the browser tests (Playwright drives Debian's build; it cannot download its own)
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

## Extract the pages' and emails' strings and update every catalog (docs/pages.md, "Translation")
CATALOGS := src/bastion/locales
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k gettext_noop --no-location --sort-output \
		--project=Bastion --copyright-holder="The Bastion authors" -o $(CATALOGS)/messages.pot .
	$(BIN)/pybabel update -i $(CATALOGS)/messages.pot -d $(CATALOGS) --ignore-obsolete

## Fault drill: under load while PostgreSQL, Redis, SMTP and workers fail (10 minutes; drill/README.md)
## Shorter: make drill DRILL_ARGS="--minutes 2"
DRILL_ARGS ?=

drill: $(STAMP) redis-server
	$(BIN)/python -m drill.run $(DRILL_ARGS)

## The drill starts a redis-server of its own (its short version runs in the test suite)
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
