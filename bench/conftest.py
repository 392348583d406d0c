"""Fixtures and options of the benchmark suites (``make bench``).

Options:

``--bench-full``
    Also run the slow peers on the full L network (each takes a minute or more).
``--bench-size=S,M``
    Only these cases (ids ``S``, ``M``, ``L``, ``L-sample2000``); ``tests/test_bench_smoke.py``
    runs ``--bench-size=S --benchmark-disable`` so the suites cannot rot.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastcheck import _plan
from fastcheck.models import make_mlp

#: Case id -> (network size, components checked or None for all).
CASES = {"S": ("S", None), "M": ("M", None), "L": ("L", None), "L-sample2000": ("L", 2000)}
#: Cases whose methods run once per benchmark (a full L check is ~45 s per run).
SLOW_CASES = {"L": 1}


def pytest_addoption(parser):
    group = parser.getgroup("fastcheck bench")
    group.addoption("--bench-full", action="store_true", default=False,
                    help="also run the slow peers on the full L network")
    group.addoption("--bench-size", default="", metavar="IDS",
                    help="comma-separated case ids to run (S, M, L, L-sample2000)")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: a slow peer on L; needs --bench-full")


def pytest_collection_modifyitems(config, items):
    wanted = {s.strip() for s in config.getoption("--bench-size").split(",") if s.strip()}
    unknown = wanted - set(CASES)
    if unknown:
        raise pytest.UsageError(f"--bench-size: unknown case(s) {sorted(unknown)}; "
                                f"choose from {list(CASES)}")
    keep, drop = [], []
    for item in items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        (drop if wanted and case not in wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    skip = pytest.mark.skip(reason="slow peer on the full L network: pass --bench-full")
    if not config.getoption("--bench-full"):
        for item in items:
            if "full" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def rng():
    """The benchmarks' random generator (fixed seed)."""
    return np.random.default_rng(0)


_MODELS: dict = {}


@pytest.fixture
def problem(case):
    """``(model, indices)`` of a case; indices None means every component."""
    size, sample = CASES[case]
    if size not in _MODELS:
        _MODELS[size] = make_mlp(size, seed=0)
    model = _MODELS[size]
    indices = None
    if sample is not None:
        indices = _plan.choose_components(model.layout, sample, 0).indices
    return model, indices


def measure(benchmark, case, fn, *args):
    """Warm ``fn`` up outside the timed region, then benchmark it.

    The warm-up is a cheap call (a small sample where the method takes one), so that the
    JIT compile is never timed. Slow cases run ``SLOW_CASES[case]`` pedantic rounds.
    """
    if case in SLOW_CASES:
        return benchmark.pedantic(fn, args=args, rounds=SLOW_CASES[case], iterations=1,
                                  warmup_rounds=0)
    return benchmark(fn, *args)
