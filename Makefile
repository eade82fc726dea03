# Two commands do all the set-up: `make run` and `make test`.
# Each installs what is missing (a virtual environment with pinned packages,
# Azurite from package.json) and starts and stops the services it needs.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed


.PHONY: run serve test lint typecheck unit bench faults cleanup-preview deps clean

run: deps
	$(PY) -m localdev.demo

serve: deps
	$(PY) -m localdev.stack

test: deps lint typecheck
	$(PY) -m pytest

unit: deps
	$(PY) -m pytest tests/unit

lint: $(PY_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(PY_STAMP)
	$(VENV)/bin/mypy --strict shared emulator localdev cli

bench: deps
	$(PY) -m bench

faults: deps
	$(PY) -m bench.faults

cleanup-preview: deps
	$(PY) -m localdev.demo --cleanup-preview

deps: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check \
		-r requirements-dev.txt -c constraints.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .localdev .pytest_cache .mypy_cache .ruff_cache
