"""Odd inputs to check / assert_gradient / taylor_test: each is a ValueError or TypeError
raised by fastcheck itself (not from inside numpy or numba), naming the argument and
the value it got."""
import traceback

import numpy as np
import pytest

import fastcheck as fc

TH = np.random.default_rng(0).standard_normal(6)


def q(t, *a):
    return 0.5 * float(np.sum(np.asarray(t, dtype=float) ** 2))


def g(t, *a):
    return np.array(t, dtype=float)


CASES = {  # name: (cost, grad, params, options, words the message must contain)
    "0-d params": (q, g, np.array(1.5), {}, ["params", "()"]),
    "2-d params": (q, g, np.ones((2, 3)), {}, ["params", "(2, 3)"]),
    "empty params": (q, g, np.zeros(0), {}, ["params"]),
    "object params": (q, g, np.array([1.0, 2.0], dtype=object), {}, ["params", "object"]),
    "complex params": (q, g, np.array([1.0, 2.0]) + 0j, {}, ["params", "complex128"]),
    "int params": (q, g, np.array([1, 2]), {}, ["params", "int64"]),
    "nan params": (q, g, np.array([1.0, np.nan]), {}, ["params", "finite"]),
    "nested dict": (q, g, {"a": {"b": np.ones(2)}}, {}, ["params['a']", "dict"]),
    "cost array": (lambda t: t, g, TH, {}, ["cost", "(6,)"]),
    "cost None": (lambda t: None, g, TH, {}, ["cost", "None"]),
    "cost str": (lambda t: "1.0", g, TH, {}, ["cost", "str"]),
    "cost complex": (lambda t: q(t) + 1j, g, TH, {}, ["cost", "complex"]),
    "cost nan": (lambda t: np.nan, g, TH, {}, ["cost", "nan"]),
    "cost pair": (lambda t: (q(t), g(t)), g, TH, {}, ["cost", "grad=True"]),
    "grad short": (q, lambda t: np.ones(5), TH, {}, ["grad", "(6,)", "(5,)"]),
    "grad None": (q, lambda t: None, TH, {}, ["grad", "NoneType"]),
    "grad complex": (q, lambda t: t + 0j, TH, {}, ["grad", "complex128"]),
    "grad object": (q, lambda t: t.astype(object), TH, {}, ["grad", "object"]),
    "grad False": (q, False, TH, {}, ["grad", "False"]),
    "grad=True scalar": (q, True, TH, {}, ["grad=True", "float"]),
    "grad missing key": (lambda p: q(p["a"]), lambda p: {}, {"a": np.ones(3)}, {},
                         ["grad", "'a'", "'da'"]),
}
OPTIONS = {  # check-only options
    "eps inf": ({"eps": np.inf}, ["eps", "inf"]),
    "eps 0": ({"eps": 0.0}, ["eps", "0.0"]),
    "eps array": ({"eps": np.ones(6)}, ["eps", "ndarray"]),
    "sample -1": ({"sample": -1}, ["sample", "-1"]),
    "sample nan": ({"sample": float("nan")}, ["sample", "nan"]),
    "sample True": ({"sample": True}, ["sample", "True"]),
    "sample huge": ({"sample": 10**9}, ["sample", "1000000000"]),
    "seed generator": ({"sample": 3, "seed": np.random.default_rng(0)}, ["seed"]),
    "rtol nan": ({"rtol": float("nan")}, ["rtol", "nan"]),
    "threads 1.5": ({"threads": 1.5}, ["threads", "1.5"]),
    "confidence 1": ({"confidence": 1.0, "sample": 3}, ["confidence", "1.0"]),
    "target_rate 2": ({"target_rate": 2.0, "sample": "auto"}, ["target_rate", "2.0"]),
    "max_failures 0": ({"max_failures": 0}, ["max_failures", "0"]),
    "method": ({"method": "forward"}, ["method", "forward"]),
    "mode": ({"mode": "random"}, ["mode", "random"]),
    "layout size": ({"layout": fc.Layout({"a": (5,)})}, ["layout", "5", "6"]),
    "layout dict": ({"layout": {"a": (6,)}}, ["layout", "dict"]),
}


def _raised_by_fastcheck(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    return "fastcheck" in frames[-1].filename.replace("\\", "/").split("/")


def _expect(call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert _raised_by_fastcheck(info.value), info.value
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("entry", ["check", "assert_gradient", "taylor_test"])
def test_bad_input_is_a_clear_error(name, entry):
    cost, grad, params, options, words = CASES[name]
    fn = getattr(fc, entry)
    _expect(lambda: fn(cost, grad, params, **options), words)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_bad_option_is_a_clear_error(name):
    options, words = OPTIONS[name]
    _expect(lambda: fc.check(q, g, TH, **options), words)
    _expect(lambda: fc.assert_gradient(q, g, TH, **options), words)


def test_params_never_changed_on_error():
    theta = TH.copy()
    with pytest.raises(TypeError):
        fc.check(lambda t: None, g, theta)
    np.testing.assert_array_equal(theta, TH)


def test_assert_gradient_message_and_kwargs():
    rng = np.random.default_rng(0)
    p = {"W": rng.standard_normal((5, 4)), "b": rng.standard_normal(4)}
    x = rng.standard_normal((3, 5))

    def cost(p, x):
        return 0.5 * float(np.sum((x @ p["W"] + p["b"]) ** 2))

    def grad(p, x, scale=1.0):
        r = x @ p["W"] + p["b"]
        return {"dW": x.T @ r, "db": scale * r.sum(0)}

    report = fc.assert_gradient(cost, grad, p, (x,), sample=6, seed=3)
    assert report.n_checked == 6 and report.seed == 3
    with pytest.raises(AssertionError) as info:
        fc.assert_gradient(cost, lambda p, x: grad(p, x, 1.01), p, args=(x,))
    err = info.value
    assert isinstance(err, fc.GradientCheckError) and isinstance(err, fc.FastcheckError)
    text = str(err)
    assert text.splitlines()[0].startswith("fastcheck FAIL")
    assert "failing blocks: b" in text and "b[0]" in text and "W[" not in text.split("b[")[0]
    assert err.report.failed.size == 4
    with pytest.raises(TypeError, match="bogus"):
        fc.assert_gradient(cost, grad, p, (x,), bogus=1)
