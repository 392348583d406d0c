"""Whole networks a student checks: an RNN through time, a small CNN, a batchnorm net and a
dropout net, over several seeds, each with the bug real code contains."""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc

from . import _student as S

SEEDS = (0, 1, 2)


def _check(maker, seed, bug=None, maker_kw=None, **options):
    cost, grad, params, args = maker(seed, bug, **(maker_kw or {}))
    options.setdefault("backend", "serial")
    return fc.check(cost, grad, params, args, **options)


def _failing(report):
    return {b.name for b in report.blocks if b.n_failed}


@pytest.mark.parametrize("seed", SEEDS)
def test_rnn_correct_bptt_passes(seed):
    report = _check(S.make_rnn, seed)
    assert report.passed and report.verdict == "pass", report.summary()


@pytest.mark.parametrize("seed", SEEDS)
def test_rnn_reading_the_wrong_hidden_state_at_t0_fails_only_wh(seed):
    report = _check(S.make_rnn, seed, "t0")
    assert not report.passed
    assert _failing(report) == {"Wh"}, report.summary()


@pytest.mark.parametrize("seed", SEEDS)
def test_truncated_bptt_fails_even_between_ngs_bands(seed):
    # 5 steps of 8 backpropagated, small recurrent weights: errors of 1e-6..1e-4
    report = _check(S.make_rnn, seed, "truncated", dict(T=8, k=5, wh=0.1))
    assert report.relative_error < 1e-4  # "look again" or even "acceptable" by Ng's bands
    assert not report.passed and report.verdict == "fail"
    assert _failing(report) <= {"Wx", "Wh", "b", "h0"} and "Wh" in _failing(report)
    assert "Wy" not in _failing(report)  # the output weights are not truncated


@pytest.mark.parametrize("seed", SEEDS)
def test_truncated_bptt_found_with_fixed_course_step_and_richardson(seed):
    for options in ({"eps": 1e-7}, {"eps": 1e-4}, {"method": "richardson"}):
        report = _check(S.make_rnn, seed, "truncated", dict(T=8, k=4, wh=0.15), **options)
        assert not report.passed, options
        good = _check(S.make_rnn, seed, None, dict(T=8, k=4, wh=0.15), **options)
        assert good.passed, (options, good.summary())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bug, blocks", [(None, set()), ("conv", {"Wc"}),
                                         ("pool", {"Wc", "bc"})])
def test_small_cnn(seed, bug, blocks):
    # conv dw read at stride 1 instead of 2; max-pool backward routing to the wrong cell
    report = _check(S.make_cnn, seed, bug)
    assert report.passed is (bug is None), report.summary()
    assert _failing(report) == blocks


@pytest.mark.parametrize("seed", SEEDS)
def test_bias_before_batchnorm_has_zero_gradient_and_passes(seed):
    report = _check(S.make_bn, seed)
    assert report.passed and report.verdict == "pass", report.summary()
    b1 = next(b for b in report.blocks if b.name == "b1")
    assert b1.n_failed == 0
    numeric_b1 = report.numeric[np.isin(report.indices, np.arange(20, 25))]
    assert np.all(np.abs(numeric_b1) < 1e-8)  # the true gradient of b1 is 0


@pytest.mark.parametrize("seed", SEEDS)
def test_batchnorm_dgamma_computed_like_dbeta_is_named(seed):
    report = _check(S.make_bn, seed, "gamma")
    assert _failing(report) == {"g"}
    assert any("g:" in h and "be" in h for h in report.hints), report.hints


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_mask_drawn_anew_in_the_backward_fails(seed):
    assert _check(S.make_drop, seed).passed
    report = _check(S.make_drop, seed, "anew")
    assert not report.passed
    assert {"W1", "W2"} <= _failing(report)


def test_dropout_mask_drawn_anew_in_the_cost_is_named():
    cost, grad, params, (X, y, cfg) = S.make_drop(0)
    with pytest.raises(fc.NondeterministicCostError, match="(?i)random|determin"):
        fc.check(cost, grad, params, (X, y, dict(cfg, seed=None)), backend="serial")
