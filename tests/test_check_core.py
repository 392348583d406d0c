"""fc.check end to end: correct gradients pass, injected bugs fail in exactly their block."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcheck as fc
from fastcheck.models import BUGS, affected_blocks, make_mlp

from . import _models


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    m=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    act=st.sampled_from(["tanh", "relu"]),
)
def test_correct_dict_gradient_passes_for_any_shape_and_seed(sizes, m, seed, act):
    params = _models.init_params(sizes, seed)
    X, Y = _models.make_data(sizes, m, seed + 1)
    report = fc.check(_models.cost, _models.backward, params, (X, Y, 0.1, act), seed=seed)
    assert report.passed, report.summary()
    assert report.n_checked == report.n_params
    assert [b.name for b in report.blocks] == list(params)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_correct_flat_gradient_passes(n, seed, scale):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n)) * scale
    theta = rng.normal(size=n)

    def cost(x):
        return float(np.sum(np.sin(A @ x)) + 0.5 * x @ x)

    def grad(x):
        return A.T @ np.cos(A @ x) + x

    report = fc.check(cost, grad, theta)
    assert report.passed, report.summary()


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_builtin_mlp_passes_for_any_seed(seed):
    model = make_mlp("S", seed=seed)
    report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout)
    assert report.passed, report.summary()
    assert report.backend == "numba"


BUG_CASES = [(bug, "SQ" if bug == "swapped" else "S") for bug in BUGS]


@pytest.mark.parametrize(("bug", "size"), BUG_CASES, ids=[b for b, _ in BUG_CASES])
def test_each_injected_bug_fails_in_exactly_its_blocks(bug, size):
    model = make_mlp(size, bug=bug, seed=0)
    report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout)
    assert not report.passed
    assert report.verdict == "fail"
    assert set(report.failing_blocks()) == affected_blocks(bug, model.sizes)
    for block in report.blocks:
        expected = "fail" if block.name in affected_blocks(bug, model.sizes) else "pass"
        assert block.verdict == expected, (bug, block)


def test_one_element_bug_is_named_by_block_and_index():
    model = make_mlp("M", bug="one-element", seed=0)
    report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout)
    assert len(report.failed) == 1
    worst = report.worst(1)[0]
    assert (worst.name, worst.index, worst.kind) == ("W2", (1, 3), "fail")
    assert worst.flat_index == model.layout.offset_of("W2") + 1 * 32 + 3
    assert "W2[1, 3]" in report.summary()


def test_classic_course_dict_bug_located():
    sizes = [4, 5, 3]
    params = _models.init_params(sizes)
    X, Y = _models.make_data(sizes)

    def bad_backward(p, X, Y):
        g = _models.backward(p, X, Y)
        g["db1"] = 2 * g["db1"]
        return g

    report = fc.check(lambda p, X, Y: _models.cost(p, X, Y), bad_backward, params, (X, Y))
    assert report.failing_blocks() == ["b1"]
    assert {c.name for c in report.worst(5) if c.kind == "fail"} == {"b1"}


def test_report_attributes_are_consistent(mlp_s):
    m = mlp_s
    report = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, seed=3)
    assert report.n_params == m.layout.size == report.n_checked
    assert report.indices.dtype == np.int64
    assert np.all(np.diff(report.indices) > 0)
    np.testing.assert_allclose(report.abs_errors, np.abs(report.analytic - report.numeric))
    assert report.failed.size == 0
    assert report.evaluations >= 2 * report.n_checked
    assert report.seconds > 0 and report.compile_seconds >= 0
    assert report.eps == "auto" and report.seed == 3
    # the statistics describe exactly the checked components, overall and per block
    assert report.stats["overall"]["n"] == report.n_checked
    assert {name: group["n"] for name, group in report.stats["blocks"].items()} == {
        b.name: b.n_checked for b in report.blocks}
    d = report.to_dict()
    import json

    json.dumps(d, allow_nan=False)
    assert d["passed"] is True and d["n_params"] == 499


def test_eps_float_reproduces_the_course_check(mlp_s):
    m = mlp_s
    report = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, eps=1e-7)
    assert report.eps == 1e-7
    np.testing.assert_allclose(report.steps, 1e-7, rtol=1e-6)
    assert report.passed


def test_auto_steps_follow_theta_scale():
    theta = np.array([0.5, 3.0, -200.0])
    report = fc.check(lambda x: float(np.sum(x**2)), lambda x: 2 * x, theta)
    expected = np.cbrt(np.finfo(float).eps) * np.maximum(1, np.abs(theta))
    np.testing.assert_allclose(report.steps, expected, rtol=1e-8)


def test_assert_gradient_and_raise_if_failed(mlp_s):
    m = mlp_s
    fc.assert_gradient(m.cost, m.grad, m.theta, m.args, layout=m.layout)
    bad = make_mlp("S", bug="sign-flip")
    with pytest.raises(fc.GradientCheckError) as info:
        fc.assert_gradient(bad.cost, bad.grad, bad.theta, bad.args, layout=bad.layout)
    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert "FAIL" in message and "W2" in message
    assert len(message.splitlines()) < 20  # the first lines, not a wall of numbers
    assert info.value.report is not None


def test_grad_keys_plain_prefixed_and_extra():
    params = {"w": np.array([1.0, 2.0]), "b": np.array([0.5])}

    def cost(p):
        return float(np.sum(p["w"] ** 2) + 3 * p["b"][0])

    plain = {"w": 2 * params["w"], "b": np.array([3.0])}
    prefixed = {"dw": 2 * params["w"], "db": np.array([3.0]), "dZ1": np.ones(7), "dA1": 0}
    assert fc.check(cost, plain, params).passed
    assert fc.check(cost, prefixed, params).passed


def test_grad_true_cost_returns_loss_and_grads():
    params = {"w": np.array([1.0, -2.0])}

    def loss_and_grads(p):
        return float(np.sum(p["w"] ** 3)), {"dw": 3 * p["w"] ** 2}

    report = fc.check(loss_and_grads, True, params)
    assert report.passed


def test_flat_params_with_layout_named_blocks():
    layout = fc.Layout({"a": (2, 2), "c": (3,)})
    theta = np.linspace(-1, 1, 7)
    report = fc.check(lambda x: float(np.sum(np.exp(x))), np.exp, theta, layout=layout)
    assert [b.name for b in report.blocks] == ["a", "c"]
    assert report.worst(1)[0].name in {"a", "c"}


def test_compiling_a_fresh_njit_grad_counts_as_compile_time_not_check_time():
    import numba

    def cost(x):  # plain Python: nothing to compile but the gradient
        return float(np.sum(np.cos(x) * x) + 0.25 * np.sum(x**4))

    @numba.njit
    def grad(x):  # a fresh function: compiled during this check
        return np.cos(x) - x * np.sin(x) + x**3

    theta = np.linspace(-1.0, 1.0, 7)
    report = fc.check(cost, grad, theta, backend="serial")
    assert report.passed
    # compiling grad takes a good fraction of a second; the check itself milliseconds
    assert report.compile_seconds > 0.05
    assert report.seconds < report.compile_seconds
    again = fc.check(cost, grad, theta, backend="serial")
    assert again.compile_seconds < 0.05
