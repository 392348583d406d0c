"""Non-finite evaluations at perturbed points, on every backend: never a pass."""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc

from .conftest import (
    attempt,
    nb_grad,
    nb_hostile,
    overflow_problem,
    quad_cost,
    quad_grad,
)

# -- non-finite evaluations at perturbed points -----------------------------------------------
BACKENDS = ["serial", "threads", "numba"]

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", [2, 3], ids=["nan", "inf"])
def test_nonfinite_evaluation_is_reported_and_never_a_pass(backend, mode):
    """The cost is NaN (inf) at theta + h of one component: that component is
    "nonfinite", counted as a failure, and a hint names its block."""
    theta, w, limit, layout = overflow_problem()
    args = (w, 2, float(limit), mode)
    grad = nb_grad(theta, *args)
    cost = nb_hostile if backend == "numba" else getattr(nb_hostile, "py_func", nb_hostile)
    out = attempt("nonfinite", lambda: fc.check(cost, grad, theta, args, backend=backend,
                                                layout=layout, threads=2),
                  [theta, grad, args], numba_case=backend == "numba")
    rep = out.report
    assert rep is not None, out.error
    assert list(rep.kinds) == ["ok", "ok", "nonfinite", "ok", "ok", "ok"]
    assert not rep.passed and rep.verdict == "fail"
    assert list(rep.failed) == [2]
    assert {b.name: b.n_failed for b in rep.blocks} == {"W": 1, "b": 0}
    assert any("W" in h and "NaN or inf" in h for h in rep.hints), rep.hints
    assert "W[1, 0]" in rep.summary()


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_infinite_analytic_gradient_is_never_ok(mode):
    """An infinite analytic gradient is never "ok", in either mode."""
    theta = np.linspace(-1.0, 1.0, 40)
    grad = quad_grad(theta)
    grad[1] = np.inf
    rep = fc.check(quad_cost, grad, theta, mode=mode, seed=0)
    assert not rep.passed
    assert rep.kinds[np.searchsorted(rep.indices, 1)] == "nonfinite"
