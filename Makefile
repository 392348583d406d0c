# fastcheck developer commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: demo test lint typecheck bench fuzz coverage mutate clean

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

## make test: lint, type-check fastcheck/ (mypy, strict on the public API), then the whole
## test suite
test: $(VENV)/.installed-test
	$(BIN)/ruff check fastcheck tests examples $(wildcard bench)
	$(BIN)/python -m mypy fastcheck
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check fastcheck tests examples $(wildcard bench)

typecheck: $(VENV)/.installed-test
	$(BIN)/python -m mypy fastcheck

## make bench: the pytest-benchmark suites (timings; not part of make test)
bench: $(VENV)/.installed-test
	$(BIN)/python -m pytest bench --benchmark-only --benchmark-sort=mean $(ARGS)

## make fuzz [FUZZ=2000]: the hostile-input suite with FUZZ random examples per category;
## prints the outcome table (also in /tmp/fastcheck_hostile_summary.txt)
FUZZ ?= 2000
fuzz: $(VENV)/.installed-test
	FASTCHECK_FUZZ_EXAMPLES=$(FUZZ) $(BIN)/python -m pytest tests/hostile -s $(ARGS)

## make coverage: a fast subset of the tests under NUMBA_DISABLE_JIT=1, so that the kernels'
## Python source is measured too (line + branch coverage of fastcheck/)
COV_TESTS ?= tests/test_inputs.py tests/test_verdicts.py tests/test_sampling.py \
	tests/test_layout.py tests/test_backends.py tests/test_check_core.py tests/test_cli.py \
	tests/test_diagnose.py tests/test_stats.py tests/test_taylor.py tests/test_methods.py \
	tests/test_binding.py tests/test_user_check.py tests/test_plot.py tests/test_models.py \
	tests/test_backend_protocol.py tests/hostile
# tests that need the JIT (backend choice, numba's own errors) or run the MLP for minutes
COV_DESELECT ?= not bitwise_identical and not auto_picks_numba and not refuses_uncompilable \
	and not builtin_mlp and not l_size_sentence and not one_element_bug
coverage: $(VENV)/.installed-test
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest $(COV_TESTS) -k "$(COV_DESELECT)" -q \
		--cov=fastcheck --cov-branch --cov-report=term-missing:skip-covered $(ARGS)

## make mutate: mutation testing of the verdict code (_verdict, _steps, _driver) with mutmut 3
## on a fast test selection ([tool.mutmut] in pyproject.toml); not part of make test.
## Score and survivors: docs/testing.md. MUTATE_CHILDREN=1 keeps it to one core.
MUTATE_CHILDREN ?= 1
$(VENV)/.installed-mutate: pyproject.toml | $(VENV)/.installed-test
	$(BIN)/python -m pip install -e ".[test,mutate]"
	touch $@
mutate: $(VENV)/.installed-mutate
	$(BIN)/mutmut run --max-children $(MUTATE_CHILDREN) $(ARGS)
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .benchmarks *.egg-info
