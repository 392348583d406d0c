"""report.hints: every bug class is named when injected, and correct gradients get no bug hint."""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.models import BUGS, make_mlp


# -- a small two-layer network with L2, params as a dict, written the classic way -----------
def make_net(d=5, h=5, k=5, m=7, act="tanh", seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "W1": rng.normal(size=(d, h)) / np.sqrt(d), "b1": 0.1 * rng.normal(size=h),
        "W2": rng.normal(size=(h, k)) / np.sqrt(h), "b2": 0.1 * rng.normal(size=k),
    }
    X = rng.normal(size=(m, d))
    Y = np.eye(k)[rng.integers(0, k, size=m)]
    return params, X, Y


def _act(z, act):
    return np.tanh(z) if act == "tanh" else np.maximum(z, 0.0)


def _dact(z, a, act):
    return 1.0 - a**2 if act == "tanh" else (z > 0).astype(float)


def net_cost(p, X, Y, lam=0.1, act="tanh", data_scale=1.0):
    m = X.shape[0]
    A1 = _act(X @ p["W1"] + p["b1"], act)
    Z2 = A1 @ p["W2"] + p["b2"]
    Z2 = Z2 - Z2.max(axis=1, keepdims=True)
    logp = Z2 - np.log(np.exp(Z2).sum(axis=1, keepdims=True))
    data = -np.sum(Y * logp) / m * data_scale
    return float(data + lam / (2 * m) * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2)))


def net_grad(p, X, Y, lam=0.1, act="tanh", data_scale=1.0, reg_scale=1.0):
    m = X.shape[0]
    Z1 = X @ p["W1"] + p["b1"]
    A1 = _act(Z1, act)
    Z2 = A1 @ p["W2"] + p["b2"]
    E = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
    dZ2 = (E / E.sum(axis=1, keepdims=True) - Y) / m * data_scale
    dA1 = dZ2 @ p["W2"].T
    dZ1 = dA1 * _dact(Z1, A1, act)
    reg = reg_scale * lam / m
    return {"dW1": X.T @ dZ1 + reg * p["W1"], "db1": dZ1.sum(axis=0),
            "dW2": A1.T @ dZ2 + reg * p["W2"], "db2": dZ2.sum(axis=0), "dZ1": dZ1}


def check_net(edit=None, *, net=None, act="tanh", lam=0.1, grad_kw=None, cost_kw=None,
              **check_kw):
    """Check the network with ``edit(grads, params)`` applied to the correct gradient."""
    params, X, Y = net if net is not None else make_net(act=act)
    grads = net_grad(params, X, Y, lam, act, **(grad_kw or {}))
    if edit is not None:
        edit(grads, params)
    check_kw.setdefault("seed", 0)
    return fc.check(net_cost, grads, params, (X, Y, lam, act), **(cost_kw or {}), **check_kw)


def bug_hints(report):
    """The hints that claim a bug (everything but the note on kinks)."""
    return [h for h in report.hints if "kink" not in h]


def only_hint(report):
    hints = bug_hints(report)
    assert not report.passed, report.summary()
    assert len(hints) == 1, report.summary()
    return hints[0]


def fitted(text, name):
    """The number after ``name = `` in a hint."""
    return float(re.search(rf"{name} = (-?[0-9.e+-]+)", text).group(1))


# -- correct gradients -----------------------------------------------------------------------
@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("shape", [(5, 5, 5), (6, 4, 3), (3, 8, 2)])
def test_correct_gradients_get_no_bug_hint(act, seed, shape):
    d, h, k = shape
    report = check_net(net=make_net(d, h, k, act=act, seed=seed), act=act)
    assert report.passed, report.summary()
    assert bug_hints(report) == []


def test_correct_gradient_sampled_and_without_regularisation_gets_no_hint():
    report = check_net(lam=0.0, sample=20)
    assert report.passed and report.hints == ()


def test_correct_builtin_mlp_gets_no_bug_hint():
    model = make_mlp("S", seed=3)
    report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                      backend="serial")
    assert report.passed and bug_hints(report) == []


def test_kinks_get_a_harmless_note_and_no_bug_hint():
    params, X, Y = make_net(act="relu", seed=1)
    # Put units 0 and 2 exactly on their kink for the first example.
    for j in (0, 2):
        params["b1"][j] = -(X[0] @ params["W1"][:, j])
    report = check_net(net=(params, X, Y), act="relu")
    assert report.passed, report.summary()
    assert np.count_nonzero(report.kinds == "kink") > 0
    assert bug_hints(report) == []
    (note,) = report.hints
    assert "kink" in note and "harmless" in note and "b1" in note and "away from" in note


