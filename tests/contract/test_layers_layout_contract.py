"""check_layer, Layout, taylor_test and kinks as API.md states them (own small layers)."""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc


# -- our own small layers --------------------------------------------------------------------
def affine_fwd(x, w, b):
    return x @ w + b, (x, w)


def affine_bwd(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_out_only(x, w, b):
    return x @ w + b


def affine_bwd_inputs(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def scale_fwd(x, param):
    return x * param["k"], (x, param)


def scale_bwd(dout, cache):
    x, param = cache
    return dout * param["k"]  # a single array for a single checked input


def two_out_fwd(x, h):
    a = np.tanh(x + h)
    b = x * h
    return a, b, (x, h, a)


def two_out_bwd(da, db, cache):
    x, h, a = cache
    t = da * (1 - a ** 2)
    return t + db * h, t + db * x


def embed_fwd(idx, W):
    return W[idx], (idx, W)


def embed_bwd(dout, cache):
    idx, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, idx, dout)
    return dW


def _xwb(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=(3, 5)),
            "b": rng.normal(size=5)}


def test_forward_with_cache_and_backward_tuple():
    inputs = _xwb()
    keep = {k: v.copy() for k, v in inputs.items()}
    r = fc.check_layer(affine_fwd, affine_bwd, inputs, seed=0)
    assert r.passed and [b.name for b in r.blocks] == ["x", "w", "b"]
    for k in inputs:
        np.testing.assert_array_equal(inputs[k], keep[k])


def test_forward_output_only_backward_gets_inputs():
    r = fc.check_layer(affine_out_only, affine_bwd_inputs, _xwb(), seed=0)
    assert r.passed and [b.name for b in r.blocks] == ["x", "w", "b"]


@pytest.mark.parametrize("keys", ["plain", "d"])
def test_backward_returning_a_mapping(keys):
    def bwd(dout, cache):
        dx, dw, db = affine_bwd(dout, cache)
        p = "d" if keys == "d" else ""
        return {p + "x": dx, p + "w": dw, p + "b": db}

    assert fc.check_layer(affine_fwd, bwd, _xwb(), seed=0).passed


def test_args_follow_inputs_and_single_array_gradient():
    rng = np.random.default_rng(1)
    r = fc.check_layer(scale_fwd, scale_bwd, {"x": rng.normal(size=(3, 2))}, ({"k": 2.5},),
                       seed=0)
    assert r.passed and [b.name for b in r.blocks] == ["x"]


def test_several_outputs():
    rng = np.random.default_rng(2)
    inputs = {"x": rng.normal(size=(3, 4)), "h": rng.normal(size=(3, 4))}
    assert fc.check_layer(two_out_fwd, two_out_bwd, inputs, seed=0).passed

    def bad(da, db, cache):
        dx, dh = two_out_bwd(da, db, cache)
        return dx, dh - db * cache[0]  # drops the x*h term of dh

    r = fc.check_layer(two_out_fwd, bad, inputs, seed=0)
    assert r.failing_blocks() == ["h"]


def test_integer_inputs_are_passed_and_not_checked():
    rng = np.random.default_rng(3)
    idx = np.array([[0, 2, 1], [2, 2, 0]])
    inputs = {"idx": idx, "W": rng.normal(size=(4, 3))}
    r = fc.check_layer(embed_fwd, embed_bwd, inputs, seed=0)
    assert r.passed and [b.name for b in r.blocks] == ["W"]
    assert r.n_params == 12

    def bad(dout, cache):
        idx, W = cache
        dW = np.zeros_like(W)
        dW[idx] = dout  # overwrites instead of accumulating repeated words
        return dW

    assert not fc.check_layer(embed_fwd, bad, inputs, seed=0).passed


def test_wrong_shape_is_value_error_naming_the_input():
    def bwd(dout, cache):
        dx, dw, db = affine_bwd(dout, cache)
        return dx[:, :0], dw, db

    with pytest.raises(ValueError) as info:
        fc.check_layer(affine_fwd, bwd, _xwb(), seed=0)
    msg = str(info.value)
    assert "dx" in msg and "(4, 0)" in msg and "(4, 3)" in msg


def test_wrong_number_of_gradients_is_an_error_not_a_crash():
    def bwd(dout, cache):
        return affine_bwd(dout, cache)[:2]

    with pytest.raises((ValueError, TypeError)):
        fc.check_layer(affine_fwd, bwd, _xwb(), seed=0)


