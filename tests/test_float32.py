"""float32 models are checked honestly, both ways: in float64 when the cost follows its
input's dtype, with steps and a floor from the measured noise when it computes in float32
whatever it is given. Correct gradients never false-alarm; factor-2 and missing-
regularisation bugs still fail; the caller's float32 arrays are never changed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastcheck as fc
from fastcheck import _precision
from tests import _layers as L

LAM = 0.1
SEEDS = range(5)


# -- a float32 MLP, written the way numpy code is -------------------------------------------
def make_mlp(seed: int):
    rng = np.random.default_rng(seed)
    params = {"W1": rng.normal(0, 0.5, (8, 5)), "b1": rng.normal(0, 0.1, 8),
              "W2": rng.normal(0, 0.5, (3, 8)), "b2": rng.normal(0, 0.1, 3)}
    x = rng.normal(size=(5, 16))
    y = np.eye(3)[:, rng.integers(0, 3, 16)]
    f32 = np.float32
    return {k: v.astype(f32) for k, v in params.items()}, x.astype(f32), y.astype(f32)


def _cast(p, x, y, dtype):
    if dtype is None:  # follow the input's dtype
        return p, x, y
    return {k: v.astype(dtype) for k, v in p.items()}, x.astype(dtype), y.astype(dtype)


def forward(p, x, y, dtype=None):
    p, x, y = _cast(p, x, y, dtype)
    a1 = np.tanh(p["W1"] @ x + p["b1"][:, None])
    z2 = p["W2"] @ a1 + p["b2"][:, None]
    z2 = z2 - z2.max(axis=0)
    prob = np.exp(z2) / np.exp(z2).sum(axis=0)
    reg = LAM / 2 * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
    return -np.sum(y * np.log(prob)) / x.shape[1] + reg, a1, prob


def loss(p, x, y, dtype=None):
    """The cost as numpy code returns it: a scalar of the computation's dtype."""
    return forward(p, x, y, dtype)[0]


def grads(p, x, y, dtype=None, bug=None):
    _, a1, prob = forward(p, x, y, dtype)
    p, x, y = _cast(p, x, y, dtype)
    dz2 = (prob - y) / x.shape[1]
    dw2 = dz2 @ a1.T + (0.0 if bug == "reg" else LAM) * p["W2"]  # reg: the term forgotten
    dz1 = (p["W2"].T @ dz2) * (1 - a1**2)
    dw1 = (dz1 @ x.T + LAM * p["W1"]) * (2.0 if bug == "x2" else 1.0)  # x2: a factor 2 slip
    return {"dW1": dw1, "db1": dz1.sum(axis=1), "dW2": dw2, "db2": dz2.sum(axis=1)}


