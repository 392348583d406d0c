"""method="central" | "richardson" | "complex" on analytic functions and real networks."""

import numba
import numpy as np
import pytest

import fastcheck as fc

from . import _models


def _sizes_params(act="tanh"):
    sizes = [4, 5, 3]
    params = _models.init_params(sizes, 1)
    X, Y = _models.make_data(sizes, 8, 2)
    return params, (X, Y, 0.1, act)


@pytest.mark.parametrize("method", ["central", "richardson", "complex"])
def test_exact_gradient_of_analytic_function(method):
    theta = np.array([0.3, -1.2, 2.5, 40.0])

    def cost(x):
        return np.sum(np.exp(np.sin(x))) + x[0] * x[1] ** 3

    def grad(x):
        g = np.cos(x) * np.exp(np.sin(x))
        g[0] += x[1] ** 3
        g[1] += 3 * x[0] * x[1] ** 2
        return g

    report = fc.check(cost, grad, theta, method=method)
    assert report.passed and report.method == method
    limit = {"central": 1e-7, "richardson": 1e-8, "complex": 1e-13}[method]
    assert np.max(report.rel_errors) < limit


def test_complex_step_is_exact_to_machine_precision():
    params, args = _sizes_params()
    report = fc.check(_models.cost, _models.backward, params, args, method="complex")
    assert report.passed and report.method == "complex"
    assert report.relative_error < 1e-13
    assert report.evaluations < 2 * report.n_checked  # one evaluation per component


def test_complex_step_detects_small_bug_central_cannot_resolve():
    params, args = _sizes_params()

    def slightly_wrong(p, *a):
        g = _models.backward(p, *a)
        g["dW1"] = g["dW1"] * (1 + 1e-9)
        return g

    central = fc.check(_models.cost, slightly_wrong, params, args, rtol=1e-11)
    exact = fc.check(_models.cost, slightly_wrong, params, args, method="complex", rtol=1e-11)
    assert not exact.passed and exact.failing_blocks() == ["W1"]
    assert np.median(central.rel_errors) > 100 * np.median(exact.rel_errors)


@pytest.mark.parametrize("method", ["richardson", "complex"])
def test_injected_bug_fails_in_its_block(method):
    params, args = _sizes_params()

    def bad(p, *a):
        g = _models.backward(p, *a)
        g["db2"] = -g["db2"]
        return g

    report = fc.check(_models.cost, bad, params, args, method=method)
    assert report.failing_blocks() == ["b2"]


def test_richardson_is_more_accurate_than_central_at_a_large_step():
    theta = np.linspace(0.1, 2.0, 12)
    cost, grad = (lambda x: np.sum(np.sin(3 * x))), (lambda x: 3 * np.cos(3 * x))
    central = fc.check(cost, grad, theta, eps=1e-3, rtol=1e-3)
    rich = fc.check(cost, grad, theta, eps=1e-3, method="richardson", rtol=1e-3)
    assert central.passed and rich.passed
    assert np.max(rich.rel_errors) < np.max(central.rel_errors) / 100
    assert rich.evaluations >= 4 * rich.n_checked


def test_complex_on_non_analytic_cost_falls_back_and_says_so():
    theta = np.linspace(-1, 1, 9) + 0.05

    def cost(x):
        return np.sum(np.abs(x)) + np.sum(x ** 3)

    report = fc.check(cost, lambda x: np.sign(x) + 3 * x ** 2, theta, method="complex")
    assert report.passed
    assert report.method == "central"
    assert any("not complex-analytic" in n for n in report.notes)
    assert "not complex-analytic" in report.summary()


def test_relu_network_with_np_maximum_works_with_complex_step():
    params, args = _sizes_params("relu")
    report = fc.check(_models.cost, _models.backward, params, args, method="complex")
    assert report.passed


@pytest.mark.parametrize("cost", [
    lambda x: float(np.sum(x ** 2)),                         # casts to float: drops Im
    lambda x: np.sum(x ** 2) + 0.0 * np.sum(np.floor(x)),  # floor rejects complex input
])
@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
def test_cost_that_cannot_take_complex_input_is_a_type_error(cost):
    with pytest.raises(TypeError, match="method='complex'"):
        fc.check(cost, lambda x: 2 * x, np.ones(3), method="complex")


def test_unknown_method_and_directional_combination():
    with pytest.raises(ValueError, match="method"):
        fc.check(lambda x: float(x @ x), lambda x: 2 * x, np.ones(3), method="forward")
    with pytest.raises(ValueError, match="directional"):
        fc.check(lambda x: float(x @ x), lambda x: 2 * x, np.ones(3), method="complex",
                 mode="directional")


@numba.njit
def _complex_safe_cost(x, a):
    # products, not **: numba's complex power loses the tiny imaginary part
    s = np.sin(x)
    return np.sum(a * s * s) + x[0] * x[1] * x[1] * x[1]


def _complex_safe_grad(x, a):
    g = 2 * a * np.sin(x) * np.cos(x)
    g[0] += x[1] ** 3
    g[1] += 3 * x[0] * x[1] ** 2
    return g


def test_complex_step_on_the_numba_backend_matches_serial():
    rng = np.random.default_rng(0)
    theta, a = rng.normal(size=300), rng.uniform(0.5, 2, size=300)
    fast = fc.check(_complex_safe_cost, _complex_safe_grad, theta, (a,), method="complex",
                    backend="numba", threads=2)
    slow = fc.check(_complex_safe_cost, _complex_safe_grad, theta, (a,), method="complex",
                    backend="serial")
    assert fast.backend == "numba" and fast.method == "complex" and fast.passed
    np.testing.assert_array_equal(fast.numeric, slow.numeric)
    assert fast.relative_error < 1e-14

    def bad(x, a):
        g = _complex_safe_grad(x, a)
        g[123] *= 1 + 1e-9  # far below what central differences can see
        return g

    report = fc.check(_complex_safe_cost, bad, theta, (a,), method="complex", rtol=1e-11)
    assert list(report.failed) == [123]


def test_numba_cost_that_cannot_compile_for_complex_is_a_type_error(mlp_s):
    m = mlp_s  # the built-in MLP preallocates float64 buffers: not complex-safe
    with pytest.raises(TypeError, match="method='complex'"):
        fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, method="complex")
