"""Exceptions inside the numba kernel and the thread pool: located, and everything restored."""

from __future__ import annotations

import time

import numba
import numpy as np
import pytest

import fastcheck as fc

from .conftest import (
    UserBug,
    attempt,
    auto_step,
    nb_grad,
    nb_hostile,
    overflow_problem,
    quad_cost,
    quad_grad,
)


# -- exceptions inside the numba kernel and the thread pool -----------------------------------
def test_exception_inside_numba_kernel_names_component_and_restores_everything():
    """A cost raising inside prange: one CostEvaluationError naming the flat index and the
    block, with the user's exception as its cause; numba's thread count (set by the caller
    to 1), BLAS limits and every input restored; a partial report attached."""
    theta, w, _, layout = overflow_problem()
    limit = theta[3] + auto_step(theta[3]) / 2
    args = (w, 3, float(limit), 1)
    grad = nb_grad(theta, *args)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        out = attempt("kernel-error", lambda: fc.check(nb_hostile, grad, theta, args,
                                                       backend="numba", threads=2,
                                                       layout=layout),
                      [theta, grad, args], numba_case=True)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)
    exc = out.error
    assert isinstance(exc, fc.CostEvaluationError), repr(exc)
    assert exc.flat_index == 3 and exc.name == "W[1, 1]"
    assert "W[1, 1]" in str(exc) and "flat index 3" in str(exc)
    assert isinstance(exc.__cause__, ValueError) and "hostile cost" in str(exc.__cause__)
    assert isinstance(exc.partial_report, fc.Report)
    assert "CostEvaluationError" in exc.partial_report.stop_reason
    assert "SystemError" not in str(exc)


def test_exception_inside_thread_pool_names_component():
    """A cost raising in a worker thread: one CostEvaluationError naming the component,
    the pool shut down (no fastcheck thread left), inputs unchanged."""
    params = {"W": np.linspace(-1, 1, 40).reshape(8, 5), "b": np.linspace(0, 1, 5)}

    def cost(p):
        if p["W"][6, 2] != params["W"][6, 2]:
            raise UserBug("component W[6, 2] breaks the cost")
        return quad_cost(p)

    grad = quad_grad(params)
    out = attempt("pool-error", lambda: fc.check(cost, grad, params, backend="threads",
                                                 threads=3), [params, grad])
    exc = out.error
    assert isinstance(exc, fc.CostEvaluationError), repr(exc)
    assert exc.flat_index == 32 and exc.name == "W[6, 2]" and "W[6, 2]" in str(exc)
    assert isinstance(exc.__cause__, UserBug)
    assert isinstance(exc.partial_report, fc.Report)


def test_exception_in_thread_pool_stops_promptly():
    """The other workers stop within a few evaluations once one has raised."""
    theta = np.linspace(-1, 1, 256)
    raised_at: list[float] = []

    def cost(x):
        time.sleep(0.004)
        if x[0] != theta[0]:
            raised_at.append(time.monotonic())
            raise UserBug("first component breaks the cost")
        return quad_cost(x)

    with pytest.raises(fc.CostEvaluationError):
        fc.check(cost, quad_grad(theta), theta, backend="threads", threads=2)
    assert time.monotonic() - raised_at[0] < 0.25