def test_seed_reproduces_dout_and_is_recorded():
    seen = []

    def bwd(dout, cache):
        seen.append(dout.copy())
        return affine_bwd(dout, cache)

    r1 = fc.check_layer(affine_fwd, bwd, _xwb(), seed=11)
    r2 = fc.check_layer(affine_fwd, bwd, _xwb(), seed=r1.seed)
    assert r1.seed == 11 == r2.seed
    np.testing.assert_array_equal(seen[0], seen[1])
    r3 = fc.check_layer(affine_fwd, bwd, _xwb())
    assert isinstance(r3.seed, int)
    r4 = fc.check_layer(affine_fwd, bwd, _xwb(), seed=r3.seed)
    np.testing.assert_array_equal(seen[2], seen[3])
    np.testing.assert_array_equal(r3.numeric, r4.numeric)


@pytest.mark.parametrize("options", [{"backend": "processes", "threads": 2},
                                     {"backend": "threads"}, {"sample": 8},
                                     {"method": "richardson"}, {"rtol": 1e-3}])
def test_check_options_apply_to_layers(options):
    def bad(dout, cache):
        dx, dw, db = affine_bwd(dout, cache)
        return dx, dw, db / 4  # mean over the batch instead of the sum

    r = fc.check_layer(affine_fwd, bad, _xwb(), seed=0, **options)
    assert r.failing_blocks() == ["b"]
    if "backend" in options:
        assert r.backend == options["backend"]
    good = fc.check_layer(affine_fwd, affine_bwd, _xwb(), seed=0, **options)
    assert good.passed


def test_check_layer_bad_option_is_an_error():
    with pytest.raises((ValueError, TypeError), match="backend"):
        fc.check_layer(affine_fwd, affine_bwd, _xwb(), seed=0, backend="gpu")


# -- Layout ----------------------------------------------------------------------------------
def test_layout_parallel_tuples_order_and_c_order():
    shapes = {"W1": (4, 3), "b1": (4,), "W2": (2, 4), "b2": (2,)}
    lay = fc.Layout(shapes)
    assert lay.names == ("W1", "b1", "W2", "b2")
    assert isinstance(lay.names, tuple) and isinstance(lay.shapes, tuple)
    assert isinstance(lay.offsets, tuple)
    assert lay.shapes == ((4, 3), (4,), (2, 4), (2,))
    assert tuple(lay.offsets) == (0, 12, 16, 24)
    assert list(iter(lay.shapes))[0] == (4, 3)
    assert lay.size == 26
    if hasattr(lay, "sizes"):
        assert tuple(lay.sizes) == (12, 4, 8, 2)
    rev = fc.Layout(dict(reversed(list(shapes.items()))))
    assert rev.names == ("b2", "W2", "b1", "W1")

    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    theta = lay.flatten(params)
    assert theta.dtype == np.float64 and theta.ndim == 1 and theta.size == 26
    np.testing.assert_array_equal(theta[:12], params["W1"].ravel(order="C"))
    views = lay.unflatten(theta)
    assert list(views) == list(shapes)
    assert all(np.shares_memory(v, theta) for v in views.values())
    views["W2"][1, 3] = 99.0
    assert theta[16 + 1 * 4 + 3] == 99.0
    assert lay.locate(16 + 7) == ("W2", (1, 3))
    assert lay.locate(0) == ("W1", (0, 0)) and lay.locate(25) == ("b2", (1,))
    for i in range(lay.size):
        name, idx = lay.locate(i)
        assert params[name][idx] == lay.flatten(params)[i]
    for bad in (-1, 26, 1000):
        with pytest.raises(IndexError):
            lay.locate(bad)


def test_layout_flatten_does_not_alias_or_mutate():
    lay = fc.Layout({"a": (2, 2)})
    a = np.arange(4.0).reshape(2, 2)
    t = lay.flatten({"a": a})
    t[0] = 5.0
    assert a[0, 0] == 0.0


def test_layout_names_report_blocks_and_worst(mlp_s):
    r = fc.check(mlp_s.cost, lambda t, *a: mlp_s.grad(t, *a) * np.where(
        np.arange(t.size) == mlp_s.layout.offsets[2] + 5, 3.0, 1.0), mlp_s.theta, mlp_s.args,
        layout=mlp_s.layout, backend="numba")
    assert r.failing_blocks() == [mlp_s.layout.names[2]]
    w = r.worst(1)[0]
    assert (w.name, tuple(w.index)) == mlp_s.layout.locate(mlp_s.layout.offsets[2] + 5)


