"""Hostile parameter arrays: wrong dtypes, 0-d and empty blocks, odd memory layouts, NaN and inf."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

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
    quad_grad_blocks,
)

# -- category "params": hostile parameter arrays ----------------------------------------------
DTYPES = ["float64"] * 8 + [">f8", "float32", "float16", "int64", "int8", "bool",
                            "complex128", "object", "<U4"]
MEMORY = ["C"] * 3 + ["F", "strided", "readonly", "list", "scalar"]
POISON = [None] * 7 + ["nan", "inf", "-inf"]
NAMES = ["W1", "b1", "W2", "b2", "gamma", "", "ü", "d"]


@dataclass
class Block:
    """A generated block: the object handed to fastcheck and its float64 values."""

    name: Any
    obj: Any
    values: np.ndarray  # float64, as fastcheck should see it (NaN where poisoned)
    valid: bool  # float64 data (or a list/scalar of real numbers)


def make_block(draw, name) -> Block:
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = draw(st.sampled_from(DTYPES))
    memory = draw(st.sampled_from(MEMORY))
    poison = draw(st.sampled_from(POISON))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.array(np.round(rng.uniform(-3, 3, shape), 3), dtype=np.float64)
    if poison and values.size:
        values.flat[rng.integers(values.size)] = float(poison)
    if dtype in ("int64", "int8", "bool"):
        values = np.array(np.nan_to_num(np.round(values), posinf=3, neginf=-3))
    data = np.array(values, dtype=dtype)
    if dtype not in ("object", "complex128", "<U4"):
        values = np.array(data, dtype=np.float64)
    if memory == "F":
        data = np.asfortranarray(data)
    elif memory == "strided" and data.ndim:
        data = np.repeat(data, 2, axis=-1)[..., ::2]
    elif memory == "readonly":
        data = data.copy()
        data.flags.writeable = False
    elif memory == "list" or (memory == "scalar" and data.ndim == 0):
        data = data.tolist()
    if isinstance(data, np.ndarray):
        valid = data.dtype in (np.float64, np.dtype(">f8"), np.float32)  # float32: API.md
    elif isinstance(data, list):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind = np.asarray(data).dtype
        valid = kind.kind in "iu" or kind == np.float64
    else:  # a Python scalar from a 0-d array
        valid = isinstance(data, (int, float)) and not isinstance(data, bool)
    if valid:  # as fastcheck sees it (a nested list of an empty shape loses dimensions)
        values = np.array(data, dtype=np.float64)
    return Block(name, data, values, bool(valid))


@given(data=st.data())
@fuzz(150)
def test_fuzz_params(data):
    """Hostile params (dtype, shape, memory layout, NaN/inf, keys, layout=) on serial and
    threads: a TypeError/ValueError naming params (or layout), or an honest report."""
    draw = data.draw
    form = draw(st.sampled_from(["mapping", "mapping", "flat", "flat", "flat-nd", "other"]))
    backend = draw(st.sampled_from(["serial", "threads"]))
    threads = draw(st.integers(1, 3))
    layout: Any = None
    names = ("params",)
    if form == "mapping":
        keys = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
        if keys and draw(st.booleans()) and draw(st.booleans()):
            keys[draw(st.integers(0, len(keys) - 1))] = draw(st.sampled_from([1, None, (2,)]))
        blocks = [make_block(draw, k) for k in keys]
        params = {b.name: b.obj for b in blocks}
        valid = (bool(blocks) and all(b.valid for b in blocks)
                 and all(isinstance(b.name, str) for b in blocks)
                 and sum(b.values.size for b in blocks) > 0)
        if draw(st.integers(0, 9)) == 0:
            layout, names, valid = fc.Layout({"x": (1,)}), ("params", "layout"), False
    elif form in ("flat", "flat-nd"):
        block = make_block(draw, "theta")
        if form == "flat" and isinstance(block.obj, np.ndarray) and block.obj.ndim != 1:
            block.obj = block.obj.reshape(-1) if block.obj.flags.c_contiguous else block.obj
            block.values = block.values.reshape(-1) if block.obj.ndim == 1 else block.values
        blocks = [block]
        params = block.obj
        valid = (isinstance(params, np.ndarray) and block.valid and params.ndim == 1
                 and params.size > 0)
        choice = draw(st.sampled_from(["none"] * 4 + ["match", "size", "dict"]))
        if choice != "none" and isinstance(params, np.ndarray) and params.ndim == 1:
            n = params.size
            cut = draw(st.integers(0, n))
            if choice == "match":
                layout = fc.Layout({"head": (cut,), "tail": (1, n - cut)})
            elif choice == "size":
                layout, names, valid = fc.Layout({"x": (n + 1,)}), ("params", "layout"), False
            else:
                layout, names, valid = {"x": (n,)}, ("params", "layout"), False
    else:
        params = draw(st.sampled_from([None, "theta", 3.0, [1.0, 2.0], (1.0,), {1, 2}]))
        blocks, valid = [], False
    values = [b.values for b in blocks]
    finite = all(np.all(np.isfinite(v)) for v in values)
    wrong_at = None
    if valid and finite:  # the true gradient, maybe with one wrong component
        grads = quad_grad_blocks(values) if form == "mapping" else [
            quad_grad_blocks([values[0].reshape(-1)])[0]]
        if draw(st.booleans()):
            flat = np.concatenate([g.reshape(-1) for g in grads])
            wrong_at = np.array([draw(st.integers(0, flat.size - 1))])
            offsets = np.cumsum([0] + [g.size for g in grads])
            b = int(np.searchsorted(offsets, wrong_at[0], side="right") - 1)
            grads[b].reshape(-1)[wrong_at[0] - offsets[b]] += 0.5
        if form == "mapping":
            prefix = draw(st.sampled_from(["", "d"]))
            grad = {prefix + b.name: g for b, g in zip(blocks, grads)}
        else:
            grad = grads[0]
    else:
        grad = np.zeros(3)
    out = attempt("params", lambda: fc.check(quad_cost, grad, params, layout=layout,
                                             backend=backend, threads=threads),
                  [params, grad])
    if not valid:
        expect_documented("params", out, names)
    elif not finite:
        expect_documented("params", out, ("params",))
        assert "finite" in str(out.error)
    else:
        expect_honest("params", out, wrong=wrong_at, correct=wrong_at is None)
