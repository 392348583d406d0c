"""Bad input raises the documented errors, names the argument, and changes nothing."""

import numpy as np
import pytest

import fastcheck as fc

from . import _models


def _simple():
    params = {"W1": np.arange(6.0).reshape(2, 3) / 10, "b1": np.array([0.1, -0.2])}
    snapshot = {k: v.copy() for k, v in params.items()}

    def cost(p):
        return float(np.sum(p["W1"] ** 2) + np.sum(p["b1"] ** 3))

    def grad(p):
        return {"dW1": 2 * p["W1"], "db1": 3 * p["b1"] ** 2}

    return params, snapshot, cost, grad


def _unchanged(params, snapshot):
    return all(np.array_equal(params[k], snapshot[k]) for k in snapshot)


def test_nondeterministic_cost_raises_with_advice():
    params, snapshot, _, grad = _simple()
    rng = np.random.default_rng(0)  # masks of the two calls at theta differ for this seed

    def dropout_cost(p):
        mask = rng.random(p["W1"].shape) > 0.5
        return float(np.sum((p["W1"] * mask) ** 2) + np.sum(p["b1"] ** 3))

    with pytest.raises(fc.NondeterministicCostError, match="dropout"):
        fc.check(dropout_cost, grad, params)
    assert issubclass(fc.NondeterministicCostError, fc.FastcheckError)
    assert _unchanged(params, snapshot)


def test_transposed_grad_block_is_named():
    params, snapshot, cost, grad = _simple()

    def bad(p):
        g = grad(p)
        g["dW1"] = g["dW1"].T
        return g

    with pytest.raises(ValueError, match=r"W1.*\(2, 3\).*\(3, 2\).*transposed"):
        fc.check(cost, bad, params)
    assert _unchanged(params, snapshot)


def test_missing_grad_key_names_parameter():
    params, _, cost, grad = _simple()
    with pytest.raises(ValueError, match="b1"):
        fc.check(cost, lambda p: {"dW1": grad(p)["dW1"], "dZ1": 1.0}, params)


def test_flat_grad_wrong_length():
    with pytest.raises(ValueError, match=r"grad.*\(5,\)"):
        fc.check(lambda x: float(x @ x), np.zeros(4), np.ones(5))


@pytest.mark.parametrize("value", [np.array([1.0, 2.0]), None, "x", np.nan, np.inf])
def test_bad_cost_values(value):
    with pytest.raises((TypeError, ValueError), match="cost"):
        fc.check(lambda x: value, np.zeros(3), np.ones(3))


@pytest.mark.parametrize("eps", [0, -1e-7, float("nan"), "big"])
def test_bad_eps(eps):
    with pytest.raises((ValueError, TypeError), match="eps"):
        fc.check(lambda x: float(x @ x), lambda x: 2 * x, np.ones(3), eps=eps)


@pytest.mark.parametrize("kw", [{"rtol": 0}, {"backend": "gpu"}, {"threads": 0},
                                {"threads": 1.5}, {"confidence": 1.0}])
def test_bad_options(kw):
    name = next(iter(kw))
    with pytest.raises((ValueError, TypeError), match=name):
        fc.check(lambda x: float(x @ x), lambda x: 2 * x, np.ones(3), **kw)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.complex128, bool])
def test_non_float_params_are_refused_with_advice(dtype):
    with pytest.raises(TypeError, match="float64"):
        fc.check(lambda x: 0.0, np.zeros(3), np.ones(3, dtype=dtype))


def test_float32_params_and_grad_are_accepted_with_a_float64_warning():
    # float32 is checked honestly (tests/test_float32.py); here: accepted at the boundary
    params = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    with pytest.warns(UserWarning, match="float64"):
        report = fc.check(lambda x: float(x @ x), 2 * params, params)
    assert report.passed and params.dtype == np.float32


def test_float32_grad_refused_for_a_float64_model():
    with pytest.raises(TypeError, match="must be float64, got dtype float32 .*float32 params"):
        fc.check(lambda x: float(x @ x), np.ones(3, dtype=np.float32), np.ones(3))


def test_nonfinite_params_refused():
    params = {"W": np.array([1.0, np.nan])}
    with pytest.raises(ValueError, match="params\\['W'\\]"):
        fc.check(lambda p: 0.0, {"W": np.zeros(2)}, params)


def test_2d_flat_params_refused():
    with pytest.raises(ValueError, match="1-D"):
        fc.check(lambda x: 0.0, np.zeros((2, 2)), np.ones((2, 2)))


def test_layout_size_mismatch():
    with pytest.raises(ValueError, match="layout"):
        fc.check(lambda x: 0.0, np.zeros(3), np.ones(3), layout=fc.Layout({"a": (4,)}))


def test_cost_raising_midway_leaves_params_unchanged_and_names_component():
    params, snapshot, _, grad = _simple()
    calls = {"n": 0}

    def cost(p):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("boom")
        return float(np.sum(p["W1"] ** 2) + np.sum(p["b1"] ** 3))

    with pytest.raises(fc.CostEvaluationError, match=r"W1\[0, 1\].*|W1\[0, 2\]") as info:
        fc.check(cost, grad, params)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert _unchanged(params, snapshot)


def test_cost_writing_into_params_is_detected_and_caller_safe():
    params, snapshot, _, grad = _simple()

    def evil(p):
        value = float(np.sum(p["W1"] ** 2) + np.sum(p["b1"] ** 3))
        p["W1"] *= 1.0000001
        return value

    with pytest.raises(fc.FastcheckError):
        fc.check(evil, grad, params)
    assert _unchanged(params, snapshot)


def test_check_never_mutates_on_success():
    sizes = [3, 4, 2]
    params = _models.init_params(sizes)
    X, Y = _models.make_data(sizes)
    snap = {k: v.copy() for k, v in params.items()}
    Xs = X.copy()
    fc.check(_models.cost, _models.backward, params, (X, Y))
    assert _unchanged(params, snap) and np.array_equal(X, Xs)
