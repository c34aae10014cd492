# SCIZOR — two commands on a fresh machine:
#   make up     set up .venv and run the platform on its embedded default
#   make test   set up .venv (and PostgreSQL if missing) and run the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: up down status test lint bench venv system-packages clean help

help:
	@echo "make up      - install into .venv and start SCIZOR (local Ray, SQLite, ibsim, API on :8000)"
	@echo "make test    - install into .venv, start a throwaway PostgreSQL, run lint and all tests"
	@echo "make lint    - ruff, mypy and import-linter only"
	@echo "make bench   - run every benchmark in benchmarks/ side by side with its peers"
	@echo "make down    - stop what 'make up' started"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# PostgreSQL server binaries (the test harness starts its own server) and Chromium (the report
# test renders HTML headless), from the system's packages when missing.
system-packages:
	@bash .ci/ensure-system-packages

up: venv
	$(VENV)/bin/scizor up --detach

down: venv
	$(VENV)/bin/scizor down

status: venv
	$(VENV)/bin/scizor status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: venv system-packages
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: venv
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
