"""Hostile keyword options of ``fc.check``."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fastcheck as fc

from .conftest import (
    attempt,
    expect_documented,
    expect_honest,
    fuzz,
    quad_cost,
    quad_grad,
)

# -- category "options": hostile keyword options ----------------------------------------------
OPTION_VALUES = {
    "eps": ["auto", 1e-6, 0.0, -1e-7, float("nan"), float("inf"), "big", None, True, 1j,
            np.float32(1e-5), [1e-6]],
    "sample": [None, 2, 0.5, 1.0, 0, -1, 10**9, 0.0, 1.5, float("nan"), "auto", "all",
               True, np.int64(3), np.float64(0.3), [2]],
    "seed": [None, 0, 7, -1, 2**70, 1.5, "x", True, np.int64(5)],
    "rtol": [1e-5, 1e-3, 0, -1.0, float("nan"), float("inf"), "1e-5", None, True],
    "threads": [None, 1, 2, 0, -3, 1.5, "2", True, np.int32(2), 64],
    "backend": ["auto", "serial", "threads", "gpu", "SERIAL", None, 3],
    "confidence": [0.95, 0.5, 0.0, 1.0, 2, float("nan"), "high", None],
    "target_rate": [1e-3, 0.1, 0.0, 1.0, -0.5, float("nan"), "low"],
    "max_failures": [None, 1, 3, 0, -2, 1.5, "1", True],
    "client": [None, object()],
}


@given(data=st.data())
@fuzz(120)
def test_fuzz_options(data):
    """Hostile keyword options: an error naming the option, or an honest report."""
    draw = data.draw
    chosen = {k: draw(st.sampled_from(v)) for k, v in OPTION_VALUES.items()
              if draw(st.integers(0, 2)) == 0}
    theta = np.linspace(-1.0, 1.0, 7)
    wrong = draw(st.booleans())
    grad = quad_grad(theta) + np.where(np.arange(7) == 3, 0.5 if wrong else 0.0, 0.0)
    out = attempt("options", lambda: fc.check(quad_cost, grad, theta, **chosen),
                  [theta, grad])
    if out.error is not None:
        expect_documented("options", out, tuple(chosen) or ("?",))
    else:
        full = out.report.n_checked == 7
        expect_honest("options", out, wrong=np.array([3]) if wrong else None,
                      correct=not wrong and full)
