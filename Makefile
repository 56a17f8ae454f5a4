# Two entry points, each works as the first command on a fresh machine:
#   make demo   set up .venv, build the embedded demo store and run the main job
#   make test   set up .venv (with the dev and Spark extras) and run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the project's dependencies change.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[notebook]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,notebook,spark]'
	@touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/crm-ml demo

# One worker per core; a test file stays on one worker so its module fixtures are built once.
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n auto --dist loadfile

lint: $(VENV)/.installed-test
	$(BIN)/ruff check crm_ml tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data reports/20* reports/_failed reports/_staging mlruns .pytest_cache
