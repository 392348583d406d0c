"""Parameters on and next to kinks (ReLU pre-activations exactly 0 or within 1e-7 of 0,
hinge margins, L1 at w = 0): a correct (sub)gradient passes and is never called a bug; a
wrong value on a kinked component fails like any other."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import fastcheck as fc

from . import _student as S

SEEDS = (0, 1, 2, 3)


def _tln(seed, bug, svm, kink):
    cost, grad, params, args = S.make_tln(seed, bug, svm=svm, kink=kink)
    return fc.check(cost, grad, params, args, backend="serial")


@pytest.mark.parametrize("kink", ["exact", "near"])
@pytest.mark.parametrize("svm", [False, True])
@pytest.mark.parametrize("bug", [None, "relu_ge"])
def test_correct_subgradients_on_relu_kinks_pass(bug, svm, kink):
    for seed in SEEDS:
        report = _tln(seed, bug, svm, kink)
        head = report.summary().splitlines()[0]
        assert report.passed, report.summary()
        assert "bug" not in head and not report.failed.size
        assert all("?" not in h for h in report.hints if "kink" not in h), report.hints
        if kink == "near":  # every hidden unit of example 0 switches inside the step
            kinks = sum(w.kind == "kink" for w in report.worst(report.n_checked))
            assert kinks > 0 and any("kink" in h for h in report.hints)


@pytest.mark.parametrize("kink", [None, "exact", "near"])
@pytest.mark.parametrize("svm", [False, True])
def test_leaky_slope_left_in_a_relu_backward_fails_next_to_kinks(svm, kink):
    for seed in SEEDS:
        report = _tln(seed, "leaky", svm, kink)
        assert not report.passed, report.summary()
        assert {b.name for b in report.blocks if b.n_failed} <= {"W1", "b1"}


def test_hinge_loss_without_the_correct_class_term_fails():
    for seed in SEEDS:
        assert _tln(seed, None, True, None).passed
        report = _tln(seed, "svm_no_correct", True, None)
        assert not report.passed and "W2" in {b.name for b in report.blocks if b.n_failed}


def _relu_forward(x):
    return np.maximum(x, 0.0), x


def _relu_backward(dout, x, at_zero=0.0, near=None):
    slope = (x > 0).astype(float)
    slope[x == 0] = at_zero
    if near is not None:
        slope[np.abs(x) < 1e-6] = near
    return dout * slope


def _zeros_input(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 5))
    x[rng.random(x.shape) < 0.3] = 0.0  # as after a ReLU or a max(0, .) clamp
    x[0, 0] = 0.0
    return x


@pytest.mark.parametrize("at_zero, ok", [(0.0, True), (0.5, True), (1.0, True),
                                         (2.0, False), (-1.0, False)])
def test_relu_layer_value_at_exact_zero(at_zero, ok):
    # any slope in [0, 1] is a subgradient of max(x, 0) at 0; 2 and -1 are not
    for seed in SEEDS:
        report = fc.check_layer(_relu_forward, partial(_relu_backward, at_zero=at_zero),
                                {"x": _zeros_input(seed)}, seed=seed, backend="serial")
        assert report.passed is ok, report.summary()
        if not ok:
            assert report.worst(1)[0].kind == "fail"


@pytest.mark.parametrize("near, ok", [(None, True), (2.0, False)])
def test_relu_layer_wrong_value_within_1e_minus_7_of_the_kink(near, ok):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(4, 5))
        m = rng.random(x.shape) < 0.3
        m[0, 0] = True
        x[m] = rng.choice([-1.0, 1.0], size=m.sum()) * 10.0 ** rng.uniform(-12, -7, m.sum())
        report = fc.check_layer(_relu_forward, partial(_relu_backward, near=near), {"x": x},
                                seed=seed, backend="serial")
        assert report.passed is ok, report.summary()


def _lasso(w, X, y, lam):
    return float(0.5 * np.mean((X @ w - y) ** 2) + lam * np.sum(np.abs(w)))


def _lasso_grad(w, X, y, lam, with_l1=True):
    g = X.T @ (X @ w - y) / len(y)
    return g + lam * np.sign(w) if with_l1 else g


@pytest.mark.parametrize("seed", SEEDS)
def test_l1_with_weights_exactly_zero(seed):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(20, 6)), rng.normal(size=20)
    w = rng.normal(size=6)
    w[[1, 4]] = 0.0  # sign(0) = 0 is a subgradient of |w| at 0
    assert fc.check(_lasso, _lasso_grad, w, (X, y, 0.1), backend="serial").passed
    bad = fc.check(_lasso, partial(_lasso_grad, with_l1=False), w, (X, y, 0.1),
                   backend="serial")
    assert not bad.passed
    # the components at 0 are right without the term; the others are off by 0.1
    assert set(bad.failed) == {0, 2, 3, 5}
