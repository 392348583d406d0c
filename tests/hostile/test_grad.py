"""Hostile analytic gradients: wrong keys, shapes, dtypes and values, or a grad that raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fastcheck as fc

from .conftest import (
    UserBug,
    attempt,
    expect_documented,
    expect_honest,
    fail_undocumented,
    fuzz,
    quad_cost,
    quad_grad_blocks,
    record,
    valid_params,
)

# -- category "grad": hostile analytic gradients ----------------------------------------------
GRAD_MODES = ["right", "right", "wrong", "extra-keys", "missing-key", "transposed",
              "flattened-block", "wrong-shape", "dtype", "list", "nan", "inf", "none",
              "string", "scalar", "false", "flat-for-mapping", "both-keys"]


def hostile_grad_value(draw, mode: str, grads: list[np.ndarray], names):
    """The gradient in hostile ``mode``; returns (grad, expected, wrong flat indices)."""
    flat = np.concatenate([g.reshape(-1) for g in grads])
    key = (lambda n: n) if draw(st.booleans()) else (lambda n: "d" + n)
    pick = draw(st.integers(0, flat.size - 1))
    if names is None:  # flat params
        value = flat.copy()
        if mode == "wrong":
            value[pick] += 0.5
            return value, "report", np.array([pick])
        if mode in ("nan", "inf"):
            value[pick] = np.nan if mode == "nan" else -np.inf
            return value, "nonfinite", np.array([pick])
        if mode == "wrong-shape":
            return np.append(value, 1.0), "error", None
        if mode == "dtype":
            return value.astype(draw(st.sampled_from(["float32", "complex128", "object"]))), \
                "error", None
        if mode == "list":
            return value.tolist(), "report", None
        if mode in ("extra-keys", "flat-for-mapping", "both-keys"):
            return {key("theta"): value, "dZ1": np.ones(2)}, "report", None
        if mode == "missing-key":
            return {"dW1": value}, "error", None
        if mode in ("transposed", "flattened-block"):
            return value.reshape(1, -1), "error", None
        return {"none": None, "string": "2*theta", "scalar": 1.0, "false": False}.get(
            mode, value), ("report" if mode == "right" else "error"), None
    blocks = dict(zip(names, grads))
    value = {key(n): g.copy() for n, g in blocks.items()}
    first = names[0]
    if mode == "wrong":
        offsets = np.cumsum([0] + [g.size for g in grads])
        b = int(np.searchsorted(offsets, pick, side="right") - 1)
        value[key(names[b])].reshape(-1)[pick - offsets[b]] += 0.5
        return value, "report", np.array([pick])
    if mode in ("nan", "inf"):
        g = value[key(first)]
        if g.ndim == 0:
            value[key(first)] = np.array(np.nan if mode == "nan" else np.inf)
        else:
            g.reshape(-1)[0] = np.nan if mode == "nan" else np.inf
        return value, "nonfinite", np.array([0])
    if mode == "extra-keys":
        value.update({"dZ1": np.ones(5), "cache": "anything", 7: None})
        return value, "report", None
    if mode == "missing-key":
        del value[key(first)]
        return value, "error", None
    if mode == "transposed":
        w = blocks.get("W1")
        if w is None:
            return value, "report", None
        value[key("W1")] = w.T.copy()
        return value, "error", None
    if mode == "flattened-block":
        value[key(first)] = np.atleast_1d(blocks[first]).reshape(-1).copy()
        return value, "report", None
    if mode == "wrong-shape":
        value[key(first)] = np.zeros(blocks[first].shape + (2,))
        return value, "error", None
    if mode == "dtype":
        dtype = draw(st.sampled_from(["float32", "int64", "complex128", "bool", "object"]))
        value[key(first)] = blocks[first].astype(dtype)
        return value, "error", None
    if mode == "list":
        value[key(first)] = blocks[first].tolist()
        return value, "report", None
    if mode == "flat-for-mapping":
        return flat.copy(), "report", None
    if mode == "both-keys":  # the plain name wins over the d-prefixed one
        value = {n: g.copy() for n, g in blocks.items()}
        value.update({"d" + n: np.zeros_like(g) for n, g in blocks.items()})
        return value, "report", None
    return {"none": None, "string": "dW1", "scalar": 1.0, "false": False,
            "right": value}[mode], ("report" if mode == "right" else "error"), None


@given(data=st.data())
@fuzz(150)
def test_fuzz_grad(data):
    """Hostile gradients (keys, shapes, dtypes, NaN/inf, None, strings), given as an array,
    as a callable or returned by the cost (grad=True): an error naming grad, or an honest
    report that fails every wrong or non-finite component."""
    draw = data.draw
    params, values, names = valid_params(draw)
    grads = quad_grad_blocks(values) if names else [quad_grad_blocks(values)[0]]
    mode = draw(st.sampled_from(GRAD_MODES))
    value, expected, wrong = hostile_grad_value(draw, mode, grads, names)
    how = draw(st.sampled_from(["value", "callable", "cost-returns", "callable-raises"]))
    cost: Callable = quad_cost
    grad: Any = value
    if how == "callable":
        def grad(p, *args):
            return value
    elif how == "callable-raises":
        def grad(p, *args):
            raise UserBug("grad is broken")
    elif how == "cost-returns":
        def cost(p, *args):
            return quad_cost(p), value
        grad = True
    backend = draw(st.sampled_from(["serial", "threads"]))
    out = attempt("grad", lambda: fc.check(cost, grad, params, backend=backend, threads=2),
                  [params, value])
    if how == "callable-raises":
        if not isinstance(out.error, UserBug):
            fail_undocumented("grad", out, "expected the user's own exception from grad")
        record("grad", "user's exception (grad at theta)")
    elif how == "cost-returns" and mode == "false":
        expect_documented("grad", out, ("grad",))
    elif expected == "error":
        expect_documented("grad", out, ("grad",))
    elif expected == "nonfinite":
        expect_honest("grad", out)
        rep = out.report
        assert not rep.passed
        assert rep.kinds[np.searchsorted(rep.indices, wrong[0])] == "nonfinite"
    else:
        expect_honest("grad", out, wrong=wrong, correct=wrong is None)
