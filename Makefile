# Two entry points, each works as the first command on a fresh machine:
#   make demo   set up .venv, build the embedded demo store and run the main job
#   make test   set up .venv and run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

install: $(STAMP)

# Reinstall whenever the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,notebook]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crm-ml demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check crm_ml tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data reports/20* mlruns .pytest_cache