def quiet_check(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fc.check(*args, **kwargs)


# -- the two ways -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_cost_that_follows_its_dtype_is_checked_in_float64(seed):
    p, x, y = make_mlp(seed)
    before = {k: v.copy() for k, v in p.items()}
    with pytest.warns(UserWarning, match="float64"):
        report = fc.check(lambda q: float(loss(q, x, y)), lambda q: grads(q, x, y), p)
    assert report.passed, report.summary()
    assert report.relative_error < 1e-7  # float64 all the way
    note = report.notes[0]
    assert "follows its input's dtype" in note and "float64" in note
    assert "float64" in report.summary()
    for k in p:  # the caller's float32 arrays: same dtype, same values
        assert p[k].dtype == np.float32 and np.array_equal(p[k], before[k])


def test_float32_gradient_array_is_accepted_in_the_float64_check():
    p, x, y = make_mlp(0)
    report = quiet_check(lambda q: float(loss(q, x, y)), grads(p, x, y), p)
    assert report.passed and report.relative_error < 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_cost_that_computes_in_float32_uses_its_measured_noise(seed):
    p, x, y = make_mlp(seed)
    before = {k: v.copy() for k, v in p.items()}
    f32 = np.float32
    with pytest.warns(UserWarning, match="float64"):
        report = fc.check(lambda q: float(loss(q, x, y, f32)), lambda q: grads(q, x, y, f32),
                          p, seed=seed)
    assert report.passed, report.summary()
    note = report.notes[0]
    assert "computes in float32" in note and "measured noise" in note
    assert "float64" in note
    # steps from the noise: far above the float64 rule's cbrt(eps) ~ 6e-6
    assert np.min(report.steps) > 1e-4
    # never cries wolf: Ng's float64 bands do not turn a correct float32 check into WARN
    assert report.noise_floor and report.verdict == "pass"
    first = report.summary().splitlines()[0]
    assert first.startswith("fastcheck PASS") and "measured noise" in first
    assert "bug" not in first and "look again" not in first
    for k in p:
        assert p[k].dtype == np.float32 and np.array_equal(p[k], before[k])


def test_a_float32_return_value_is_detected_from_its_dtype():
    p, x, y = make_mlp(0)
    f32 = np.float32
    with pytest.warns(UserWarning, match="float64"):
        report = fc.check(lambda q: loss(q, x, y, f32), grads(p, x, y, f32), p)
    assert report.passed, report.summary()
    assert "it returned a float32 value" in report.notes[0]
    # float64 params and a float32 value: the same path
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    with pytest.warns(UserWarning, match="float64"):
        report = fc.check(lambda q: loss(q, x, y, f32), grads(p, x, y, f32), p64)
    assert report.passed and "a cost that returns float32" in report.notes[0]


@pytest.mark.parametrize("bug, block", [("x2", "W1"), ("reg", "W2")])
@pytest.mark.parametrize("dtype", [None, np.float32], ids=["follows", "float32"])
@pytest.mark.parametrize("seed", SEEDS)
def test_bugs_still_fail_in_float32(bug, block, dtype, seed):
    p, x, y = make_mlp(seed)
    report = quiet_check(lambda q: float(loss(q, x, y, dtype)),
                         grads(p, x, y, dtype, bug=bug), p, seed=seed)
    assert not report.passed
    assert [b.name for b in report.blocks if b.n_failed] == [block]


def test_float64_models_are_unaffected():
    p, x, y = make_mlp(0)
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = fc.check(lambda q: float(loss(q, x64, y64)), lambda q: grads(q, x64, y64),
                          p64)
    assert report.passed and not any("float32" in n for n in report.notes)
    assert report.evaluations == 2 + 2 * report.n_params  # no noise probe for float64


def test_noise_probe_is_counted_in_evaluations():
    p, x, y = make_mlp(0)
    report = quiet_check(lambda q: float(loss(q, x, y, np.float32)),
                         grads(p, x, y, np.float32), p)
    probes = (_precision.PROBE_COMPONENTS + _precision.PROBE_DIRECTIONS) \
        * _precision.PROBE_POINTS
    assert report.evaluations >= 2 + probes + 2 * report.n_params


def test_float16_is_still_refused():
    with pytest.raises(TypeError, match="float64"):
        fc.check(lambda v: float(v @ v), np.ones(3), np.ones(3, dtype=np.float16))


# -- the noise estimate ---------------------------------------------------------------------
def test_noise_estimate_separates_float64_from_float32():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=20)

    def quartic(v, dtype):
        v = v.astype(dtype)
        return float(np.sum(v**2) + 0.1 * np.sum(v**4) + 3.0)

    s64, scale64, n = _precision.estimate_noise(lambda v: quartic(v, np.float64), theta)
    s32, scale32, _ = _precision.estimate_noise(lambda v: quartic(v, np.float32), theta)
    assert n == (_precision.PROBE_COMPONENTS + _precision.PROBE_DIRECTIONS) * 8
    assert s64 < _precision.LOW_PRECISION_NOISE * scale64 < s32
    assert 1e-9 * scale32 < s32 < 1e-5 * scale32


# -- float32 layers ---------------------------------------------------------------------------
def affine32_forward(x, w, b):
    """A layer that computes in float32 whatever it is given."""
    f32 = np.float32
    return L.affine_forward(x.astype(f32), w.astype(f32), b.astype(f32))


def batchnorm32_forward(x, gamma, beta, bn_param):
    f32 = np.float32
    return L.batchnorm_forward(x.astype(f32), gamma.astype(f32), beta.astype(f32), bn_param)


LAYERS32 = {
    "affine": (affine32_forward, L.affine_backward, "affine", ()),
    "batchnorm": (batchnorm32_forward, L.batchnorm_backward_alt, "batchnorm_alt",
                  ({"eps": 1e-5},)),
}


def _inputs32(case: str, seed: int) -> dict:
    inputs = L.CASES[case].make_inputs(np.random.default_rng(seed))
    return {k: v.astype(np.float32) for k, v in inputs.items()}


