# Every target installs what it needs into .venv first: a fresh clone with Python 3.11 is enough.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all up lint typecheck test test-fast rules-test bench clean browser-deps screenshots

all: lint typecheck test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/ticket-worker up

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The browser tier drives Debian's chromium (never a downloaded browser); installed here
# when missing (needs root).
browser-deps:
	test -x /usr/bin/chromium || apt-get install -y chromium || (apt-get update && apt-get install -y chromium)

# Retake the README's screenshots of the console (docs/console-*.png).
screenshots: $(STAMP) browser-deps
	SCREENSHOTS=docs $(BIN)/pytest tests/browser --no-cov -q

test: $(STAMP) browser-deps
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m 'not integration and not browser' --no-cov -q

# wrk (Debian's package) loads the receiver; installed here when missing (needs root).
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python -m bench.receiver
	$(BIN)/python -m bench.delivery
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.storage
	$(BIN)/python -m bench.console
	$(BIN)/python -m bench.e2e --events 1500 --quiet 4000 --rounds 5
	$(BIN)/python -m bench.timers

clean:
	rm -rf $(VENV) .ticket-worker .mypy_cache .pytest_cache .ruff_cache .coverage*
