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

# One worker per core and one more: much of the suite waits on notebook kernels, Spark's JVM
# and databases starting, which the spare worker fills (on 2 cores, the slowest files took
# 384-393 s with three workers against 444-465 s with two, and 436 s with four). A test file
# stays on one worker so its module fixtures are built once. `make test WORKERS=2` overrides.
WORKERS ?= $(shell $(PYTHON) -c "import os; print((os.cpu_count() or 1) + 1)")

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

lint: $(VENV)/.installed-test
	$(BIN)/ruff check crm_ml tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data reports/20* reports/_failed reports/_staging mlruns .pytest_cache