# -- regularisation --------------------------------------------------------------------------
def test_missing_regularisation_in_every_weight_block_is_one_hint():
    m, lam = 7, 0.1
    text = only_hint(check_net(grad_kw={"reg_scale": 0.0}, lam=lam))
    assert text.startswith("W1, W2:")
    assert "regularisation term missing" in text
    assert fitted(text, "c") == pytest.approx(-lam / m, rel=1e-3)


def test_missing_regularisation_in_one_block():
    def edit(g, p):
        g["dW2"] -= 0.1 / 7 * p["W2"]

    text = only_hint(check_net(edit))
    assert text.startswith("W2:") and "missing" in text
    assert fitted(text, "c") == pytest.approx(-0.1 / 7, rel=1e-3)


def test_too_large_regularisation_weight():
    def edit(g, p):  # lam * W instead of lam / m * W
        g["dW1"] += (0.1 - 0.1 / 7) * p["W1"]

    text = only_hint(check_net(edit))
    assert text.startswith("W1:") and "too large" in text
    assert fitted(text, "c") == pytest.approx(0.1 - 0.1 / 7, rel=1e-3)


# -- constant factors ------------------------------------------------------------------------
@pytest.mark.parametrize(("block", "k", "words"), [
    ("b1", 2.0, "factor 2"), ("W1", 0.5, "factor 1/2"), ("W2", -1.0, "sign is flipped"),
    ("b2", 3.7, "constant scale"),
])
def test_constant_factor_in_one_block(block, k, words):
    def edit(g, p):
        g["d" + block] *= k

    text = only_hint(check_net(edit))
    assert text.startswith(f"{block}:") and words in text
    assert f"{k:#.4g} x the numeric one" in text


def test_same_factor_in_two_of_four_blocks():
    def edit(g, p):
        g["dW1"] *= 2.0
        g["db1"] *= 2.0

    text = only_hint(check_net(edit))
    assert text.startswith("W1, b1:") and "2.000 x" in text and "each" in text


def test_mean_vs_sum_in_every_block_is_one_normalisation_hint():
    # cost: mean over the batch (m = 7); gradient: the sum. No regularisation here.
    text = only_hint(check_net(lam=0.0, grad_kw={"data_scale": 7.0}))
    assert text.startswith("every block")
    assert "7.000 x" in text and "normalised differently" in text and "mean" in text


def test_mean_vs_sum_with_a_correct_penalty_still_names_the_factor():
    report = check_net(grad_kw={"data_scale": 7.0})
    text = only_hint(report)
    assert text.startswith("every block") and "7.000 x" in text
    assert "regularisation" in text  # W blocks: the penalty is scaled differently


def test_gradient_divided_by_the_batch_once_too_often():
    text = only_hint(check_net(lam=0.0, grad_kw={"data_scale": 1 / 7}))
    assert "every block" in text and "1/7" in text


def test_wrong_sign_everywhere():
    def edit(g, p):
        for key in ("dW1", "db1", "dW2", "db2"):
            g[key] *= -1

    text = only_hint(check_net(edit))
    assert text.startswith("every block") and "wrong sign everywhere" in text


def test_factor_is_found_from_a_sample():
    model = make_mlp("M", bug="sign-flip", seed=0)
    report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                      sample=300, seed=0, backend="serial")
    assert report.hints and report.hints[0].startswith("W2:")
    assert "-1.000 x" in report.hints[0]


# -- structural bugs -------------------------------------------------------------------------
def test_clipped_gradient():
    def edit(g, p):
        c = 0.5 * np.abs(g["dW1"]).max()
        g["dW1"] = np.clip(g["dW1"], -c, c)

    text = only_hint(check_net(edit))
    assert text.startswith("W1:") and "saturates" in text and "clipped" in text


def test_transposed_square_block():
    def edit(g, p):
        g["dW2"] = g["dW2"].T.copy()

    text = only_hint(check_net(edit))
    assert text.startswith("W2 (5, 5):") and "transpose" in text


def test_transposed_then_flattened_non_square_block():
    def edit(g, p):
        g["dW1"] = g["dW1"].T.ravel().reshape(g["dW1"].shape)

    text = only_hint(check_net(edit, net=make_net(6, 4, 3)))
    assert text.startswith("W1 (6, 4):") and "reshaped" in text


def test_swapped_blocks():
    def edit(g, p):
        g["db1"], g["db2"] = g["db2"], g["db1"]

    text = only_hint(check_net(edit))
    assert text.startswith("b1 and b2:") and "swapped" in text


def test_block_copied_from_another():
    def edit(g, p):
        g["db1"] = g["db2"].copy()

    text = only_hint(check_net(edit))
    assert text.startswith("b1:") and "numeric gradient of b2" in text