# -- taylor_test -----------------------------------------------------------------------------
def test_taylor_test_rates():
    params = {"w": np.linspace(-1, 1.3, 6), "v": np.array([0.4, 0.9])}

    def cost(p):
        return float(np.sum(np.sin(p["w"])) * np.sum(p["v"] ** 2))

    def grad(p):
        s = np.sum(p["v"] ** 2)
        return {"dw": np.cos(p["w"]) * s, "dv": 2 * p["v"] * np.sum(np.sin(p["w"]))}

    good = fc.taylor_test(cost, grad, params)
    assert good.passed and 1.8 < good.rate < 2.2
    assert len(good.residuals) >= 2
    bad = fc.taylor_test(cost, lambda p: {k: -v for k, v in grad(p).items()}, params)
    assert not bad.passed and 0.8 < bad.rate < 1.2
    d = {"w": np.ones(6), "v": np.zeros(2)}
    assert fc.taylor_test(cost, grad, params, direction=d).passed


# -- kinks -----------------------------------------------------------------------------------
def _relu_net(seed=0, exact_kinks=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6, 3))
    W = rng.normal(size=(3, 4))
    if exact_kinks:
        # hidden pre-activations exactly 0 for (example 0, units 0-2): x_0 = 0 and b = 0
        X[0] = 0.0
        b = np.array([0.0, 0.0, 0.0, 0.3])
    else:
        b = rng.normal(size=4)
    v = rng.normal(size=4)
    return {"W": W, "b": b, "v": v}, (X,)


def _relu_cost(p, X):
    h = np.maximum(X @ p["W"] + p["b"], 0.0)
    return float(np.sum((h @ p["v"]) ** 2))


def _relu_grad(p, X):
    z = X @ p["W"] + p["b"]
    h = np.maximum(z, 0.0)
    r = 2 * (h @ p["v"])
    dh = np.outer(r, p["v"]) * (z > 0)
    return {"dW": X.T @ dh, "db": dh.sum(axis=0), "dv": h.T @ r}


def test_correct_relu_network_with_exact_kinks_passes():
    params, args = _relu_net()
    z = args[0] @ params["W"] + params["b"]
    assert np.sum(z == 0.0) >= 3  # the point really sits on kinks
    r = fc.check(_relu_cost, _relu_grad, params, args, backend="serial")
    assert r.passed, r.summary()
    head = r.summary().splitlines()[0].lower()
    assert "bug" not in head and "fail" not in head
    assert r.verdict in ("pass", "warn")
    assert all(w.kind in ("ok", "kink") for w in r.worst(r.n_checked))
    assert r.to_dict()["passed"] is True


def test_wrong_value_on_a_kinked_component_fails():
    params, args = _relu_net()

    def bad(p, X):
        g = _relu_grad(p, X)
        g["db"] = g["db"].copy()
        g["db"][0] += 50.0  # b[0] is on a kink for example 0; this value is none of its sides
        return g

    r = fc.check(_relu_cost, bad, params, args, backend="serial")
    assert not r.passed
    assert 4 + 12 + 0 in r.failed.tolist() or "b" in r.failing_blocks()
    assert any(w.name == "b" and tuple(w.index) == (0,) and w.kind == "fail"
               for w in r.worst(5))


def test_abs_and_max_at_kink_pass():
    params = {"w": np.array([0.0, 1.0, -2.0, 0.0])}

    def cost(p):
        return float(np.sum(np.abs(p["w"])) + max(p["w"][0], p["w"][3]))

    def grad(p):
        g = np.sign(p["w"])
        g[0 if p["w"][0] >= p["w"][3] else 3] += 1.0
        return {"dw": g}

    r = fc.check(cost, grad, params, backend="serial")
    assert r.passed, r.summary()
    assert "bug" not in r.summary().splitlines()[0].lower()


def test_check_layer_never_mutates_inputs_or_args_even_on_error():
    inputs = _xwb()
    param = {"k": 2.0}
    keep = {k: v.copy() for k, v in inputs.items()}

    def fwd(x, w, b, prm):
        x[...] = 0.0  # a hostile layer writes into what it was given
        prm["k"] = 5.0
        return x @ w + b, (x, w)

    def bwd(dout, cache):
        raise RuntimeError("backward crashed")

    with pytest.raises(RuntimeError):
        fc.check_layer(fwd, bwd, inputs, (param,), seed=0)
    for k in inputs:
        np.testing.assert_array_equal(inputs[k], keep[k])
    assert param == {"k": 2.0}


def test_check_layer_float32_inputs_warn_and_stay_float32():
    inputs = {k: v.astype(np.float32) for k, v in _xwb().items()}
    keep = {k: v.copy() for k, v in inputs.items()}
    with pytest.warns(Warning, match="float64"):
        r = fc.check_layer(affine_fwd, affine_bwd, inputs, seed=0)
    assert r.passed
    for k in inputs:
        assert inputs[k].dtype == np.float32
        np.testing.assert_array_equal(inputs[k], keep[k])


def _one_sided(params, X, i, side, h=1e-7):
    p = {k: v.copy() for k, v in params.items()}
    p["b"][i] += side * h
    return (_relu_cost(p, X) - _relu_cost(params, X)) / (side * h)


