"""Hostile ``fc.Layout`` shapes and names."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fastcheck as fc

from .conftest import (
    attempt,
    expect_documented,
    fail_undocumented,
    fuzz,
    record,
)

# -- category "layout" ------------------------------------------------------------------------
SHAPES = [(), (0,), (3,), (2, 3), (1, 0, 2), 4, np.int64(2), (np.int32(2), 1),
          (-1,), -2, (2.0,), 2.5, "3", None, (True,), ((2,),), [2, 2], (2**40, 2**40),
          (2**62, 4)]


@given(data=st.data())
@fuzz(200)
def test_fuzz_layout(data):
    """fc.Layout with hostile shapes and names, then flatten/unflatten/locate with hostile
    arguments: ValueError/TypeError (KeyError for missing blocks, IndexError for locate)
    naming the block or method, or consistent results."""
    draw = data.draw
    cat = "layout"
    def item():
        if draw(st.integers(0, 9)) < 8:  # a valid name and shape
            return draw(st.sampled_from(["W", "b", "", "ü"])), draw(st.sampled_from(SHAPES[:8]))
        return draw(st.sampled_from(["W", 3, None])), draw(st.sampled_from(SHAPES))

    items = [item() for _ in range(draw(st.integers(0, 4)))]
    spec: Any = dict(items)
    if draw(st.integers(0, 9)) == 0:
        spec = draw(st.sampled_from([[("W", (2,))], "W", None, 3]))
    out = attempt(cat, lambda: fc.Layout(spec), [spec])
    if out.error is not None:
        expect_documented(cat, out, ("layout",))
        return
    lay = out.report
    shapes = {k: (v,) if isinstance(v, (int, np.integer)) else tuple(v) for k, v in spec.items()}
    true_size = sum(int(np.prod([int(d) for d in s], dtype=object)) for s in shapes.values())
    assert lay.size == true_size, f"Layout size {lay.size} for shapes {shapes}"
    if true_size > 10**6:
        record(cat, "ok (huge layout)")
        return
    op = draw(st.sampled_from(["roundtrip", "flatten-hostile", "unflatten-hostile",
                               "locate"]))
    x = np.arange(lay.size, dtype=np.float64)
    if op == "roundtrip":
        views = lay.unflatten(x)
        assert np.shares_memory(x, next(iter(views.values()))) or lay.size == 0 or \
            next(iter(views.values())).size == 0
        assert np.array_equal(lay.flatten(views), x)
        record(cat, "ok (round trip)")
    elif op == "flatten-hostile":
        blocks = {k: v.copy() for k, v in lay.unflatten(x).items()}
        how = draw(st.sampled_from(["missing", "shape", "complex", "string", "list", "int",
                                    "not-a-mapping"]))
        name = draw(st.sampled_from(lay.names))
        if how == "list" and lay.size_of(name) == 0:
            how = "int"  # a nested list cannot carry the shape of an empty block
        if how == "missing":
            del blocks[name]
        elif how == "shape":
            blocks[name] = np.zeros(lay.shape_of(name) + (2,))
        elif how == "complex":
            blocks[name] = blocks[name] + 1j
        elif how == "string":
            blocks[name] = blocks[name].astype("<U4")
        elif how == "list":
            blocks[name] = blocks[name].tolist()
        elif how == "int":
            blocks[name] = blocks[name].astype(np.int64)
        else:
            blocks = list(blocks.values())
        fout = attempt(cat, lambda: lay.flatten(blocks), [blocks])
        if how in ("list", "int"):
            if fout.error is not None:
                fail_undocumented(cat, fout, "flatten rejected valid blocks")
            assert np.array_equal(fout.report, x)
            record(cat, "ok (flatten)")
        elif how in ("complex", "string"):
            expect_documented(cat, fout, (repr(name),))
        elif how == "missing":
            if not isinstance(fout.error, KeyError) or name not in str(fout.error):
                fail_undocumented(cat, fout, "expected a KeyError naming the block")
            record(cat, "KeyError (flatten)")
        else:
            expect_documented(cat, fout, ("flatten",))
    elif op == "unflatten-hostile":
        arg = draw(st.sampled_from(["long", "2d", "list", "scalar"]))
        value: Any = {"long": np.zeros(lay.size + 1), "2d": np.zeros((1, lay.size)),
                      "list": x.tolist(), "scalar": 1.0}[arg]
        uout = attempt(cat, lambda: lay.unflatten(value), [value])
        if arg == "list":  # array-like: converted (views of a new array)
            assert uout.error is None
            record(cat, "ok (unflatten)")
        else:
            if arg == "scalar" and lay.size == 1 and uout.error is None:
                record(cat, "ok (unflatten)")
                return
            expect_documented(cat, uout, ("unflatten",))
    else:
        i = draw(st.sampled_from([0, lay.size - 1, lay.size, -1, np.int64(0), 1.0, True,
                                  "0", 10**30]))
        lout = attempt(cat, lambda: lay.locate(i), [])
        valid = (isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                 and 0 <= i < lay.size)
        if valid:
            name, idx = lout.report
            lo = lay.offset_of(name)
            assert lo <= i < lo + lay.size_of(name)
            shape = lay.shape_of(name)
            assert idx == (tuple(int(k) for k in np.unravel_index(i - lo, shape))
                           if shape else ())
            record(cat, "ok (locate)")
        elif isinstance(lout.error, IndexError) and "locate" in str(lout.error):
            record(cat, "IndexError (locate)")
        else:
            expect_documented(cat, lout, ("locate",))
