"""Kinks excuse only values a correct gradient could have there (issue 11).

A wrong value on a kinked component fails; a correct ReLU network with exact and
interacting kinks passes (with a callable grad where the confirmation off the kink is
needed); re-examination grows the step when the user's step is below the optimal one.
"""

import numpy as np
import pytest

import fastcheck as fc
from fastcheck import _driver, _steps, _verdict

from . import _models


def _abs_cost(x):
    return abs(x[0]) + x[1] ** 2


@pytest.mark.parametrize("wrong", [100.0, 3.0, -2.5])
@pytest.mark.parametrize("as_function", [False, True])
def test_abs_at_zero_with_a_value_outside_the_slopes_fails(wrong, as_function):
    theta = np.array([0.0, 1.5])
    grad = (lambda x: np.array([wrong, 2 * x[1]])) if as_function else np.array([wrong, 3.0])
    report = fc.check(_abs_cost, grad, theta)
    assert not report.passed
    assert list(report.failed) == [0]
    assert report.kinds[0] == "fail"
    # an array grad is told how the kink could be confirmed; a function was already tried
    assert any("pass grad as a function" in n for n in report.notes) == (not as_function)


@pytest.mark.parametrize("value", [-1.0, -0.5, 0.0, 0.7, 1.0])
def test_abs_at_zero_with_any_subgradient_passes(value):
    report = fc.check(_abs_cost, np.array([value, 3.0]), np.array([0.0, 1.5]))
    assert report.passed, report.summary()
    assert report.kinds[0] in ("kink", "ok")


def test_just_outside_the_hull_fails_and_just_inside_passes():
    theta = np.array([0.0, 1.5])
    assert not fc.check(_abs_cost, np.array([1.01, 3.0]), theta).passed
    assert not fc.check(_abs_cost, np.array([-1.01, 3.0]), theta).passed
    assert fc.check(_abs_cost, np.array([0.99, 3.0]), theta).passed


# -- a ReLU layer with one unit on its kink --------------------------------------------------
def _relu_layer():
    rng = np.random.default_rng(3)
    X = rng.integers(-8, 9, size=(5, 4)) / 8.0  # exact arithmetic: Z is exactly 0 below
    W = rng.integers(-8, 9, size=(4, 3)) / 8.0
    X[0, 0] = 1.0
    b = rng.normal(size=3)
    b[0] = -float(X[0] @ W[:, 0])  # unit 0 sits exactly on its kink for example 0
    dout = rng.normal(size=(5, 3))
    layout = fc.Layout({"W": W.shape, "b": b.shape})
    theta = layout.flatten({"W": W, "b": b})

    def cost(t):
        p = layout.unflatten(t)
        return float(np.sum(np.maximum(X @ p["W"] + p["b"], 0.0) * dout))

    def grad(t):
        p = layout.unflatten(t)
        dz = dout * (X @ p["W"] + p["b"] > 0)
        return layout.flatten({"W": X.T @ dz, "b": dz.sum(axis=0)})

    assert (X @ W + b)[0, 0] == 0.0
    return cost, grad, theta, layout


@pytest.mark.parametrize("as_function", [False, True])
def test_relu_layer_with_a_wrong_entry_on_the_kink_fails(as_function):
    cost, grad, theta, layout = _relu_layer()
    shift = np.zeros_like(theta)
    shift[layout.offset_of("W")] = 5.0  # dW[0, 0] off by +5

    def bad(t):
        return grad(t) + shift

    report = fc.check(cost, bad if as_function else bad(theta), theta, layout=layout)
    assert not report.passed
    assert list(report.failed) == [layout.offset_of("W")]
    assert report.worst(1)[0].index == (0, 0)


def test_relu_layer_correct_passes_with_the_kink_called_a_kink():
    cost, grad, theta, layout = _relu_layer()
    report = fc.check(cost, grad(theta), theta, layout=layout)
    assert report.passed, report.summary()
    assert report.kinds[layout.offset_of("W")] == "kink"


