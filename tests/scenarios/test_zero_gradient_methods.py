"""method="complex" passes correct gradients whose true value is 0 (it used to fail them).

A bias before batchnorm (or before any centring) has a gradient that is exactly 0; backprop
computes it as a sum that rounds to ~1e-17. Central and Richardson pass; the complex step,
exact to ~1e-18, called every such component a failure (rel. error 1.0) and the report read
"FAIL: relative error 1.6e-16 (< 1e-7: great)": its floor was relative to each component
alone; it now follows the scale of the whole gradient (``_methods.complex_step``).
"""

import numpy as np
import pytest

import fastcheck as fc

rng = np.random.default_rng(0)
X, T = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))


def cost(p):  # centring over the batch (as batchnorm does) removes b
    z = X * p["w"] + p["b"]
    return np.sum((z - z.mean(axis=0)) * T)


def grad(p):
    dz = T - T.mean(axis=0)  # dJ/db = dz.sum(0): 0 up to roundoff (~1e-16)
    return {"w": (dz * X).sum(axis=0), "b": dz.sum(axis=0)}


@pytest.mark.parametrize("method", ["central", "richardson", "complex"])
def test_zero_true_gradient_passes_with_every_method(method):
    p = {"w": rng.normal(size=4), "b": rng.normal(size=4)}
    report = fc.check(cost, grad, p, method=method, backend="serial")
    assert report.passed, report.summary()  # complex: 4 failed (all of b)


@pytest.mark.parametrize("method", ["central", "richardson", "complex"])
def test_a_small_error_on_a_zero_gradient_still_fails(method):
    p = {"w": rng.normal(size=4), "b": rng.normal(size=4)}

    def wrong(q):
        g = grad(q)
        g["b"] = g["b"] + np.array([0.0, 1e-6, 0.0, 0.0])
        return g

    report = fc.check(cost, wrong, p, method=method, backend="serial")
    assert [report.layout.label(int(i)) for i in report.failed] == ["b[1]"], report.summary()
