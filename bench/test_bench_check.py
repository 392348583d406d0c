"""The full (or sampled) gradient check of the built-in MLP: fastcheck against its peers.

Each case is one benchmark group, so ``make bench`` prints every method's time next to
the physical limit of that case:

- ``limit``: the bare njit cost, 2n evaluations divided over the threads (no checker can
  be faster than this);
- ``fastcheck-numba-threads=K``: ``fc.check`` on the numba backend, K = 1 and all threads;
- ``fastcheck-serial`` / ``fastcheck-threads``: fastcheck's Python backends, NumPy cost;
- ``classic-loop``: the course's Python loop, step 1e-7, NumPy cost;
- ``scipy-3point``: ``scipy.optimize.approx_derivative(method="3-point")``;
- ``torch-gradcheck``: ``torch.autograd.gradcheck`` (float64; skipped without PyTorch).

Run: ``make bench`` (``pytest bench --benchmark-only``); add ``--bench-full`` for the slow
peers on the full L network, ``--bench-size=M`` for one case.
"""

from __future__ import annotations

import numpy as np
import pytest

from . import peers
from .conftest import CASES, measure

CASE_IDS = list(CASES)
#: A few components: enough to compile every JIT-ed piece, cheap on any size.
WARM = 8


def _cases(full_on_l=False):
    """One param per case, each in its benchmark group; ``full`` marks slow peers on L."""
    return [pytest.param(c, id=c, marks=[pytest.mark.benchmark(group=f"check-{c}"),
                                         *([pytest.mark.full] if full_on_l and c == "L"
                                           else [])])
            for c in CASE_IDS]


def _n_evaluations(model, indices):
    return 2 * (model.theta.shape[0] if indices is None else indices.shape[0])


def _warm_sample(model):
    """A small sample: enough to compile (or load) the numba kernel, cheap on any size."""
    return np.arange(max(WARM, len(model.layout.names)))


@pytest.mark.parametrize("case", _cases())
def test_limit(benchmark, case, problem):
    """The physical limit: 2n bare njit evaluations / threads, on one thread."""
    model, indices = problem
    peers.limit_loop(model, 2)  # compile
    measure(benchmark, case, peers.limit_loop, model, _n_evaluations(model, indices))


@pytest.mark.parametrize("threads", sorted({1, peers.THREADS}),
                         ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("case", _cases())
def test_fastcheck_numba(benchmark, case, problem, threads):
    """fastcheck, numba backend (the candidate), with one and with all threads."""
    model, indices = problem
    peers.fastcheck_numba(model, _warm_sample(model), threads=threads)  # compile or load
    report = measure(benchmark, case, peers.fastcheck_numba, model, indices, threads)
    assert report.passed


@pytest.mark.parametrize("backend", ["serial", "threads"])
@pytest.mark.parametrize("case", _cases(full_on_l=True))
def test_fastcheck_python_backends(benchmark, case, problem, backend):
    """fastcheck's Python backends on the plain NumPy cost."""
    model, indices = problem
    report = measure(benchmark, case, peers.fastcheck_python, model, indices, backend)
    assert report.passed


@pytest.mark.parametrize("case", _cases(full_on_l=True))
def test_classic_loop(benchmark, case, problem):
    """The course's loop (the baseline most users start from)."""
    model, indices = problem
    measure(benchmark, case, peers.classic, model, indices)


@pytest.mark.parametrize("case", _cases(full_on_l=True))
def test_scipy_approx_derivative(benchmark, case, problem):
    """SciPy's 3-point finite differences of the whole gradient."""
    model, indices = problem
    if indices is not None:
        pytest.skip("approx_derivative has no sampling: compare it on the full cases")
    measure(benchmark, case, peers.scipy_3point, model, None)


@pytest.mark.parametrize("case", _cases(full_on_l=True))
def test_torch_gradcheck(benchmark, case, problem):
    """PyTorch's gradcheck (slow mode) of the same network in float64."""
    if not peers.torch_available():
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
    model, indices = problem
    if indices is not None:
        pytest.skip("gradcheck has no sampling: compare it on the full cases")
    assert measure(benchmark, case, peers.torch_gradcheck, model, None)

