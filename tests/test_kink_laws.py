"""Laws of the kink verdict, for any seed and step (hypothesis).

1. For a cost with kinks, an analytic value off by more than the kink's jump plus the
   tolerance fails.
2. Backprop's own subgradient of a ReLU network with exact (and interacting) kinks passes,
   for any seed and any step eps in [1e-8, 1e-4].
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcheck as fc

from . import _models

STEPS = st.floats(-8.0, -4.0).map(lambda e: 10.0**e)


def _kinked(seed):
    """J = sum c_i |x_i - k_i| + sum s_i x_i^2 / 2 with every x_i exactly on its kink."""
    rng = np.random.default_rng(seed)
    n = 6
    c = rng.uniform(0.1, 5.0, n) * rng.choice([-1.0, 1.0], n)  # concave kinks too
    s = rng.normal(size=n)
    theta = np.round(rng.normal(size=n) * 8) / 8

    def cost(x):
        return float(np.sum(c * np.abs(x - theta)) + 0.5 * np.sum(s * x**2))

    right = c + s * theta  # the one-sided slopes at the kink
    left = -c + s * theta
    return cost, theta, left, right


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(0, 5), excess=st.floats(0.01, 100.0),
       above=st.booleans(), eps=st.one_of(st.just("auto"), STEPS))
def test_a_value_beyond_the_jump_plus_tolerance_fails(seed, k, excess, above, eps):
    cost, theta, left, right = _kinked(seed)
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    jump = hi[k] - lo[k]
    grad = (lo + hi) / 2  # a valid subgradient everywhere...
    # ... but component k is off by more than the jump plus a tolerance from the hull
    margin = jump + excess * max(1.0, abs(grad[k]))
    grad[k] = (hi[k] if above else lo[k]) + (margin if above else -margin)
    for g in (grad, lambda x, g=grad: g):
        report = fc.check(cost, g, theta, eps=eps)
        assert list(report.failed) == [k], report.summary()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.floats(0.0, 1.0), eps=STEPS)
def test_any_value_in_the_hull_passes(seed, t, eps):
    cost, theta, left, right = _kinked(seed)
    grad = (1 - t) * left + t * right
    report = fc.check(cost, grad, theta, eps=eps)
    assert report.passed, report.summary()


def _relu_net_with_exact_kinks(seed):
    """A course-style ReLU network whose data and first layer are multiples of 1/8, with
    several pre-activations exactly 0; unit 0 is at 0 for three examples whose inputs have
    both signs, so one weight moves three kinks at once."""
    rng = np.random.default_rng(seed)
    sizes = [5, 6, 4, 3]
    params = _models.init_params(sizes, seed)
    params["W1"] = rng.integers(-8, 9, size=(6, 5)) / 8.0
    X = rng.integers(-8, 9, size=(5, 12)) / 8.0
    X[:2, :3] = 0.0
    X[2:, :3] = np.array([[1.0, -1.5, 0.5], [-0.75, 0.875, 1.25], [2.0, 1.0, -1.0]])
    params["W1"][0, 2:] = 0.0
    params["b1"][0, 0] = 0.0
    for unit in rng.choice(np.arange(1, 6), size=2, replace=False):
        example = int(rng.integers(3, 12))
        params["b1"][unit, 0] = -float(params["W1"][unit] @ X[:, example])
    Y = np.eye(3)[:, rng.integers(0, 3, 12)]
    Z1 = params["W1"] @ X + params["b1"]
    assert np.count_nonzero(Z1 == 0.0) >= 5
    return params, (X, Y, 0.05, "relu")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), eps=STEPS)
def test_backprop_subgradient_passes_for_any_seed_and_step(seed, eps):
    params, args = _relu_net_with_exact_kinks(seed)
    report = fc.check(_models.cost, _models.backward, params, args, eps=eps)
    assert report.passed, report.summary()
