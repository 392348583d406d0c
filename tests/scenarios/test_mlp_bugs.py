"""A student's dict MLP (ReLU, tanh, sigmoid; softmax cross-entropy; L2; mean over the batch)
over several seeds: the correct backward passes with no bug hint, each classic bug fails in
exactly its blocks with the hint that names it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastcheck as fc

from . import _student as S

SEEDS = (0, 1, 2)
ACTS = ("relu", "tanh", "sigmoid")
# bug -> (the blocks it makes wrong, a word its hint must contain)
BUGS = {
    "reg_missing": ({"W1", "W2", "W3"}, "regularisation term missing"),
    "clip": ({"W1"}, "clipped"),
    "four_over_m": ({"b1"}, "4.000 x"),
    "sign_flip": ({"W2"}, "sign is flipped"),
    "transposed": ({"W2"}, "transpose"),
    "swapped": ({"b1", "b2"}, "swapped"),
    "one_element": ({"W1"}, "W1[2, 3]"),
}


def _check(maker, seed, bug, **kw):
    cost, grad, params, args = maker(seed, bug, **kw)
    return fc.check(cost, grad, params, args, backend="serial")


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("seed", SEEDS)
def test_correct_mlp_passes_without_bug_words(act, seed):
    report = _check(S.make_mlp, seed, None, act=act)
    head = report.summary().splitlines()[0]
    assert report.passed and report.verdict == "pass", report.summary()
    assert head.startswith("fastcheck PASS") and "bug" not in head
    assert report.hints == ()


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_bug_fails_in_its_blocks_with_its_hint(bug, act):
    blocks, word = BUGS[bug]
    for seed in SEEDS:
        report = _check(S.make_mlp, seed, bug, act=act)
        assert not report.passed and report.verdict == "fail"
        assert report.summary().startswith("fastcheck FAIL")
        failing = {b.name for b in report.blocks if b.n_failed}
        if bug == "clip":  # at least the largest |dW1| is clipped; maybe only it
            assert failing == blocks
            if len(report.failed) >= 2:
                assert any(word in h for h in report.hints), report.hints
            continue
        assert failing == blocks, report.summary()
        assert any(word in h for h in report.hints), report.hints


def test_one_element_error_in_the_acceptable_band_still_fails():
    # a 1e-5 slip in one of 99 components: Ng's global error calls it "acceptable"
    report = _check(S.make_mlp, 0, "one_element", act="relu")
    assert 1e-7 < report.relative_error <= 1e-5
    assert not report.passed
    assert report.failed.size == 1
    assert report.worst(1)[0].name == "W1" and report.worst(1)[0].index == (2, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_cs231n_reg_gradient_missing_its_factor_two(seed):
    # reg * ||W||^2 in the loss, reg * W (instead of 2 * reg * W) in the gradient
    cost, grad, params, args = S.make_tln(seed, "reg_half")
    report = fc.check(cost, grad, params, args, backend="serial")
    assert not report.passed
    assert {b.name for b in report.blocks if b.n_failed} == {"W1", "W2"}
    assert any("regularisation" in h and "c = -0.05" in h for h in report.hints), report.hints


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_derivative_with_only_the_diagonal_fails(seed):
    cost, grad, params, args = S.make_smx(seed)
    assert fc.check(cost, grad, params, args, backend="serial").passed
    cost, grad, params, args = S.make_smx(seed, "diagonal")
    report = fc.check(cost, grad, params, args, backend="serial")
    assert not report.passed
    assert {b.name for b in report.blocks if b.n_failed} == {"W", "b"}


@pytest.mark.parametrize("data32", [False, True], ids=["params32", "all32"])
@pytest.mark.parametrize("bug", [None, "reg_missing", "four_over_m", "sign_flip", "swapped"])
def test_float32_mlp_is_checked_honestly(bug, data32):
    # float32 params (and, for all32, float32 data: the cost then computes in float32)
    for seed in (0, 1):
        cost, grad, params, (X, y, reg, cfg) = S.make_mlp(seed, bug, act="tanh")
        p32 = {k: v.astype(np.float32) for k, v in params.items()}
        before = {k: v.copy() for k, v in p32.items()}
        args = (X.astype(np.float32) if data32 else X, y, reg, cfg)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = fc.check(cost, grad, p32, args, backend="serial")
        assert any("float64" in str(w.message) for w in caught)
        assert report.passed is (bug is None), report.summary()
        expected = BUGS[bug][0] if bug else set()
        assert {b.name for b in report.blocks if b.n_failed} == expected
        for k in p32:
            np.testing.assert_array_equal(p32[k], before[k])
            assert p32[k].dtype == np.float32