def test_zero_gradient_block():
    def edit(g, p):
        g["dW2"] = np.zeros_like(g["dW2"])

    text = only_hint(check_net(edit, lam=0.0))
    assert text.startswith("W2:") and "missing" in text and "is 0 at all 25" in text


def test_partly_zero_gradient():
    def edit(g, p):
        g["dW1"][:, :2] = 0.0

    text = only_hint(check_net(edit))
    assert text.startswith("W1:") and "0 at all 10 failing" in text


def test_errors_in_one_row():
    def edit(g, p):
        g["dW1"][2, :] *= 1.5

    text = only_hint(check_net(edit))
    assert text.startswith("W1:") and "1 row (W1[2, :])" in text


def test_errors_in_one_column():
    def edit(g, p):
        g["dW2"][:, 3] += 1e-2

    text = only_hint(check_net(edit))
    assert text.startswith("W2:") and "1 column (W2[:, 3])" in text


def test_isolated_components_are_listed():
    def edit(g, p):
        g["dW2"][1, 3] += 1e-3
        g["dW2"][4, 0] -= 1e-3

    text = only_hint(check_net(edit))
    assert text.startswith("W2:") and "only 2 of 25" in text
    assert "W2[1, 3]" in text and "W2[4, 0]" in text


def test_nonfinite_cost_names_the_block():
    w = np.array([1e-9, 0.5, 2.0])
    v = np.array([1.0, -1.0])

    def cost(p):
        with np.errstate(invalid="ignore"):
            return float(np.sum(np.log(p["w"])) + np.sum(p["v"] ** 2))

    report = fc.check(cost, {"w": 1 / w, "v": 2 * v}, {"w": w, "v": v})
    assert not report.passed
    (text,) = report.hints
    assert text.startswith("w:") and "NaN or inf" in text and "w[0]" in text


def test_most_specific_hint_first():
    def edit(g, p):
        g["db1"], g["db2"] = g["db2"], g["db1"]
        g["dW2"][1, 3] += 1e-3

    hints = check_net(edit, grad_kw={"reg_scale": 0.0}).hints
    assert hints[0].startswith("b1 and b2:")
    assert "regularisation" in hints[1] and hints[1].startswith("W1")


# -- the built-in MLP ------------------------------------------------------------------------
EXPECTED = {
    "missing-regularization": ("W1, W2, W3:", "regularisation term missing"),
    "bias-factor-2": ("b1:", "factor 2"),
    "sign-flip": ("W2:", "sign is flipped"),
    "one-element": ("W2:", "W2[1, 3]"),
    "transposed": ("W1 (20, 16):", "transposed"),
    "mean-vs-sum": ("every block", "32.00 x"),
    "clipped": ("W1:", "clipped"),
    "swapped": ("b1 and b2:", "swapped"),
}


@pytest.mark.parametrize("bug", list(EXPECTED))
def test_builtin_mlp_bugs_get_the_right_first_hint(bug):
    model = make_mlp("SQ" if bug == "swapped" else "S", bug=bug, seed=0)
    report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                      backend="serial")
    start, words = EXPECTED[bug]
    assert report.hints, report.summary()
    assert report.hints[0].startswith(start) and words in report.hints[0], report.hints
    assert "hint: " + report.hints[0] in report.summary().splitlines()[2]


def test_every_builtin_bug_is_covered_or_known_unexplained():
    assert set(EXPECTED) | {"wrong-relu-mask"} == set(BUGS)


# -- one-component blocks ------------------------------------------------------------------
def _one_output_net(m=10, seed=0):
    """3 layers with a single sigmoid output: b3 has one component; the cost is the mean
    cross-entropy over a batch of m."""
    rng = np.random.default_rng(seed)
    params = {"W1": rng.normal(size=(4, 6)) / 2, "b1": 0.1 * rng.normal(size=6),
              "W2": rng.normal(size=(6, 3)) / 2, "b2": 0.1 * rng.normal(size=3),
              "W3": rng.normal(size=(3, 1)), "b3": np.array([0.2])}
    X = rng.normal(size=(m, 4))
    y = rng.integers(0, 2, size=(m, 1)).astype(float)
    return params, X, y


def _one_output_cost(p, X, y):
    A1 = np.tanh(X @ p["W1"] + p["b1"])
    A2 = np.tanh(A1 @ p["W2"] + p["b2"])
    z = A2 @ p["W3"] + p["b3"]
    return float(np.mean(np.logaddexp(0, z) - y * z))