@pytest.mark.parametrize("where", [0.0, 1.0, -0.5, 1.5, 1.05, -1.0])
def test_kinked_component_value_outside_the_one_sided_slopes_fails(where):
    """b[i] (i < 3) sits on a ReLU kink: its one-sided slopes L, R differ. Values L + t (R - L)
    with t in [0, 1] are subgradients (pass); outside they are wrong (fail)."""
    params, (X,) = _relu_net()
    for i in range(3):
        left, right = _one_sided(params, X, i, -1), _one_sided(params, X, i, 1)
        assert abs(left - right) > 1e-3
        value = left + where * (right - left)
        if where == -1.0:
            value = -right if abs(right) > 1e-2 else right + 2 * (right - left)

        def grad(p, X, i=i, value=value):
            g = _relu_grad(p, X)
            g["db"] = g["db"].copy()
            g["db"][i] = value
            return g

        r = fc.check(_relu_cost, grad, params, (X,), backend="serial")
        kind = next(w.kind for w in r.worst(r.n_checked) if w.name == "b" and w.index == (i,))
        if 0.0 <= where <= 1.0:
            assert r.passed and kind in ("kink", "ok"), (i, value, left, right)
        else:
            assert not r.passed and kind == "fail", (i, value, left, right)
            assert r.failed.tolist() == [12 + i]


def test_njit_mlp_on_exact_kinks_passes_and_a_mask_bug_fails():
    from fastcheck.models import make_mlp

    p = make_mlp("S", seed=0)
    X = p.args[0].copy()
    X[:4] = 0.0  # with b1 = 0 the first hidden pre-activations of 4 examples are exactly 0
    theta = p.theta.copy()
    theta[p.layout.block_slice("b1")] = 0.0
    args = (X, *p.args[1:])
    r = fc.check(p.cost, p.grad, theta, args, layout=p.layout, backend="numba")
    assert r.passed and sum(b.n_kinks for b in r.blocks) > 0
    assert "bug" not in r.summary().splitlines()[0]
    q = make_mlp("S", seed=0, bug="wrong-relu-mask")
    bad = fc.check(q.cost, q.grad, theta, args, layout=p.layout, backend="numba")
    assert not bad.passed and set(bad.failing_blocks()) == {"W1", "b1"}


def group_center_fwd(x, gamma, G):
    n, c = x.shape
    xg = x.reshape(n, G, c // G)
    xc = (xg - xg.mean(axis=2, keepdims=True)).reshape(n, c)
    return xc * gamma, (xc, gamma, G)


def group_center_bwd(dout, cache, bug=False):
    xc, gamma, G = cache
    n, c = xc.shape
    dgamma = (dout * xc).sum(axis=0)
    dxc = (dout * gamma).reshape(n, G, c // G)
    dx = dxc if bug else dxc - dxc.mean(axis=2, keepdims=True)
    return dx.reshape(n, c), dgamma


@pytest.mark.parametrize("G", [2, np.int64(3)])
def test_integer_scalar_input_is_passed_and_not_checked(G):
    """API.md: inputs that are not floating point are passed in their place, not checked
    (a group count among forward's leading arguments, as in spatial_groupnorm_forward)."""
    rng = np.random.default_rng(4)
    inputs = {"x": rng.normal(size=(3, 6)), "gamma": rng.normal(size=6), "G": G}
    r = fc.check_layer(group_center_fwd, group_center_bwd, inputs, seed=0)
    assert r.passed and [b.name for b in r.blocks] == ["x", "gamma"]
    bad = fc.check_layer(group_center_fwd, lambda d, c: group_center_bwd(d, c, bug=True),
                         inputs, seed=0, backend="processes")
    assert bad.failing_blocks() == ["x"]
    assert inputs["G"] == G and type(inputs["G"]) is type(G)


def _relu_cost_complex_safe(p, X):
    z = X @ p["W"] + p["b"]
    h = np.where(z.real > 0, z, 0)
    return np.sum((h @ p["v"]) ** 2)


@pytest.mark.parametrize("method", ["central", "richardson", "complex"])
def test_every_method_passes_exact_kinks_and_fails_a_bug(method):
    params, args = _relu_net()
    r = fc.check(_relu_cost_complex_safe, _relu_grad, params, args, method=method,
                 backend="serial")
    assert r.passed and "bug" not in r.summary().splitlines()[0]

    def bad(p, X):
        g = _relu_grad(p, X)
        g["dv"] = 1.5 * g["dv"]
        return g

    r = fc.check(_relu_cost_complex_safe, bad, params, args, method=method, backend="serial")
    assert r.failing_blocks() == ["v"]
