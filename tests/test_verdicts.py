"""No false alarms: kinks, large costs, zero gradients; real bugs still fail."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcheck as fc

from . import _models


def _relu_net(seed, at_zero):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6, 16))
    Y = np.eye(3)[:, rng.integers(0, 3, 16)]
    params = {"W1": rng.normal(size=(8, 6)), "b1": rng.normal(size=(8, 1)) * 0.1,
              "W2": rng.normal(size=(3, 8)), "b2": np.zeros((3, 1))}
    if at_zero:
        # put several pre-activations exactly at the ReLU kink: Z1[:, 0] = 0
        params["b1"][:, 0] = -(params["W1"] @ X[:, :1])[:, 0]
        X = X.copy()
    return params, X, Y


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("at_zero", [False, True])
def test_correct_relu_network_passes_also_with_preactivations_at_zero(seed, at_zero):
    params, X, Y = _relu_net(seed, at_zero)
    args = (X, Y, 0.1, "relu")
    if at_zero:
        Z1 = params["W1"] @ X + params["b1"]
        assert np.count_nonzero(np.abs(Z1) < 1e-15) >= 1
    report = fc.check(_models.cost, _models.backward, params, args)
    assert report.passed, report.summary()


def test_kink_is_reported_as_kink_not_failure():
    # J(x) = |x0| + x1^2 at x0 = 0 exactly: the right slope 1 is a valid subgradient,
    # although the central difference there is 0
    theta = np.array([0.0, 1.5])
    report = fc.check(lambda x: abs(x[0]) + x[1] ** 2, lambda x: np.array([1.0, 2 * x[1]]),
                      theta)
    assert report.passed
    assert report.kinds[0] == "kink"
    assert report.blocks[0].n_kinks == 1
    assert "kink" in report.summary()


def test_max_kink_near_theta_is_not_a_failure():
    # max(x0, x1) with x0 and x1 closer than the step
    theta = np.array([1.0, 1.0 + 1e-7, 0.3])

    def cost(x):
        return max(x[0], x[1]) + x[2] ** 3

    def grad(x):
        g = np.zeros(3)
        g[int(np.argmax(x[:2]))] = 1.0
        g[2] = 3 * x[2] ** 2
        return g

    report = fc.check(cost, grad, theta)
    assert report.passed, report.summary()


def test_wrong_gradient_at_a_kink_elsewhere_still_fails():
    theta = np.array([0.0, 1.5])
    report = fc.check(lambda x: abs(x[0]) + x[1] ** 2, lambda x: np.array([0.0, 2.5 * x[1]]),
                      theta)
    assert not report.passed
    assert list(report.failed) == [1]


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e6])
def test_large_summed_cost_has_no_false_alarm(scale):
    sizes = [5, 7, 4]
    params = _models.init_params(sizes, 3)
    X, Y = _models.make_data(sizes, m=32, seed=4)
    m = X.shape[1]

    def cost(p):  # summed over the batch and scaled: |J| ~ scale * batch
        return scale * m * _models.cost(p, X, Y) + scale * 1e3

    def grad(p):
        g = _models.backward(p, X, Y)
        return {k: scale * m * v for k, v in g.items()}

    report = fc.check(cost, grad, params)
    assert report.passed, report.summary()


def test_dead_units_zero_gradient_pass():
    params, X, Y = _relu_net(0, False)
    params["b1"][:3] = -100.0  # three dead units: their incoming weights have zero gradient
    report = fc.check(_models.cost, _models.backward, params, (X, Y, 0.0, "relu"))
    assert report.passed, report.summary()
    zero = report.analytic == 0
    assert np.count_nonzero(zero) >= 3 * 6


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), delta=st.sampled_from([1e-3, 1e-2, 0.5]))
def test_a_perturbed_component_fails(seed, delta):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=30)
    A = rng.normal(size=(30, 30))

    def grad(x):
        return A.T @ np.tanh(A @ x)

    def cost(x):
        return float(np.sum(np.log(np.cosh(A @ x))))

    g = grad(theta)
    k = int(rng.integers(0, 30))
    bad = g.copy()
    bad[k] += delta * max(1.0, abs(g[k]))
    report = fc.check(cost, bad, theta)
    assert list(report.failed) == [k]


def test_nonfinite_cost_at_perturbed_point_is_a_failure():
    theta = np.array([1.0, 0.0])

    def cost(x):
        return float(x[0] ** 2 + (np.log(x[1]) if x[1] != 0 else 0.0))

    with np.errstate(all="ignore"):
        report = fc.check(cost, np.array([2.0, 0.0]), theta)
    assert not report.passed
    assert report.kinds[1] == "nonfinite"