@pytest.mark.parametrize("name", sorted(LAYERS32))
@pytest.mark.parametrize("seed", SEEDS)
def test_float32_layer_both_ways(name, seed):
    fwd32, bwd, case, args = LAYERS32[name]
    inputs = _inputs32(case, seed)
    before = {k: v.copy() for k, v in inputs.items()}
    # the course layer follows its input's dtype: checked in float64
    with pytest.warns(UserWarning, match="float64"):
        follows = fc.check_layer(L.CASES[case].forward, bwd, inputs, args, seed=seed)
    assert follows.passed and "follows its input's dtype" in follows.notes[0]
    # the same layer computing in float32: tolerances from its noise
    with pytest.warns(UserWarning, match="float64"):
        noisy = fc.check_layer(fwd32, bwd, inputs, args, seed=seed)
    assert noisy.passed, noisy.summary()
    assert "computes in float32" in noisy.notes[0]
    for k in inputs:
        assert inputs[k].dtype == np.float32 and np.array_equal(inputs[k], before[k])


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_layer_bug_still_fails(seed):
    inputs = _inputs32("affine", seed)
    with pytest.warns(UserWarning, match="float64"):
        report = fc.check_layer(affine32_forward, L.CASES["affine"].buggy(), inputs,
                                seed=seed)
    assert [b.name for b in report.blocks if b.n_failed] == ["b"]


def test_directional_mode_keeps_the_float64_note_and_takes_the_noisy_path():
    p, x, y = make_mlp(0)
    report = quiet_check(lambda q: float(loss(q, x, y)), lambda q: grads(q, x, y), p,
                         mode="directional")
    assert report.passed and "float64" in report.notes[0]
    noisy = quiet_check(lambda q: float(loss(q, x, y, np.float32)),
                        lambda q: grads(q, x, y, np.float32), p, mode="directional")
    assert noisy.verdict == "pass" and noisy.noise_floor and "float64" in noisy.notes[0]


def _cast32(forward):
    """The layer computing in float32 whatever it is given (integer inputs untouched)."""
    def forward32(*args):
        return forward(*(a.astype(np.float32) if isinstance(a, np.ndarray)
                         and a.dtype.kind == "f" else a for a in args))
    return forward32


@pytest.mark.parametrize("name", sorted(L.CASES))
def test_every_layer_computing_in_float32_passes_and_its_bug_fails(name):
    case = L.CASES[name]
    for seed in range(3):
        inputs = {k: v.astype(np.float32) if v.dtype.kind == "f" else v
                  for k, v in case.make_inputs(np.random.default_rng(seed)).items()}
        good = quiet_check_layer(_cast32(case.forward), case.backward, inputs, case.args,
                                 seed=seed)
        assert good.passed and "computes in float32" in good.notes[0], good.summary()
        bad = quiet_check_layer(_cast32(case.forward), case.buggy(), inputs, case.args,
                                seed=seed)
        assert [b.name for b in bad.blocks if b.n_failed] == [case.bug_input], bad.summary()


def quiet_check_layer(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fc.check_layer(*args, **kwargs)


def test_the_warning_points_at_the_callers_line():
    inputs = _inputs32("affine", 0)
    with pytest.warns(UserWarning, match="float64") as caught:
        fc.check_layer(L.affine_forward, L.affine_backward, inputs, seed=0)
    assert caught[0].filename == __file__
    p, x, y = make_mlp(0)
    with pytest.warns(UserWarning, match="float64") as caught:
        fc.check(lambda q: float(loss(q, x, y)), lambda q: grads(q, x, y), p)
    assert caught[0].filename == __file__


@pytest.mark.parametrize("seed", range(3))
def test_taylor_test_floor_uses_the_measured_noise(seed):
    p, x, y = make_mlp(seed)
    f32 = np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # seeded directions: along some random directions (about 1 in 45 here) the noise
        # of a float32 cost leaves only two steps to fit, and the rate is then rougher
        good = fc.taylor_test(lambda q: float(loss(q, x, y, f32)),
                              lambda q: grads(q, x, y, f32), p, seed=seed)
        bad = fc.taylor_test(lambda q: float(loss(q, x, y, f32)),
                             lambda q: grads(q, x, y, f32, bug="x2"), p, seed=seed)
    assert good.passed and abs(good.rate - 2) < 0.2
    assert not bad.passed and abs(bad.rate - 1) < 0.2


def test_a_cost_whose_precision_changes_between_calls_is_refused():
    calls = []

    def cost(v):
        calls.append(1)
        value = float(v @ v)  # exactly representable in float32 at theta
        return value if len(calls) == 1 else np.float32(value)

    with pytest.raises(fc.NondeterministicCostError, match="float64 then a float32"):
        fc.check(cost, lambda v: 2 * v, np.array([1.0, 2.0]))
