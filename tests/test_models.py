"""Tests of the reference MLP alone (fastcheck.models.mlp), against plain NumPy references."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastcheck.layout import Layout
from fastcheck.models.mlp import (
    BATCH,
    BUGS,
    SIZES,
    affected_blocks,
    cost,
    cost_python,
    grad,
    make_mlp,
    mlp_layout,
)

ALL_SIZES = ["S", "SQ", "M", "L", (5, 7, 3), (4, 3), (6, 5, 5, 5, 2)]


def central_differences(f, theta, args, idx, h=1e-6):
    """The classic loop: (J(theta + h e_i) - J(theta - h e_i)) / 2h, one component at a time."""
    out = np.empty(len(idx))
    for k, i in enumerate(idx):
        tp = theta.copy()
        tm = theta.copy()
        tp[i] += h
        tm[i] -= h
        out[k] = (f(tp, *args) - f(tm, *args)) / (2 * h)
    return out


def applicable(bug, size):
    try:
        affected_blocks(bug, size)
    except ValueError:
        return False
    return True


# -- sizes and structure ----------------------------------------------------------------
@pytest.mark.parametrize(("size", "n"), [("S", 499), ("M", 6570), ("L", 109386), ("SQ", 612)])
def test_number_of_parameters(size, n):
    p = make_mlp(size)
    assert p.theta.shape == (n,)
    assert p.layout.size == n
    assert mlp_layout(SIZES[size]).size == n


def test_layout_blocks_and_shapes():
    layout = mlp_layout("S")
    assert isinstance(layout, Layout)
    assert layout.names == ("W1", "b1", "W2", "b2", "W3", "b3")
    assert dict(zip(layout.names, layout.shapes)) == {
        "W1": (20, 16), "b1": (16,), "W2": (16, 8), "b2": (8,), "W3": (8, 3), "b3": (3,)}


@pytest.mark.parametrize("size", ["S", "SQ", "M", "L"])
def test_problem_fields(size):
    p = make_mlp(size)
    X, Y, sizes, lam = p.args
    m = BATCH[size]
    assert p.name == f"mlp-{size}"
    assert p.sizes == SIZES[size] and p.bug is None and lam == 0.1
    assert X.shape == (m, SIZES[size][0]) and X.dtype == np.float64 and X.flags.c_contiguous
    assert Y.shape == (m, SIZES[size][-1]) and set(np.unique(Y)) <= {0.0, 1.0}
    np.testing.assert_array_equal(Y.sum(axis=1), 1.0)
    assert sizes.dtype == np.int64 and tuple(sizes) == SIZES[size]
    assert p.theta.dtype == np.float64 and p.theta.flags.c_contiguous
    params = p.params()
    assert list(params) == list(p.layout.names)
    for name, block in params.items():
        assert block.shape == p.layout.shape_of(name)
        assert np.all(block != 0.0)  # He weights and 0.1 * normal biases: none is zero
    params["W1"][0, 0] += 1.0  # copies, not views
    assert p.theta[0] != params["W1"][0, 0]


def test_custom_sizes_and_batch():
    p = make_mlp((5, 7, 3), batch=9, lam=0.5, seed=3)
    assert p.name == "mlp-5x7x3" and p.theta.size == 5 * 7 + 7 + 7 * 3 + 3
    assert p.args[0].shape == (9, 5) and p.args[3] == 0.5


def test_he_init_scale():
    w = make_mlp("L").params()["W1"]
    assert w.std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)


# -- cost -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ALL_SIZES, ids=str)
def test_cost_python_matches_njit(size):
    p = make_mlp(size)
    a, b = cost(p.theta, *p.args), cost_python(p.theta, *p.args)
    assert isinstance(a, float)
    assert a == pytest.approx(b, rel=1e-14, abs=0)


def test_cost_by_hand_on_a_tiny_net():
    p = make_mlp((3, 4, 2), batch=5, lam=0.3)
    X, Y, _, lam = p.args
    q = p.params()
    z = np.maximum(X @ q["W1"] + q["b1"], 0) @ q["W2"] + q["b2"]
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    want = -np.mean(np.log(prob[Y == 1])) + lam / 10 * (np.sum(q["W1"] ** 2) + np.sum(q["W2"] ** 2))
    assert cost(p.theta, *p.args) == pytest.approx(want, rel=1e-13)


def test_cost_is_stable_for_huge_logits():
    p = make_mlp((3, 4, 2))
    theta = p.theta * 1e3
    assert np.isfinite(cost(theta, *p.args))
    assert cost(theta, *p.args) == pytest.approx(cost_python(theta, *p.args), rel=1e-13)


def test_cost_rejects_wrong_shapes():
    p = make_mlp("S")
    X, Y, sizes, lam = p.args
    with pytest.raises(ValueError, match="theta"):
        cost(p.theta[:-1].copy(), X, Y, sizes, lam)
    with pytest.raises(ValueError, match="X must be"):
        cost(p.theta, X[:, :-1].copy(), Y, sizes, lam)


# -- gradient ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", ALL_SIZES, ids=str)
def test_correct_gradient_matches_central_differences(size):
    p = make_mlp(size, seed=1)
    rng = np.random.default_rng(42)
    idx = rng.choice(p.theta.size, size=min(30, p.theta.size), replace=False)
    idx = np.union1d(idx, [p.layout.block_slice(n).start for n in p.layout.names])  # each block
    numeric = central_differences(cost, p.theta, p.args, idx)
    analytic = p.grad(p.theta, *p.args)[idx]
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_gradient_by_plain_numpy_backprop():
    p = make_mlp("SQ")
    X, Y, _, lam = p.args
    q = p.params()
    m = X.shape[0]
    z1 = X @ q["W1"] + q["b1"]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ q["W2"] + q["b2"]
    a2 = np.maximum(z2, 0)
    z3 = a2 @ q["W3"] + q["b3"]
    e = np.exp(z3 - z3.max(axis=1, keepdims=True))
    d3 = (e / e.sum(axis=1, keepdims=True) - Y) / m
    d2 = (d3 @ q["W3"].T) * (z2 > 0)
    d1 = (d2 @ q["W2"].T) * (z1 > 0)
    want = p.layout.flatten({
        "W1": X.T @ d1 + lam / m * q["W1"], "b1": d1.sum(0),
        "W2": a1.T @ d2 + lam / m * q["W2"], "b2": d2.sum(0),
        "W3": a2.T @ d3 + lam / m * q["W3"], "b3": d3.sum(0),
    })
    np.testing.assert_allclose(p.grad(p.theta, *p.args), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("size", ["S", "SQ", "M", (6, 5, 5, 5, 2)], ids=str)
@pytest.mark.parametrize("bug", list(BUGS))
def test_bug_changes_exactly_the_documented_blocks(bug, size):
    if not applicable(bug, size):
        with pytest.raises(ValueError, match=bug):
            make_mlp(size, bug=bug)
        return
    good, bad = make_mlp(size), make_mlp(size, bug=bug)
    assert bad.bug == bug and bad.affected() == affected_blocks(bug, size)
    assert bad.cost(bad.theta, *bad.args) == good.cost(good.theta, *good.args)  # cost unchanged
    g, b = good.layout.unflatten(good.grad(good.theta, *good.args)), \
        bad.layout.unflatten(bad.grad(bad.theta, *bad.args))
    changed = {n for n in good.layout.names if not np.array_equal(g[n], b[n])}
    assert changed == affected_blocks(bug, size)
    for n in changed:  # and clearly so, not by roundoff
        assert np.max(np.abs(g[n] - b[n])) > 1e-6 * np.max(np.abs(g[n]))


def test_bugs_do_what_they_say():
    p = make_mlp("SQ")
    X, Y, sizes, lam = p.args
    m = X.shape[0]
    w = p.params()
    g = p.layout.unflatten(grad(p.theta, *p.args))

    def bug(name):
        q = make_mlp("SQ", bug=name)
        return q.layout.unflatten(q.grad(q.theta, *q.args))

    np.testing.assert_array_equal(bug("sign-flip")["W2"], -g["W2"])
    np.testing.assert_array_equal(bug("bias-factor-2")["b1"], 2 * g["b1"])
    np.testing.assert_array_equal(bug("transposed")["W1"], g["W1"].T)  # W1 is square in SQ
    swapped = bug("swapped")
    np.testing.assert_array_equal(swapped["b1"], g["b2"])
    np.testing.assert_array_equal(swapped["b2"], g["b1"])
    diff = bug("one-element")["W2"] - g["W2"]
    assert np.flatnonzero(diff).tolist() == [1 * 16 + 3]
    assert diff[1, 3] == pytest.approx(1e-3)
    c = 0.5 * np.max(np.abs(g["W1"]))
    np.testing.assert_array_equal(bug("clipped")["W1"], np.clip(g["W1"], -c, c))
    for n in ("W1", "W2", "W3"):
        np.testing.assert_allclose(bug("missing-regularization")[n], g[n] - lam / m * w[n],
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(bug("mean-vs-sum")[n] - lam / m * w[n],
                                   m * (g[n] - lam / m * w[n]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bug("mean-vs-sum")["b3"], m * g["b3"], rtol=1e-12)


def test_clip_of_the_problem_is_fixed_at_the_initial_point():
    p = make_mlp("S", bug="clipped")
    c = p.grad.keywords["clip"]
    theta = p.theta * 1.5
    g = grad(theta, *p.args)
    got = p.grad(theta, *p.args)[p.layout.block_slice("W1")]
    np.testing.assert_array_equal(got, np.clip(g[p.layout.block_slice("W1")], -c, c))


def test_affected_blocks_edge_cases():
    assert affected_blocks(None, "S") == set()
    assert affected_blocks("missing-regularization", "M") == {"W1", "W2", "W3"}
    assert affected_blocks("missing-regularization", "M", lam=0.0) == set()
    assert affected_blocks("mean-vs-sum", (4, 3)) == {"W1", "b1"}
    assert make_mlp("S", bug="missing-regularization", lam=0.0).affected() == set()


# -- errors -----------------------------------------------------------------------------
def test_unknown_names_are_value_errors():
    with pytest.raises(ValueError, match="sign-flip"):
        make_mlp("S", bug="nope")
    with pytest.raises(ValueError, match="'L'"):
        make_mlp("XL")
    with pytest.raises(ValueError, match="SQ"):
        make_mlp("S", bug="swapped")
    with pytest.raises(ValueError, match="sizes"):
        make_mlp((5,))
    with pytest.raises(ValueError, match="nope"):
        grad(*([make_mlp("S").theta] + list(make_mlp("S").args)), bug="nope")


# -- determinism and concurrency --------------------------------------------------------
def test_same_seed_same_problem_other_seed_other_problem():
    a, b, c = make_mlp("S", seed=7), make_mlp("S", seed=7), make_mlp("S", seed=8)
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.args[0], b.args[0])
    np.testing.assert_array_equal(a.args[1], b.args[1])
    assert not np.array_equal(a.theta, c.theta)
    assert not np.array_equal(a.args[0], c.args[0])


@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_repeated_calls_are_bitwise_equal(size):
    p = make_mlp(size)
    assert len({cost(p.theta, *p.args) for _ in range(5)}) == 1
    g = grad(p.theta, *p.args)
    np.testing.assert_array_equal(g, grad(p.theta, *p.args))


def test_read_only_inputs_are_accepted_and_not_changed():
    p = make_mlp("S")
    theta, X, Y = p.theta.copy(), p.args[0].copy(), p.args[1].copy()
    for a in (theta, X, Y):
        a.flags.writeable = False
    args = (X, Y) + p.args[2:]
    assert cost(theta, *args) == cost(p.theta, *p.args)
    np.testing.assert_array_equal(grad(theta, *args), grad(p.theta, *p.args))
    np.testing.assert_array_equal(theta, p.theta)


@numba.njit(parallel=True)
def _costs_in_prange(theta, X, Y, sizes, lam, idx, h):
    out = np.empty(idx.shape[0])
    for t in numba.prange(idx.shape[0]):
        th = theta.copy()
        th[idx[t]] += h
        out[t] = cost(th, X, Y, sizes, lam)
    return out


@pytest.mark.parametrize("size", ["S", "M"])
def test_cost_from_many_numba_threads_equals_serial(size):
    p = make_mlp(size)
    idx = np.arange(0, p.theta.size, max(1, p.theta.size // 97))
    with threadpool_limits(1):  # the bits of large BLAS products depend on BLAS's thread count
        par = _costs_in_prange(p.theta, *p.args, idx, 1e-3)
        serial = []
        for i in idx:
            th = p.theta.copy()
            th[i] += 1e-3
            serial.append(cost(th, *p.args))
    np.testing.assert_array_equal(par, serial)
