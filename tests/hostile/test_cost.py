"""Costs that return the wrong thing (arrays, None, NaN, inf, strings) or raise after k calls."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import fastcheck as fc

from .conftest import (
    Outcome,
    UserBug,
    attempt,
    expect_documented,
    expect_honest,
    fail_undocumented,
    fuzz,
    hostile_cost,
    quad_cost,
    quad_grad,
    raised_by_fastcheck,
    record,
    valid_params,
)

# -- category "cost": costs that return the wrong thing or raise after k calls ----------------
COST_BEHAVIOURS = ["array2", "array0", "array1", "none", "nan", "inf", "-inf", "string",
                   "complex", "bool", "float32", "bigint", "decimal", "tuple", "raise",
                   "value-error", "keyboard", "mutate", "drift"]


def mutated(cat: str, out: Outcome) -> None:
    """A cost that wrote into its theta: caught ("modified"), or -- when it only changed
    the component being perturbed, which the backend restores anyway -- harmless."""
    if out.error is None:
        expect_honest(cat, out)
    else:
        expect_documented(cat, out, ("modified",))


@given(data=st.data())
@fuzz(150)
def test_fuzz_cost(data):
    """Costs that misbehave from call k on (wrong return types, NaN/inf, raising, Ctrl-C,
    writing into theta, drifting): at theta an error naming cost (or the user's own
    exception), later a CostEvaluationError naming the component, a KeyboardInterrupt with
    a partial report, or an honest report that never passes a non-finite value."""
    draw = data.draw
    params, values, names = valid_params(draw)
    behaviour = draw(st.sampled_from(COST_BEHAVIOURS))
    after = draw(st.sampled_from([0, 1, 2, 3, 4, 7, 12, 30]))
    backend = draw(st.sampled_from(["serial", "threads"]))
    returns_grad = draw(st.integers(0, 4)) == 0
    cost = hostile_cost(behaviour, after, quad_cost)
    calls = cost.calls
    grad: Any = quad_grad
    if returns_grad:
        inner = cost

        def cost(p, *args):
            return inner(p), quad_grad(p)
        grad = True
    out = attempt("cost", lambda: fc.check(cost, grad, params, backend=backend, threads=2),
                  [params])
    exc, cat = out.error, "cost"
    bad_type = behaviour in ("array2", "array0", "none", "string", "complex", "bool",
                             "float32", "decimal", "tuple")
    nonfinite = behaviour in ("nan", "inf", "-inf", "bigint")
    if after <= 1:  # at theta: the first or the second evaluation
        if behaviour in ("raise", "value-error", "keyboard"):
            if not isinstance(exc, (UserBug, ValueError, KeyboardInterrupt)) \
                    or raised_by_fastcheck(exc):
                fail_undocumented(cat, out, "expected the user's own exception at theta")
            record(cat, f"user's {type(exc).__name__} (cost at theta)")
        elif (bad_type and behaviour != "float32") or nonfinite or behaviour == "drift":
            expect_documented(cat, out, ("cost",))  # a float32 cost is checked (API.md)
        elif behaviour == "mutate":  # harmless on fastcheck's copies at theta, then caught
            mutated(cat, out)
        else:
            expect_honest(cat, out, correct=True)
        return
    # from the perturbed points on (the check may also finish before call `after`)
    if exc is None:
        expect_honest(cat, out, correct=behaviour in ("array1",))
        if nonfinite and calls[0] > after:
            assert not out.report.passed, "a non-finite evaluation passed"
        return
    if isinstance(exc, KeyboardInterrupt):
        if behaviour != "keyboard":
            fail_undocumented(cat, out, "KeyboardInterrupt that nobody raised")
        rep = getattr(exc, "partial_report", None)
        assert isinstance(rep, fc.Report), "no partial report on the KeyboardInterrupt"
        assert "KeyboardInterrupt" in rep.stop_reason
        record(cat, "KeyboardInterrupt + partial report")
        return
    if backend == "threads" and isinstance(exc, fc.ThreadSafetyError):
        record(cat, "ThreadSafetyError")  # the cost changed between calls: honest
        return
    if isinstance(exc, fc.CostEvaluationError):
        assert exc.name and exc.name in str(exc) and exc.flat_index >= 0
        assert isinstance(exc.partial_report, fc.Report)
        if behaviour in ("raise", "value-error"):
            assert isinstance(exc.__cause__, (UserBug, ValueError))
        record(cat, "CostEvaluationError")  # names the component
        return
    if behaviour == "mutate":
        mutated(cat, out)
        return
    fail_undocumented(cat, out, "unexpected error at a perturbed point")