def _one_output_grad(p, X, y, b3_scale=1.0):
    m = X.shape[0]
    A1 = np.tanh(X @ p["W1"] + p["b1"])
    A2 = np.tanh(A1 @ p["W2"] + p["b2"])
    dz = (1 / (1 + np.exp(-(A2 @ p["W3"] + p["b3"]))) - y) / m
    dZ2 = dz @ p["W3"].T * (1 - A2**2)
    dZ1 = dZ2 @ p["W2"].T * (1 - A1**2)
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0),
            "W3": A2.T @ dz, "b3": dz.sum(axis=0) * b3_scale}


def test_one_component_block_off_by_the_batch_size_is_named():
    params, X, y = _one_output_net(m=10)
    grads = _one_output_grad(params, X, y, b3_scale=10.0)  # the sum where the cost is a mean
    report = fc.check(_one_output_cost, grads, params, (X, y))
    assert list(report.failing_blocks()) == ["b3"]
    hint = only_hint(report)
    assert hint.startswith("b3:") and "10.00 x the numeric" in hint
    assert "sum over 10 terms" in hint and "1 checked component" in hint


@pytest.mark.parametrize(("scale", "words"), [(-1.0, "sign is flipped"), (0.5, "1/2 slip"),
                                              (1 / 10, "divided by 10")])
def test_one_component_block_clean_factors(scale, words):
    params, X, y = _one_output_net(m=10)
    grads = _one_output_grad(params, X, y, b3_scale=scale)
    assert words in only_hint(fc.check(_one_output_cost, grads, params, (X, y)))


@pytest.mark.parametrize("scale", [1.37, 0.8, 10.3, -2.0])
def test_one_component_block_with_an_unclean_ratio_gets_no_factor_hint(scale):
    params, X, y = _one_output_net(m=10)
    grads = _one_output_grad(params, X, y, b3_scale=scale)
    report = fc.check(_one_output_cost, grads, params, (X, y))
    assert list(report.failing_blocks()) == ["b3"]
    assert not any(" x the numeric" in h for h in report.hints), report.hints


def test_correct_one_output_net_gets_no_hint():
    params, X, y = _one_output_net(m=10)
    report = fc.check(_one_output_cost, _one_output_grad(params, X, y), params, (X, y))
    assert report.passed and report.hints == ()


def test_diagnose_imports_scipy_lazily():
    # numba may load scipy.linalg on its own; diagnose itself only imports it in the fit
    from fastcheck import _residuals, diagnose

    assert not hasattr(diagnose, "scipy") and not hasattr(_residuals, "scipy")


def test_a_fit_over_few_components_is_called_a_weak_clue():
    """A per-channel scale of 3 components and an upsampling backward that subsamples dout
    instead of summing it: the residual fits "regularisation missing" to 99.98 %, over
    3 components only. The hint says how weak that is; over many components it does not."""
    rng = np.random.default_rng(9)
    x, t = rng.normal(size=(2, 3, 3, 3)), rng.normal(size=(2, 3, 6, 6))

    def up(p):
        return (x * p["s"][None, :, None, None]).repeat(2, 2).repeat(2, 3)

    def cost(p):
        u = up(p)
        return float(np.sum(u * t) + 0.1 * np.sum(u**2))

    def subsampling(p):
        dz = (t + 0.2 * up(p))[:, :, ::2, ::2]
        return {"s": (dz * x).sum(axis=(0, 2, 3))}

    report = fc.check(cost, subsampling, {"s": rng.normal(size=3)}, backend="serial")
    assert not report.passed
    assert any("weak clue" in h for h in report.hints), report.hints
    w = rng.normal(size=40)

    def reg_missing(v):
        return {"w": 2 * v["w"]}  # of sum(w^2) + 0.5 * 0.1 * sum(w^2): the 0.1 * w forgotten

    big = fc.check(lambda v: float(np.sum(v["w"] ** 2) * 1.05), reg_missing, {"w": w})
    assert any("regularisation" in h for h in big.hints), big.hints
    assert not any("weak clue" in h for h in big.hints)


def test_a_directional_report_names_the_component_it_located():
    """Directional mode checks only the components it locates, so the 'isolated' hint (a
    block checked through) never fired: the located component is named all the same."""
    from fastcheck.models import make_mlp

    m = make_mlp("S", bug="one-element", seed=0)
    report = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, mode="directional",
                      seed=0)
    assert not report.passed
    names = [report.layout.label(int(i)) for i in report.failed]
    assert any("located by group testing" in h and names[0] in h for h in report.hints), (
        report.hints)
    right = make_mlp("S", seed=0)
    ok = fc.check(right.cost, right.grad, right.theta, right.args, layout=right.layout,
                  mode="directional", seed=0)
    assert ok.passed and not any("located by group testing" in h for h in ok.hints)
