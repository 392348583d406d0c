"""The input boundary (``fastcheck/_inputs.py``), case by case."""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc

from .conftest import (
    attempt,
    expect_documented,
    hostile_cost,
    quad_cost,
    quad_grad,
    record,
)


# -- the input boundary, case by case (fastcheck/_inputs.py) ---------------------------------
def boundary_cases() -> dict[str, tuple]:
    """name: (cost, grad, params, expected error type or None, words the message holds);
    built afresh for each test (the hostile cost counts its calls)."""
    return {
        "ragged list block": (quad_cost, {"W": np.zeros(2)}, {"W": [[1.0, 2.0], [3.0]]},
                              ValueError, ("params['W']",)),
        "ragged grad list": (quad_cost, [[1.0], [2.0, 3.0]], np.ones(3), ValueError, ("grad",)),
        # float32 costs are checked with tolerances from their measured noise (API.md)
        "float32 cost": (lambda x: np.float32(quad_cost(x)), quad_grad, np.ones(3), None, ()),
        "float32 1-element array cost": (lambda x: np.array([quad_cost(x)], dtype=np.float32),
                                         quad_grad, np.ones(3), None, ()),
        "int beyond float range": (lambda x: 10**400, quad_grad, np.ones(3), ValueError,
                                   ("cost", "finite")),
        "pair without grad=True": (lambda x: (quad_cost(x), quad_grad(x)), quad_grad, np.ones(3),
                                   TypeError, ("cost", "grad=True")),
        "inf at the second call": (hostile_cost("inf", 1, quad_cost), quad_grad, np.ones(3),
                                   fc.NondeterministicCostError, ("cost",)),
        "big-endian float64 params": (quad_cost, quad_grad(np.ones(3)), np.ones(3, dtype=">f8"),
                                      None, ()),
        "big-endian float64 grad": (quad_cost, quad_grad(np.ones(3)).astype(">f8"), np.ones(3),
                                    None, ()),
    }


@pytest.mark.parametrize("case", list(boundary_cases()))
def test_input_boundary(case):
    """Edge cases of the input boundary found by the fuzzing: each a documented error
    naming the argument, or (float64 of the other byte order) a passing report."""
    cost, grad, params, error, words = boundary_cases()[case]
    out = attempt("boundary", lambda: fc.check(cost, grad, params), [params, grad])
    if error is None:
        assert out.error is None and out.report.passed, out.error
        record("boundary", "report: pass")
        return
    assert isinstance(out.error, error), repr(out.error)
    expect_documented("boundary", out, ("cost", "grad", "params"))
    for word in words:
        assert word in str(out.error), (word, str(out.error))
