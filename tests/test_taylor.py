"""fc.taylor_test: rate 2 for right gradients, rate 1 for wrong ones, the roundoff floor."""

import json
import math

import numpy as np
import pytest

from fastcheck.errors import CostEvaluationError
from fastcheck.models import make_mlp
from fastcheck.taylor import PASS_RATE, TaylorResult, taylor_test

_A = np.random.default_rng(1).normal(size=(12, 12))


def _sin(x):
    return float(np.sum(np.sin(_A @ x)) + 0.5 * x @ x)


def _sin_grad(x):
    return _A.T @ np.cos(_A @ x) + x


def _rosenbrock(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def _rosenbrock_grad(x):
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def _logsumexp(x):
    return float(np.log(np.sum(np.exp(x))))


def _logsumexp_grad(x):
    e = np.exp(x - x.max())
    return e / e.sum()


ANALYTIC = {
    "sin": (_sin, _sin_grad, 12),
    "rosenbrock": (_rosenbrock, _rosenbrock_grad, 7),
    "logsumexp": (_logsumexp, _logsumexp_grad, 9),
    "exp": (lambda x: float(np.sum(np.exp(x))), np.exp, 5),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", sorted(ANALYTIC))
def test_right_gradient_has_rate_two(name, seed):
    cost, grad, n = ANALYTIC[name]
    theta = np.random.default_rng(seed + 10).normal(size=n)
    result = taylor_test(cost, grad, theta, seed=seed)
    assert result.passed, result.summary()
    assert abs(result.rate - 2.0) < 0.1
    assert np.count_nonzero(result.used) >= 5
    # the fit leaves out every remainder at the roundoff floor
    assert not np.any(result.used & (result.residuals <= result.floor))


@pytest.mark.parametrize("error", [1e-1, 1e-3])
@pytest.mark.parametrize("name", sorted(ANALYTIC))
def test_wrong_gradient_has_rate_one(name, error):
    cost, grad, n = ANALYTIC[name]
    theta = np.random.default_rng(3).normal(size=n)

    def wrong(x):
        g = grad(x).copy()
        g[1] += error * max(1.0, abs(g[1]))
        return g

    result = taylor_test(cost, wrong, theta, seed=0)
    assert not result.passed, result.summary()
    assert abs(result.rate - 1.0) < 0.2
    assert "wrong" in result.summary()


def test_factor_two_gradient_fails():
    theta = np.linspace(-1, 1, 12)
    result = taylor_test(_sin, lambda x: 2 * _sin_grad(x), theta, seed=1)
    assert not result.passed
    assert abs(result.rate - 1.0) < 0.1


@pytest.mark.parametrize("seed", range(4))
def test_mlp_s_right_gradient_passes(seed):
    m = make_mlp("S", seed=seed)
    result = taylor_test(m.cost, m.grad, m.theta, m.args, seed=seed)
    assert result.passed, result.summary()
    assert abs(result.rate - 2.0) < 0.15


@pytest.mark.parametrize("bug", ["one-element", "sign-flip", "missing-regularization",
                                 "bias-factor-2", "transposed", "wrong-relu-mask"])
def test_mlp_s_bug_fails_with_rate_one(bug):
    m = make_mlp("S", bug=bug, seed=0)
    result = taylor_test(m.cost, m.grad, m.theta, m.args, seed=0)
    assert not result.passed, result.summary()
    assert abs(result.rate - 1.0) < 0.2


def test_linear_cost_is_all_roundoff_floor_and_passes_with_a_note():
    theta = np.array([0.5, -1.0, 2.0])
    result = taylor_test(lambda x: float(3 * x.sum() + 1.0), lambda x: np.full(3, 3.0), theta,
                         seed=0)
    assert result.passed
    assert math.isnan(result.rate)
    assert not np.any(result.used)
    assert "roundoff floor" in result.note
    assert np.all(result.residuals <= result.floor)
    assert result.evaluations <= 10  # it stops on the floor, not after MAX_STEPS
    assert "no rate" in result.summary()


def test_linear_cost_with_wrong_gradient_fails():
    theta = np.array([0.5, -1.0, 2.0])
    result = taylor_test(lambda x: float(3 * x.sum()), lambda x: np.full(3, 3.001), theta,
                         seed=0)
    assert not result.passed
    assert abs(result.rate - 1.0) < 0.01


def test_large_cost_offset_moves_the_floor_not_the_verdict():
    theta = np.random.default_rng(5).normal(size=12)
    near = taylor_test(_sin, _sin_grad, theta, seed=0)
    far = taylor_test(lambda x: 1e8 + _sin(x), _sin_grad, theta, seed=0)
    assert near.passed and far.passed
    assert abs(far.rate - 2.0) < 0.1
    assert far.floor.min() > 1e3 * near.floor.min()
    # with the floor higher the fit stops at larger steps
    assert far.steps[far.used].min() > near.steps[near.used].min()


def test_steps_below_representable_do_not_fake_rate_one():
    # theta + h d rounds back to theta: the linear term uses the stored step, so r = 0
    theta = np.array([1.0, 2.0, 3.0])
    result = taylor_test(_sin_like3, np.cos, theta, steps=[1e-17, 1e-18, 1e-19, 1e-20],
                         seed=0)
    assert result.passed
    assert not np.any(result.used)
    np.testing.assert_array_equal(result.residuals, 0.0)


def test_explicit_steps_are_used_in_descending_order():
    theta = np.linspace(0.1, 1.0, 12)
    steps = 1e-2 * 2.0 ** -np.arange(10)
    result = taylor_test(_sin, _sin_grad, theta, steps=steps[::-1], seed=0)
    np.testing.assert_array_equal(result.steps, steps)
    assert result.residuals.shape == result.used.shape == (10,)
    assert result.passed


def test_direction_flat_or_mapping_and_seed():
    m = make_mlp("S", seed=0)
    params = m.params()

    def cost(p, *args):
        return m.cost(m.layout.flatten(p), *args)

    def grad(p, *args):
        return {"d" + k: v for k, v in m.layout.unflatten(m.grad(m.layout.flatten(p),
                                                                 *args)).items()}

    direction = {k: np.ones_like(v) for k, v in params.items()}
    by_dict = taylor_test(cost, grad, params, m.args, direction=direction)
    by_flat = taylor_test(m.cost, m.grad, m.theta, m.args, direction=np.ones(m.theta.size))
    np.testing.assert_array_equal(by_dict.direction, np.ones(m.theta.size))
    np.testing.assert_allclose(by_dict.residuals, by_flat.residuals, rtol=1e-6, atol=1e-15)
    assert by_dict.passed and by_dict.seed is None
    a = taylor_test(m.cost, m.grad, m.theta, m.args, seed=7)
    b = taylor_test(m.cost, m.grad, m.theta, m.args, seed=7)
    np.testing.assert_array_equal(a.direction, b.direction)
    assert a.seed == 7
    assert taylor_test(m.cost, m.grad, m.theta, m.args).seed is not None


def test_cost_returning_pairs_and_params_left_alone():
    theta = np.linspace(-1, 1, 12)
    before = theta.copy()
    result = taylor_test(lambda x: (_sin(x), _sin_grad(x)), True, theta, seed=0)
    assert result.passed
    np.testing.assert_array_equal(theta, before)


def test_bad_input_is_named():
    theta = np.ones(3)
    with pytest.raises(ValueError, match="direction"):
        taylor_test(_sin_like3, np.cos, theta, direction=np.zeros(3))
    with pytest.raises(ValueError, match="direction"):
        taylor_test(_sin_like3, np.cos, theta, direction=np.ones(4))
    with pytest.raises(ValueError, match="steps"):
        taylor_test(_sin_like3, np.cos, theta, steps=[1e-3, -1e-4, 1e-5])
    with pytest.raises(ValueError, match="steps"):
        taylor_test(_sin_like3, np.cos, theta, steps=[1e-3, 1e-3, 1e-3])
    with pytest.raises(TypeError, match="params"):
        taylor_test(_sin_like3, np.cos, "theta")


def _sin_like3(x):
    return float(np.sum(np.sin(x)))


def test_cost_raising_at_a_large_step_names_the_step():
    def cost(x):
        if np.any(x > 1.05):
            raise ArithmeticError("out of domain")
        return float(np.sum(x ** 2))

    with pytest.raises(CostEvaluationError, match="h = "):
        taylor_test(cost, lambda x: 2 * x, np.ones(3), seed=0)


def test_result_is_frozen_serialisable_and_plots():
    m = make_mlp("S", bug="one-element", seed=0)
    result = taylor_test(m.cost, m.grad, m.theta, m.args, seed=0)
    assert isinstance(result, TaylorResult)
    with pytest.raises(AttributeError):
        result.rate = 2.0
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passed"] is False and len(data["residuals"]) == len(data["steps"])
    assert "rate" in result.summary() and str(result) == result.summary()
    assert "fail" in repr(result)
    assert PASS_RATE == pytest.approx(1.8)
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = result.plot()
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_xscale() == "log"


def test_a_cost_that_is_zero_by_cancellation_still_passes_and_fails_honestly():
    """J(theta) ~ 2e-16 from O(1) terms: the floor eps*|J0| is ~0, so the remainders' own
    noise at tiny steps sets it (a right gradient passed 0 of 10 random directions)."""
    params = {"w": np.linspace(-1, 1, 6), "v": np.array([0.4, 0.9])}

    def cost(p):
        return float(np.sum(np.sin(p["w"])) * np.sum(p["v"] ** 2))

    def grad(p, factor=1.0):
        return {"w": factor * np.cos(p["w"]) * np.sum(p["v"] ** 2),
                "v": 2 * p["v"] * np.sum(np.sin(p["w"]))}

    assert abs(cost(params)) < 1e-15
    assert all(taylor_test(cost, grad, params, seed=s).passed for s in range(10))
    wrong = lambda p: grad(p, 1.0001)  # noqa: E731
    assert not any(taylor_test(cost, wrong, params, seed=s).passed for s in range(10))
