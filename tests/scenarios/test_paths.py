"""The same bugs through the other paths: an njit flat-vector cost on the numba backend (with
a Layout, float32 theta, fixed steps, max_failures), and a bug confined to one 8-entry bias
of a 46k-parameter net found by a sample."""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.models import grad as mlp_grad
from fastcheck.models import make_mlp, mlp_layout

from . import _njit_tanh as T

BUGS = {None: set(), "reg_missing": {"W1", "W2"}, "factor2": {"b2"},
        "tanh_derivative": {"W1", "b1"}, "mean_vs_sum": {"W1", "b1", "W2", "b2"}}


@pytest.mark.parametrize("options", [{}, {"eps": 1e-7}, {"eps": 1e-4}, {"threads": 1},
                                     {"method": "richardson"}, {"max_failures": 1}],
                         ids=str)
@pytest.mark.parametrize("bug", list(BUGS), ids=str)
def test_njit_tanh_mlp_on_the_numba_backend(bug, options):
    for seed in (0, 1):
        theta, args, lay = T.problem(seed)
        before = theta.copy()
        report = fc.check(T.cost, partial(T.grad, bug=bug), theta, args, layout=lay,
                          backend="numba", **options)
        assert report.backend == "numba"
        assert report.passed is (bug is None), report.summary()
        failing = {b.name for b in report.blocks if b.n_failed}
        if options.get("max_failures"):  # stops at the first confirmed failure
            assert failing <= BUGS[bug] and bool(failing) is (bug is not None)
        else:
            assert failing == BUGS[bug], report.summary()
        np.testing.assert_array_equal(theta, before)


@pytest.mark.parametrize("bug", [None, "factor2", "tanh_derivative"], ids=str)
def test_njit_tanh_mlp_float32_theta(bug):
    theta, args, lay = T.problem(3)
    theta32 = theta.astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = fc.check(T.cost, partial(T.grad, bug=bug), theta32, args, layout=lay,
                          backend="numba")
    assert any("float64" in str(w.message) for w in caught)
    assert report.passed is (bug is None), report.summary()
    assert {b.name for b in report.blocks if b.n_failed} == BUGS[bug]
    assert theta32.dtype == np.float32


def _one_bias_doubled(theta, X, Y, sizes, lam, block):
    g = mlp_grad(theta, X, Y, sizes, lam)
    g[mlp_layout(tuple(int(s) for s in sizes)).block_slice(block)] *= 2.0
    return g


@pytest.fixture(scope="module")
def big_net():
    return make_mlp((300, 150, 8, 10), seed=0)  # N = 46,448; b2 has 8 entries


@pytest.mark.parametrize("sample", [500, 0.01, "auto"], ids=str)
def test_bug_in_one_bias_of_8_in_a_big_net_is_sampled(big_net, sample):
    p = big_net
    bad = partial(_one_bias_doubled, block="b2")
    report = fc.check(p.cost, bad, p.theta, p.args, layout=p.layout, sample=sample, seed=0)
    assert report.n_checked < p.theta.size
    assert not report.passed
    assert [b.name for b in report.blocks if b.n_failed] == ["b2"]
    assert any("b2" in h and "2.000 x" in h for h in report.hints), report.hints
    good = fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout, sample=sample, seed=0)
    assert good.passed and good.failure_rate_bound is not None