# -- course-style MLP with pre-activations exactly 0 ------------------------------------------
def _exact_mlp(kinks):
    """A course-style network (sizes 6-12-8-3, 227 parameters) whose data and first-layer
    weights are multiples of 1/8, so that chosen pre-activations are exactly 0. ``kinks``
    lists (unit, example, ...) triples; each unit's bias puts its example on the kink."""
    rng = np.random.default_rng(11)
    sizes = [6, 12, 8, 3]
    params = _models.init_params(sizes, 5)
    params["W1"] = rng.integers(-8, 9, size=params["W1"].shape) / 8.0
    X = rng.integers(-8, 9, size=(6, 10)) / 8.0
    Y = np.eye(3)[:, rng.integers(0, 3, 10)]
    for unit, example in kinks:
        params["b1"][unit, 0] = -float(params["W1"][unit] @ X[:, example])
    Z1 = params["W1"] @ X + params["b1"]
    for unit, example in kinks:
        assert Z1[unit, example] == 0.0
    return params, X, Y


def test_course_mlp_with_three_zero_preactivations_and_a_big_dw1_error_fails():
    params, X, Y = _exact_mlp([(0, 1), (3, 4), (7, 2)])
    args = (X, Y, 0.1, "relu")
    good = _models.backward(params, X, Y, 0.1, "relu")
    largest = max(float(np.max(np.abs(good["d" + k]))) for k in params)
    assert fc.check(_models.cost, good, params, args).passed
    for as_function in (False, True):
        def bad(p, *a):
            g = _models.backward(p, *a)
            g["dW1"] = g["dW1"].copy()
            g["dW1"][3, 2] += 50 * largest
            return g

        report = fc.check(_models.cost, bad if as_function else bad(params, *args), params,
                          args)
        assert not report.passed
        (worst,) = [w for w in report.worst(3) if w.kind == "fail"]
        assert (worst.name, worst.index) == ("W1", (3, 2))


def _interacting(seed):
    """Unit 0 has its pre-activation exactly 0 for examples 0, 1, 2 (inputs of both signs
    there), so moving one weight of unit 0 moves three kinks at once."""
    rng = np.random.default_rng(seed)
    sizes = [5, 6, 4, 3]
    params = _models.init_params(sizes, seed)
    X = rng.normal(size=(5, 12))
    X[:2, :3] = 0.0  # examples 0-2 see nothing through inputs 0 and 1
    X[2:, :3] = np.array([[1.0, -1.5, 0.5], [-0.7, 0.9, 1.2], [2.0, 1.0, -1.0]])
    params["W1"][0, 2:] = 0.0  # ... and unit 0 weighs only inputs 0 and 1
    params["b1"][0, 0] = 0.0
    Y = np.eye(3)[:, rng.integers(0, 3, 12)]
    Z1 = params["W1"] @ X + params["b1"]
    assert np.all(Z1[0, :3] == 0.0)
    return params, (X, Y, 0.05, "relu")


@pytest.mark.parametrize("seed", range(4))
def test_correct_network_with_interacting_kinks_passes_with_a_callable_grad(seed):
    params, args = _interacting(seed)
    report = fc.check(_models.cost, _models.backward, params, args)
    assert report.passed, report.summary()
    assert np.count_nonzero(report.kinds == "kink") >= 1


def test_interacting_kinks_need_the_confirmation():
    # With the gradient as values, fastcheck cannot look off the kink: a backprop
    # subgradient outside the one-sided slopes is then reported, never excused.
    found = 0
    for seed in range(4):
        params, args = _interacting(seed)
        grads = _models.backward(params, *args)
        by_value = fc.check(_models.cost, grads, params, args)
        by_function = fc.check(_models.cost, _models.backward, params, args)
        assert by_function.passed
        if not by_value.passed:
            found += 1
            assert set(by_value.failing_blocks()) == {"W1"}
            # ... and the report says how to settle it: pass grad as a function
            assert any("pass grad as a function" in n for n in by_value.notes)
            assert "pass grad as a function" in by_value.summary()
            # the confirmation made gradient calls and they were counted
            assert by_function.evaluations > by_value.evaluations
    assert found >= 1


def test_interacting_kinks_in_the_hull_pass_with_array_grads():
    # the bias moves all three kinks the same way: backprop's value is a one-sided slope
    params, args = _interacting(0)
    grads = _models.backward(params, *args)
    report = fc.check(_models.cost, grads, params, args)
    b1 = report.layout.offset_of("b1")
    at = int(np.searchsorted(report.indices, b1))
    assert report.kinds[at] == "kink"


