# One entry point for people and CI. `make up` runs Gatewatch on the embedded broker; `make test` runs
# every test (CI runs `.ci/run`, which is `make test`); `make test-fast` the unit tests only (no broker,
# nothing slow) for the inner loop. All create .venv and install the project first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install up test test-fast lint typecheck schemas clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/gatewatch up --simulate 200 --duration 60

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy schemas rules streams
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -q -m "not integration and not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check streams schemas

typecheck: install
	$(BIN)/mypy schemas rules streams

schemas: install
	$(BIN)/python -m schemas

clean:
	rm -rf $(VENV) .gatewatch .pytest_cache .mypy_cache .ruff_cache
