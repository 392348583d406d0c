"""Adaptive sampling, max_failures and partial reports."""

import numba
import numpy as np
import pytest
from scipy import stats

import fastcheck as fc
from fastcheck.models import make_mlp


def _check(model, **kw):
    return fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout, **kw)


def test_max_failures_stops_early_and_says_why():
    model = make_mlp("M", bug="missing-regularization", seed=0)
    report = _check(model, max_failures=3)
    assert 3 <= len(report.failed) < 300
    assert report.n_checked < report.n_params
    assert "max_failures=3" in report.stop_reason
    assert report.stop_reason in report.summary()
    assert not report.passed


def test_auto_sample_on_correct_gradient_reaches_target(mlp_m):
    m = mlp_m
    report = _check(m, sample="auto", seed=1)
    # zero failures: the sample is just large enough for the bound to reach 1e-3
    n = report.n_checked
    assert stats.beta.ppf(0.95, 1, n) <= 1e-3 < stats.beta.ppf(0.95, 1, n - 1)
    assert report.passed and report.sampled
    assert "target_rate" in report.stop_reason
    assert all(b.n_checked >= 1 for b in report.blocks)


def test_auto_sample_stops_at_first_confirmed_failure():
    model = make_mlp("M", bug="sign-flip", seed=0)
    report = _check(model, sample="auto", seed=1)
    assert not report.passed
    assert "failure was confirmed" in report.stop_reason
    assert report.n_checked <= 256 + 6  # the first chunk (one per block, then random)
    assert report.failing_blocks() == ["W2"]


def test_auto_target_rate_option(mlp_s):
    report = _check(mlp_s, sample="auto", target_rate=0.05, seed=0)
    assert report.n_checked == int(np.ceil(np.log(0.05) / np.log(0.95)))


@numba.njit
def _big_cost(x, w):
    return 0.5 * np.sum(w * x * x)


def test_failure_in_a_million_parameter_model_found_in_few_evaluations():
    n = 1_000_000
    layout = fc.Layout({"W": (999_990,), "b": (10,)})
    rng = np.random.default_rng(0)
    theta = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    grad = w * theta
    grad[-10:] *= 2.0  # the bias gradient is doubled
    report = fc.check(_big_cost, grad, theta, (w,), layout=layout, max_failures=1)
    assert report.failing_blocks() == ["b"]
    assert report.evaluations < 2_000


def test_keyboard_interrupt_keeps_a_partial_report():
    params = {"w": np.linspace(-1, 1, 300)}
    before = params["w"].copy()
    calls = {"n": 0}

    def cost(p):
        calls["n"] += 1
        if calls["n"] == 600:  # during the second chunk
            raise KeyboardInterrupt
        return float(np.sum(p["w"] ** 2))

    with pytest.raises(KeyboardInterrupt) as info:
        fc.check(cost, lambda p: {"w": 2 * p["w"]}, params)
    partial = info.value.partial_report
    assert 0 < partial.n_checked < 300
    assert partial.passed and "interrupted" in partial.stop_reason
    assert np.array_equal(params["w"], before)


def test_cost_error_carries_partial_report():
    calls = {"n": 0}

    def cost(x):
        calls["n"] += 1
        if calls["n"] > 600:
            raise ArithmeticError("overflow in my layer")
        return float(np.sum(x**2))

    with pytest.raises(fc.CostEvaluationError, match="overflow in my layer") as info:
        fc.check(cost, lambda x: 2 * x, np.ones(1000))
    assert info.value.partial_report.n_checked >= 256


@pytest.mark.parametrize("kw", [{"max_failures": 0}, {"max_failures": 1.5},
                                {"target_rate": 0.0}, {"target_rate": 1.0},
                                {"sample": "some"}])
def test_bad_early_stop_options(kw):
    name = next(iter(kw))
    with pytest.raises((TypeError, ValueError), match=name):
        fc.check(lambda x: float(x @ x), lambda x: 2 * x, np.ones(3), **kw)