def test_a_real_bug_on_an_interacting_kink_still_fails_with_a_callable_grad():
    params, args = _interacting(1)

    def bad(p, *a):
        g = _models.backward(p, *a)
        g["dW1"] = g["dW1"].copy()
        g["dW1"][0, 3] += 0.05  # the kinks' jump here is ~0.01
        return g

    report = fc.check(_models.cost, bad, params, args)
    assert not report.passed
    assert [w.index for w in report.worst(5) if w.kind == "fail"] == [(0, 3)]


def test_confirmation_is_bounded_and_skipped_without_a_function():
    assert _driver.MAX_CONFIRMATIONS <= 64
    params, args = _interacting(0)
    report = fc.check(_models.cost, _models.backward(params, *args), params, args)
    assert report.evaluations == 2 + 2 * report.n_params + _reexamination_calls(report)


def _reexamination_calls(report):
    # two more evaluations per level for each suspect: at most LEVELS levels
    extra = report.evaluations - 2 - 2 * report.n_params
    assert extra % 2 == 0 and extra <= 2 * _verdict.LEVELS * report.n_params
    return extra


# -- the course's step ----------------------------------------------------------------------
def _relu_net_at_zero(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6, 16))
    Y = np.eye(3)[:, rng.integers(0, 3, 16)]
    params = {"W1": rng.normal(size=(8, 6)), "b1": rng.normal(size=(8, 1)) * 0.1,
              "W2": rng.normal(size=(3, 8)), "b2": np.zeros((3, 1))}
    params["b1"][:, 0] = -(params["W1"] @ X[:, :1])[:, 0]
    return params, (X, Y, 0.1, "relu")


@pytest.mark.parametrize("seed", range(6))
def test_correct_relu_network_at_the_course_step_has_no_failure(seed):
    params, args = _relu_net_at_zero(seed)
    report = fc.check(_models.cost, _models.backward, params, args, eps=1e-7)
    assert report.passed, report.summary()


def test_a_real_bug_at_the_course_step_still_fails():
    params, args = _relu_net_at_zero(0)

    def bad(p, *a):
        g = _models.backward(p, *a)
        g["dW2"] = g["dW2"] * 1.001
        return g

    report = fc.check(_models.cost, bad, params, args, eps=1e-7)
    assert not report.passed
    assert set(report.failing_blocks()) == {"W2"}


def test_small_steps_grow_and_optimal_ones_shrink():
    theta = np.array([0.0, 3.0, -1e4])
    auto = _steps.nominal_steps(theta, "auto")
    assert list(_verdict.grows(theta, auto)) == [False] * 3
    assert list(_verdict.grows(theta, np.full(3, 1e-7))) == [True] * 3
    assert list(_verdict.grows(theta, np.full(3, 1e-4))) == [False, False, True]


def test_confirmation_with_grad_true():
    params, args = _interacting(0)

    def cost_and_grad(p, *a):
        return _models.cost(p, *a), _models.backward(p, *a)

    assert fc.check(cost_and_grad, True, params, args).passed

    def wrong(p, *a):
        g = _models.backward(p, *a)
        g["dW1"] = g["dW1"].copy()
        g["dW1"][0, 3] += 0.05
        return _models.cost(p, *a), g

    report = fc.check(wrong, True, params, args)
    assert [w.index for w in report.worst(5) if w.kind == "fail"] == [(0, 3)]


def test_confirmation_on_the_numba_backend():
    import numba

    @numba.njit
    def cost(x):  # three kinks at 0 moved at once by x[0]: slopes 1 + 2 - 0.5 and 0
        return (max(x[0], 0.0) + max(2 * x[0], 0.0) + max(-0.5 * x[0], 0.0) * -1.0
                + x[1] ** 2)

    def grad(x):  # backprop's choice: every unit off at exactly 0
        z = x[0]
        return np.array([(z > 0) * 3.0 + (z < 0) * 0.5, 2 * x[1]])

    theta = np.array([0.0, 0.7])
    report = fc.check(cost, grad, theta, backend="numba")
    assert report.backend == "numba" and report.passed, report.summary()
    assert report.kinds[0] == "kink"
    bad = fc.check(cost, lambda x: grad(x) + np.array([0.2, 0.0]), theta, backend="numba")
    assert not bad.passed and list(bad.failed) == [0]
