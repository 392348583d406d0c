"""A gradient mapping holding both ``W1`` and ``dW1``: ambiguous unless they are the same.

Classic backprop code keeps a cache with the weights *and* their gradients; silently
taking ``W1`` would check the weights as if they were the gradient.
"""

import numpy as np
import pytest

import fastcheck as fc
from fastcheck._inputs import normalise_grad
from fastcheck.layout import Layout


def _problem():
    params = {"W1": np.arange(6.0).reshape(2, 3) / 10 - 0.2, "b1": np.array([0.1, -0.2])}
    calls = []

    def cost(p):
        calls.append({k: v.copy() for k, v in p.items()})
        return float(np.sum(p["W1"] ** 2) + np.sum(p["b1"] ** 3))

    def grads(p):
        return {"dW1": 2 * p["W1"], "db1": 3 * p["b1"] ** 2}

    return params, cost, grads, calls


def test_weights_and_gradients_in_one_mapping_is_an_error_naming_both_keys():
    params, cost, grads, calls = _problem()
    before = {k: v.copy() for k, v in params.items()}
    cache = {**params, **grads(params), "dZ1": np.ones((2, 4))}  # weights + grads + extras
    with pytest.raises(ValueError) as info:
        fc.check(cost, cache, params)
    msg = str(info.value)
    assert "'W1'" in msg and "'dW1'" in msg and "W1" in msg
    assert "ambiguous" in msg and "only the gradients" in msg
    assert "max |difference|" in msg
    # it raised before any cost evaluation beyond the two at theta
    assert 1 <= len(calls) <= 2
    for seen in calls:
        assert all(np.array_equal(seen[k], params[k]) for k in params)
    assert all(np.array_equal(params[k], before[k]) for k in params)


def test_a_grad_function_returning_a_cache_is_refused_too():
    params, cost, grads, _ = _problem()
    with pytest.raises(ValueError, match="'b1' and 'db1'"):
        fc.check(cost, lambda p: {"b1": p["b1"], **grads(p)}, params)


def test_grad_true_returning_a_cache_is_refused():
    params, cost, grads, _ = _problem()
    with pytest.raises(ValueError, match="grads returned by cost.*'W1' and 'dW1'"):
        fc.check(lambda p: (cost(p), {**p, **grads(p)}), True, params)


def test_identical_arrays_under_both_keys_are_no_ambiguity():
    params, cost, grads, _ = _problem()
    g = grads(params)
    same_object = {"W1": g["dW1"], "dW1": g["dW1"], "db1": g["db1"]}
    assert fc.check(cost, same_object, params).passed
    equal_values = {"W1": g["dW1"].copy(), "dW1": g["dW1"], "db1": g["db1"], "b1": g["db1"]}
    assert fc.check(cost, equal_values, params).passed


def test_extra_d_keys_are_still_ignored():
    params, cost, grads, _ = _problem()
    g = {**grads(params), "dZ1": np.ones(4), "dA1": np.zeros((3, 3)), "cache": "anything"}
    report = fc.check(cost, g, params)
    assert report.passed and report.n_params == 8


def test_a_wrong_gradient_under_plain_keys_still_fails_normally():
    params, cost, grads, _ = _problem()
    wrong = {"W1": 3 * params["W1"], "b1": grads(params)["db1"]}
    report = fc.check(cost, wrong, params)
    assert not report.passed and [b.name for b in report.blocks if b.n_failed] == ["W1"]


def test_a_parameter_whose_name_starts_with_d_is_not_confused():
    # params "x" and "dx" are two parameters: their gradients under the same keys are fine
    layout = Layout({"x": (2,), "dx": (2,)})
    grad = {"x": np.array([1.0, 2.0]), "dx": np.array([3.0, 4.0])}
    np.testing.assert_array_equal(normalise_grad(grad, layout, "mapping", "grad"),
                                  [1.0, 2.0, 3.0, 4.0])


def test_the_check_is_the_same_for_a_direction_and_float32_gradients():
    layout = Layout({"W1": (2, 3)})
    w = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="direction holds both 'W1' and 'dW1'"):
        normalise_grad({"W1": w, "dW1": 2 * w}, layout, "mapping", "direction",
                       float32_ok=True)
    out = normalise_grad({"W1": w, "dW1": w.astype(np.float64)}, layout, "mapping", "grad",
                         float32_ok=True)
    assert out.dtype == np.float64 and np.all(out == 1.0)
    with pytest.raises(ValueError, match="shapes"):
        normalise_grad({"W1": np.ones((2, 3)), "dW1": np.ones(6)}, layout, "mapping", "grad")
