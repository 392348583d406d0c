"""The parallel numba kernel: costs that raise or return NaN/inf at one point, and
arguments numba cannot use."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastcheck as fc

from .conftest import (
    JIT,
    attempt,
    auto_step,
    expect_documented,
    expect_honest,
    fail_undocumented,
    fuzz,
    nb_grad,
    nb_hostile,
    raised_by_fastcheck,
    record,
)

# -- category "numba": the parallel kernel ------------------------------------------------------


@given(data=st.data())
@fuzz(40, slow=True)
def test_fuzz_numba(data):
    """The numba backend with a cost that raises, returns NaN or inf at theta + h of one
    component (or at theta), wrong and non-finite gradients, strided and read-only params,
    layouts, samples and thread counts: the documented outcome, numba's thread count and
    BLAS limits restored."""
    draw = data.draw
    n = draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta = np.round(rng.uniform(-2, 2, 2 * n), 3)[::2] if draw(st.booleans()) else \
        np.round(rng.uniform(-2, 2, n), 3)
    if draw(st.booleans()):
        theta.flags.writeable = False
    w = rng.uniform(0.5, 2.0, n)
    mode = draw(st.sampled_from([0, 0, 1, 2, 3]))
    where = draw(st.integers(0, n - 1))
    trigger = draw(st.sampled_from(["plus", "plus", "theta"]))
    limit = theta[where] + auto_step(theta[where]) / 2 if trigger == "plus" else -np.inf
    args = (w, where, float(limit), mode)
    grad = nb_grad(np.array(theta), *args)
    gmode = draw(st.sampled_from(["right", "right", "wrong", "nan", "callable", "short"]))
    wrong = None
    pick = draw(st.integers(0, n - 1))
    if gmode == "wrong":
        grad[pick] += 0.5
        wrong = np.array([pick])
    elif gmode == "nan":
        grad[pick] = np.nan
    elif gmode == "short":
        grad = grad[:-1]
    cut = draw(st.integers(0, n))
    layout = fc.Layout({"A": (cut,), "B": (n - cut, 1)}) if draw(st.booleans()) else None
    sample = draw(st.sampled_from([None, None, max(1, n // 2)]))
    if sample is not None and layout is not None:
        sample = max(sample, int(cut > 0) + int(cut < n))
    threads = draw(st.sampled_from([None, 1, 2, 3]))
    g = nb_grad if gmode == "callable" else grad
    out = attempt("numba", lambda: fc.check(nb_hostile, g, theta, args, backend="numba",
                                            threads=threads, layout=layout, sample=sample,
                                            seed=0), [theta, grad, args], numba_case=True)
    exc, cat = out.error, "numba"
    if mode and trigger == "theta":  # the cost at theta is evaluated before grad is read
        if mode == 1:
            if not isinstance(exc, ValueError) or raised_by_fastcheck(exc):
                fail_undocumented(cat, out, "expected the user's own exception at theta")
            record(cat, "user's ValueError (cost at theta)")
        else:
            expect_documented(cat, out, ("cost",))
    elif gmode == "short":
        expect_documented(cat, out, ("grad",))
    elif mode == 1 and exc is not None:
        if not isinstance(exc, fc.CostEvaluationError) or exc.flat_index != where:
            fail_undocumented(cat, out, f"expected a CostEvaluationError at {where}")
        label = layout.label(where) if layout is not None else f"theta[{where}]"
        assert label in str(exc) and exc.name == label
        record(cat, "CostEvaluationError")
    else:
        expect_honest(cat, out, wrong=wrong,
                      correct=mode == 0 and gmode in ("right", "callable"))
        rep = out.report
        checked = where in rep.indices
        if mode in (2, 3) and checked:
            assert rep.kinds[np.searchsorted(rep.indices, where)] == "nonfinite"
        if gmode == "nan" and pick in rep.indices:
            assert rep.kinds[np.searchsorted(rep.indices, pick)] == "nonfinite"


@pytest.mark.parametrize("case", ["mapping-params", "args-type", "returns-pair"])
def test_numba_cost_with_unusable_arguments(case):
    """An @njit cost called with arguments numba cannot type is a TypeError naming cost,
    not numba's typing traceback."""
    theta = np.linspace(-1, 1, 4)
    w = np.ones(4)
    args: tuple = (w, 0, np.inf, 0)
    params: Any = theta
    grad: Any = nb_grad(theta, *args)
    if case == "mapping-params":
        params, grad = {"theta": theta}, {"theta": grad}
    elif case == "args-type":
        args = ("w", 0, np.inf, 0)
    else:
        grad = True
    out = attempt("numba", lambda: fc.check(nb_hostile, grad, params, args),
                  [params, grad, args], numba_case=True)
    names = ("grad",) if case == "returns-pair" else ("cost",)
    if JIT or case == "returns-pair":
        expect_documented("numba", out, names)
    else:  # without the JIT, the user's Python code raises its own TypeError
        assert isinstance(out.error, TypeError)
