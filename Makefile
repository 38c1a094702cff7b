# The few commands a newcomer needs. Each target creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "loopml needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[examples]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[test]'
	touch $@ $(VENV)/.demo-installed

## make demo: install loopml and run the demo on the embedded default store (./.loopml)
demo: $(VENV)/.demo-installed
	$(BIN)/python examples/demo.py

## make test: install the test extras and run the whole suite (SQLite, PostgreSQL, moto S3)
test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -n 2 --durations=15

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python bench/tracking.py

clean:
	rm -rf $(VENV) .loopml build dist src/*.egg-info
