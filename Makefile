# The few commands a newcomer needs. Each target creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint bench clean chromium

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

## make demo: install loopml and run the whole loop (data -> train -> gate -> serve -> drift ->
## retrain -> canary -> promote / reject / roll back) in a fresh workspace: a new temporary
## directory with its own embedded store (.loopml); DEMO_ARGS="--workdir DIR" to choose it
demo: $(VENV)/.demo-installed
	$(BIN)/python examples/demo.py $(DEMO_ARGS)

## make chromium: Debian's chromium for the UI tests (tests/ui drive it with Playwright; no
## browser download). Installed with apt when missing; where that is impossible (no apt, not
## root) this says so and the UI tests skip with the reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  fi; } || true
	@command -v chromium >/dev/null 2>&1 || echo "note: chromium is not installed and could not be \
	installed here (needs apt and root); the UI tests in tests/ui will be skipped"

## make test: install the test extras and run the whole suite (SQLite, PostgreSQL, moto S3,
## headless Chromium)
test: $(VENV)/.test-installed chromium
	$(BIN)/python -m pytest -n 2 --durations=15

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python bench/tracking.py

clean:
	rm -rf $(VENV) .loopml build dist src/*.egg-info
