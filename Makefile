# fastcheck developer commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[test]"
	touch $@ $(VENV)/.installed

## make demo [ARGS="--bug missing-regularization"]: check the built-in network
demo: $(VENV)/.installed
	$(BIN)/fastcheck demo $(ARGS)

## make test: lint, then the whole test suite
test: $(VENV)/.installed-test
	$(BIN)/ruff check fastcheck tests examples $(wildcard bench)
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check fastcheck tests examples $(wildcard bench)

## make bench: the pytest-benchmark suites (timings; not part of make test)
bench: $(VENV)/.installed-test
	$(BIN)/python -m pytest bench --benchmark-only --benchmark-sort=mean $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks *.egg-info
