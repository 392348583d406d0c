"""fc.check as API.md states it: params forms, grad forms, args, options, errors, no mutation.

Written from the contract alone (docs in /work/shared/API.md), with a course-style numpy
MLP on a dict and the built-in njit MLP, and real bugs injected into the backward.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc

from . import _course as c


def _snapshot(params):
    if isinstance(params, dict):
        return {k: v.copy() for k, v in params.items()}
    return params.copy()


def _assert_same(before, after):
    if isinstance(before, dict):
        assert list(before) == list(after)
        for k in before:
            np.testing.assert_array_equal(before[k], after[k])
            assert before[k].dtype == after[k].dtype
    else:
        np.testing.assert_array_equal(before, after)


# -- params forms --------------------------------------------------------------------------
def test_dict_params_with_d_prefixed_grads_and_ignored_caches():
    params, args = c.problem()
    grads = c.backward(params, *args)
    assert {"dZ1", "dA1"} <= set(grads)  # the caches a course returns are present ...
    report = fc.check(c.cost, c.backward, params, args, backend="serial")
    assert report.passed and report.verdict == "pass"  # ... and ignored
    assert [b.name for b in report.blocks] == list(params)
    assert report.n_params == report.n_checked == sum(v.size for v in params.values())


def test_dict_grad_as_array_mapping_with_plain_keys():
    params, args = c.problem()
    grads = {k[1:]: v for k, v in c.backward(params, *args).items()
             if k[1:] in params}
    report = fc.check(c.cost, grads, params, args, backend="serial")
    assert report.passed


def test_flat_params_flat_grad_and_layout_give_block_names():
    params, args = c.problem()
    layout = fc.Layout({k: v.shape for k, v in params.items()})
    theta = layout.flatten(params)

    def flat_cost(t, X, Y, lambd):
        return c.cost(layout.unflatten(t), X, Y, lambd)

    def flat_grad(t, X, Y, lambd):
        g = c.backward(layout.unflatten(t), X, Y, lambd)
        return layout.flatten({k: g["d" + k] for k in layout.names})

    plain = fc.check(flat_cost, flat_grad, theta, args, backend="serial")
    assert plain.passed and plain.n_params == theta.size
    named = fc.check(flat_cost, flat_grad, theta, args, layout=layout, backend="serial")
    assert [b.name for b in named.blocks] == list(params)
    bad = c.backward_bug("factor-2")

    def flat_bad(t, X, Y, lambd):
        g = bad(layout.unflatten(t), X, Y, lambd)
        return layout.flatten({k: g["d" + k] for k in layout.names})

    report = fc.check(flat_cost, flat_bad, theta, args, layout=layout, backend="serial")
    assert not report.passed
    assert report.failing_blocks() == ["b1"]
    assert {w.name for w in report.worst(4)} == {"b1"}


def test_flat_grad_with_dict_params_is_accepted():
    params, args = c.problem()
    layout = fc.Layout({k: v.shape for k, v in params.items()})
    g = c.backward(params, *args)
    flat = layout.flatten({k: g["d" + k] for k in layout.names})
    assert fc.check(c.cost, flat, params, args, backend="serial").passed


def test_cost_receives_a_mapping_of_the_same_names():
    params, args = c.problem()
    seen = []

    def cost(p, *a):
        seen.append((type(p), tuple(p), tuple(v.shape for v in p.values())))
        return c.cost(p, *a)

    fc.check(cost, c.backward, params, args, backend="serial", sample=8, seed=0)
    names = tuple(params)
    shapes = tuple(v.shape for v in params.values())
    assert seen and all(isinstance({}, t) or issubclass(t, dict) or hasattr(t, "keys")
                        for t, _, _ in seen)
    assert all(n == names and s == shapes for _, n, s in seen)


def test_grad_true_cost_returns_loss_and_grads():
    params, args = c.problem()
    report = fc.check(lambda p, *a: (c.cost(p, *a), c.backward(p, *a)), True, params, args,
                      backend="serial")
    assert report.passed

    def buggy(p, *a):
        return c.cost(p, *a), c.backward_bug("sign-flip")(p, *a)

    assert fc.check(buggy, True, params, args, backend="serial").failing_blocks() == ["W2"]


def test_args_passed_unchanged_to_cost_and_grad():
    params, args = c.problem()
    marker = object()
    got = {"cost": set(), "grad": set()}

    def cost(p, X, Y, lambd, extra):
        got["cost"].add(id(extra))
        return c.cost(p, X, Y, lambd)

    def grad(p, X, Y, lambd, extra):
        got["grad"].add(id(extra))
        return c.backward(p, X, Y, lambd)

    assert fc.check(cost, grad, params, (*args, marker), backend="serial").passed
    assert got == {"cost": {id(marker)}, "grad": {id(marker)}}


# -- real bugs: each fails, in the right blocks, and the hint names it ----------------------
HINT_WORDS = {"missing-regularization": "regulari", "factor-2": "factor 2",
              "transposed": "transpose", "swapped": "swapped", "sign-flip": "sign",
              "mean-vs-sum": "sum"}


@pytest.mark.parametrize("bug", c.BUGS)
def test_injected_bug_fails_and_is_named(bug):
    params, args = c.problem()
    before = _snapshot(params)
    report = fc.check(c.cost, c.backward_bug(bug), params, args, backend="serial")
    assert not report.passed and report.verdict == "fail"
    assert set(report.failing_blocks()) == c.AFFECTED[bug]
    assert report.failed.size > 0
    assert any(HINT_WORDS[bug] in h.lower() for h in report.hints), report.hints
    head = report.summary().splitlines()[0]
    assert "FAIL" in head
    if report.relative_error > 1e-3:  # Ng's band, named on the first line
        assert "almost certainly a bug" in head
    for name in c.AFFECTED[bug]:
        assert name in report.summary()
    with pytest.raises(fc.GradientCheckError):
        report.raise_if_failed()
    _assert_same(before, params)


def test_njit_mlp_numba_backend_and_bugs(mlp_s):
    report = fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, layout=mlp_s.layout,
                      backend="numba", threads=1)
    assert report.passed and report.backend == "numba"
    auto = fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, layout=mlp_s.layout)
    assert auto.backend == "numba"
    from fastcheck.models import make_mlp

    for bug in ("missing-regularization", "one-element", "transposed"):
        p = make_mlp("S", bug=bug, seed=0)
        r = fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout, backend="numba")
        assert not r.passed
        assert set(r.failing_blocks()) == p.affected()


# -- never mutate the caller's arrays ------------------------------------------------------
@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
def test_no_mutation_when_cost_raises(backend):
    params, args = c.problem()
    before = _snapshot(params)
    calls = []

    def cost(p, *a):
        calls.append(1)
        if len(calls) > 7:
            raise RuntimeError("boom")
        return c.cost(p, *a)

    with pytest.raises((fc.FastcheckError, RuntimeError)):
        fc.check(cost, c.backward, params, args, backend=backend)
    _assert_same(before, params)


def test_no_mutation_of_flat_theta_grad_or_args_on_pass_and_bad_input(mlp_s):
    theta = mlp_s.theta.copy()
    g = mlp_s.grad(theta, *mlp_s.args)
    g0 = g.copy()
    args0 = [a.copy() if isinstance(a, np.ndarray) else a for a in mlp_s.args]
    fc.check(mlp_s.cost, g, theta, mlp_s.args, backend="numba")
    np.testing.assert_array_equal(theta, mlp_s.theta)
    np.testing.assert_array_equal(g, g0)
    for a, b in zip(args0, mlp_s.args):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        fc.check(mlp_s.cost, g[:-1], theta, mlp_s.args)
    np.testing.assert_array_equal(theta, mlp_s.theta)


def test_cost_that_mutates_its_input_does_not_reach_the_caller():
    params, args = c.problem()
    before = _snapshot(params)

    def cost(p, *a):
        value = c.cost(p, *a)
        p["W1"][...] = 0.0  # a hostile cost writes into the view it was given
        return value

    try:
        fc.check(cost, c.backward, params, args, backend="serial")
    except Exception:
        pass
    _assert_same(before, params)


# -- Report attributes ---------------------------------------------------------------------
def test_report_attributes_types_full():
    params, args = c.problem()
    r = fc.check(c.cost, c.backward_bug("factor-2"), params, args, backend="serial", seed=3)
    n = r.n_params
    assert isinstance(r.passed, bool) and r.passed is False
    assert r.verdict in ("pass", "warn", "fail")
    assert isinstance(r.relative_error, float)
    assert r.indices.dtype == np.int64 and r.indices.ndim == 1
    np.testing.assert_array_equal(r.indices, np.arange(n))
    for name in ("analytic", "numeric", "abs_errors", "rel_errors"):
        arr = getattr(r, name)
        assert arr.shape == (r.n_checked,), name
    a, nu = r.analytic, r.numeric
    expect = np.linalg.norm(a - nu) / (np.linalg.norm(a) + np.linalg.norm(nu))
    assert r.relative_error == pytest.approx(expect, rel=1e-9)
    np.testing.assert_allclose(r.abs_errors, np.abs(a - nu))
    assert r.failure_rate_bound is None
    assert set(r.failed.tolist()) <= set(r.indices.tolist())
    assert np.all(np.diff(r.failed) > 0) if r.failed.size > 1 else True
    for b in r.blocks:
        assert isinstance(b, fc.BlockReport)
        assert b.name in params and tuple(b.shape) == params[b.name].shape
        assert b.n_params == params[b.name].size and b.n_checked == b.n_params
        assert b.verdict in ("pass", "warn", "fail")
        for f in ("relative_error", "max_rel_error", "n_failed"):
            getattr(b, f)
    assert sum(b.n_failed for b in r.blocks) == r.failed.size
    assert isinstance(r.seed, int) and r.seed == 3
    assert isinstance(r.threads, int) and r.threads >= 1
    assert r.backend == "serial"
    assert r.seconds >= 0 and r.compile_seconds >= 0
    assert isinstance(r.evaluations, int)
    assert isinstance(r.stats, dict)
    assert isinstance(r.hints, (list, tuple)) and all(isinstance(h, str) for h in r.hints)


def test_worst_component_errors():
    params, args = c.problem()
    r = fc.check(c.cost, c.backward_bug("factor-2"), params, args, backend="serial")
    worst = r.worst()
    assert len(worst) == min(10, r.n_checked)
    assert len(r.worst(3)) == 3
    errs = [w.abs_error for w in worst]
    rels = [w.rel_error for w in worst]
    assert errs == sorted(errs, reverse=True) or rels == sorted(rels, reverse=True)
    layout = fc.Layout({k: v.shape for k, v in params.items()})
    flat_params = layout.flatten(params)
    for w in worst:
        assert isinstance(w, fc.ComponentError)
        assert w.kind in ("fail", "kink", "ok")
        assert layout.locate(w.flat_index) == (w.name, tuple(w.index))
        assert params[w.name][tuple(w.index)] == flat_params[w.flat_index]
        pos = int(np.searchsorted(r.indices, w.flat_index))
        assert w.analytic == r.analytic[pos] and w.numeric == r.numeric[pos]
        assert isinstance(w.flat_index, int)
    assert worst[0].name == "b1" and worst[0].kind == "fail"
    assert {w.kind for w in r.worst(r.n_checked)} >= {"fail", "ok"}


def test_to_dict_json_serialisable_and_complete():
    import json

    params, args = c.problem()
    for r in (fc.check(c.cost, c.backward_bug("swapped"), params, args, backend="serial"),
              fc.check(c.cost, c.backward, params, args, sample=0.5, seed=1,
                       backend="serial")):
        d = r.to_dict()
        back = json.loads(json.dumps(d))
        for key in ("passed", "verdict", "relative_error", "n_params", "n_checked", "indices",
                    "failed", "blocks", "failure_rate_bound", "hints", "seed", "eps",
                    "backend", "threads", "seconds", "evaluations"):
            assert key in back, key
        assert back["passed"] == r.passed and back["seed"] == r.seed
        assert back["indices"] == r.indices.tolist()


def test_summary_and_str_headline_agree_with_passed():
    params, args = c.problem()
    good = fc.check(c.cost, c.backward, params, args, backend="serial")
    bad = fc.check(c.cost, c.backward_bug("sign-flip"), params, args, backend="serial")
    assert str(good) == good.summary() and str(bad) == bad.summary()
    g0, b0 = good.summary().splitlines()[0], bad.summary().splitlines()[0]
    assert "PASS" in g0.upper() and "FAIL" not in g0.upper()
    assert "FAIL" in b0.upper() and "PASS" not in b0.upper()
    assert "bug" not in g0.lower()
    assert good.relative_error < 1e-7 and "great" in g0  # Ng's bands on the first line
    good.raise_if_failed()  # passes silently
    with pytest.raises(AssertionError) as info:
        bad.raise_if_failed()
    assert isinstance(info.value, fc.GradientCheckError)
    assert b0 in str(info.value)


class _Counter:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, *a):
        self.n += 1
        return self.f(*a)


@pytest.mark.parametrize("options", [{}, {"sample": 11, "seed": 2},
                                     {"method": "richardson"}, {"max_failures": 1}])
def test_evaluations_counts_every_cost_call(options):
    params, args = c.problem()
    for backward in (c.backward, c.backward_bug("factor-2")):
        counted = _Counter(c.cost)
        r = fc.check(counted, backward, params, args, backend="serial", **options)
        assert r.evaluations == counted.n, (options, r.evaluations, counted.n)


def test_evaluations_counts_cost_calls_with_grad_true():
    params, args = c.problem()
    counted = _Counter(lambda p, *a: (c.cost(p, *a), c.backward(p, *a)))
    r = fc.check(counted, True, params, args, backend="serial")
    assert r.evaluations == counted.n


# -- options --------------------------------------------------------------------------------
def test_sample_int_fraction_and_seed_recorded():
    params, args = c.problem()
    n = sum(v.size for v in params.values())
    r = fc.check(c.cost, c.backward, params, args, sample=13, seed=5, backend="serial")
    assert r.n_checked == 13 and r.indices.size == 13
    assert np.all(np.diff(r.indices) > 0) and r.indices.dtype == np.int64
    assert isinstance(r.failure_rate_bound, float) and 0 < r.failure_rate_bound <= 1
    for b in r.blocks:
        assert b.failure_rate_bound is None or isinstance(b.failure_rate_bound, float)
    same = fc.check(c.cost, c.backward, params, args, sample=13, seed=r.seed,
                    backend="serial")
    np.testing.assert_array_equal(same.indices, r.indices)
    frac = fc.check(c.cost, c.backward, params, args, sample=0.5, backend="serial")
    assert frac.n_checked == pytest.approx(n * 0.5, abs=6)
    assert isinstance(frac.seed, int)
    again = fc.check(c.cost, c.backward, params, args, sample=0.5, seed=frac.seed,
                     backend="serial")
    np.testing.assert_array_equal(again.indices, frac.indices)
    full = fc.check(c.cost, c.backward, params, args, sample=None, backend="serial")
    assert full.n_checked == n and full.failure_rate_bound is None


def test_sampled_failure_rate_bound_shrinks_with_confidence():
    params, args = c.problem()
    lo = fc.check(c.cost, c.backward, params, args, sample=20, seed=1, confidence=0.5,
                  backend="serial")
    hi = fc.check(c.cost, c.backward, params, args, sample=20, seed=1, confidence=0.99,
                  backend="serial")
    assert lo.failure_rate_bound < hi.failure_rate_bound


@pytest.mark.parametrize("sample", [0, -1, 1.5, 0.0, -0.2, 10_000, "all", float("nan")])
def test_sample_out_of_range_is_value_or_type_error_naming_sample(sample):
    params, args = c.problem()
    before = _snapshot(params)
    with pytest.raises((ValueError, TypeError), match="sample"):
        fc.check(c.cost, c.backward, params, args, sample=sample)
    _assert_same(before, params)


@pytest.mark.parametrize("eps", [0, -1e-6, 0.0, float("nan"), float("inf"), "big"])
def test_bad_eps_names_eps(eps):
    params, args = c.problem()
    with pytest.raises((ValueError, TypeError), match="eps"):
        fc.check(c.cost, c.backward, params, args, eps=eps)


@pytest.mark.parametrize(("name", "value"), [
    ("backend", "gpu"), ("threads", 0), ("threads", -2), ("threads", 1.5), ("rtol", 0),
    ("rtol", -1.0), ("confidence", 1.0), ("confidence", 0), ("target_rate", 2.0),
    ("max_failures", 0), ("method", "forward"), ("mode", "sparse")])
def test_bad_option_names_itself(name, value):
    params, args = c.problem()
    with pytest.raises((ValueError, TypeError), match=name):
        fc.check(c.cost, c.backward, params, args, **{name: value})


def test_eps_float_is_used_and_recorded():
    params, args = c.problem()
    r = fc.check(c.cost, c.backward, params, args, eps=1e-6, backend="serial")
    assert r.passed and r.eps == 1e-6
    auto = fc.check(c.cost, c.backward, params, args, backend="serial")
    assert auto.eps == "auto" or auto.eps is not None


def test_rtol_loosens_and_tightens():
    params, args = c.problem()

    def slightly_off(p, *a):
        g = c.backward(p, *a)
        g["dW1"] = g["dW1"] * (1 + 1e-4)
        return g

    assert not fc.check(c.cost, slightly_off, params, args, backend="serial").passed
    assert fc.check(c.cost, slightly_off, params, args, rtol=1e-2, backend="serial").passed


@pytest.mark.parametrize("backend", ["serial", "threads", "processes", "auto"])
def test_every_python_backend_agrees(backend):
    params, args = c.problem()
    r = fc.check(c.cost, c.backward_bug("factor-2"), params, args, backend=backend,
                 threads=2)
    assert r.failing_blocks() == ["b1"]
    assert r.backend in ("serial", "threads", "processes")
    if backend != "auto":
        assert r.backend == backend
    ref = fc.check(c.cost, c.backward_bug("factor-2"), params, args, backend="serial")
    np.testing.assert_allclose(r.numeric, ref.numeric, rtol=0, atol=1e-12)


def test_numba_backend_with_python_cost_is_an_error_or_falls_back():
    params, args = c.problem()
    try:
        r = fc.check(c.cost, c.backward, params, args, backend="numba")
    except (ValueError, TypeError) as exc:
        assert "numba" in str(exc) or "backend" in str(exc)
    else:
        assert r.passed


def test_threads_option_recorded(mlp_s):
    r = fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, backend="numba", threads=1)
    assert r.threads == 1
    r2 = fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, backend="numba", threads=2)
    np.testing.assert_array_equal(r.numeric, r2.numeric)


def test_progress_bar_goes_to_stderr(capsys):
    params, args = c.problem()
    r = fc.check(c.cost, c.backward, params, args, backend="serial", progress=True)
    assert r.passed
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_methods_pass_good_and_fail_bad(method):
    params, args = c.problem()
    assert fc.check(c.cost, c.backward, params, args, method=method,
                    backend="serial").passed
    bad = fc.check(c.cost, c.backward_bug("sign-flip"), params, args, method=method,
                   backend="serial")
    assert bad.failing_blocks() == ["W2"]


def _poly_cost(p):
    return np.sum(p["w"] ** 3) + np.sum(np.exp(p["w"]) * p["v"].sum())


def _poly_grad(p):
    return {"dw": 3 * p["w"] ** 2 + np.exp(p["w"]) * p["v"].sum(),
            "dv": np.full_like(p["v"], np.sum(np.exp(p["w"])))}


def test_complex_method_on_an_analytic_cost():
    params = {"w": np.linspace(-1, 1, 7), "v": np.array([0.3, -0.2])}
    r = fc.check(_poly_cost, _poly_grad, params, method="complex", backend="serial")
    assert r.passed and r.relative_error < 1e-12

    def bad(p):
        g = _poly_grad(p)
        g["dv"] = 2 * g["dv"]
        return g

    assert fc.check(_poly_cost, bad, params, method="complex",
                    backend="serial").failing_blocks() == ["v"]


@pytest.mark.filterwarnings("ignore:Casting complex values")
def test_complex_method_on_a_float_cast_cost_is_a_clear_error_or_falls_back():
    params, args = c.problem()
    try:
        r = fc.check(c.cost, c.backward, params, args, method="complex", backend="serial")
    except (TypeError, ValueError) as exc:
        assert "cost" in str(exc) and "complex" in str(exc)
    else:
        assert r.passed


def test_complex_method_non_analytic_cost_falls_back_and_still_finds_bugs():
    params = {"w": np.array([0.5, -1.5, 2.0, -0.7])}

    def cost(p):
        return np.sum(np.abs(p["w"]) * p["w"] ** 2)

    def grad(p):
        return {"dw": 3 * np.abs(p["w"]) * p["w"]}

    assert fc.check(cost, grad, params, method="complex", backend="serial").passed
    assert not fc.check(cost, lambda p: {"dw": -grad(p)["dw"]}, params, method="complex",
                        backend="serial").passed


def test_directional_mode_locates_the_bug():
    params, args = c.problem()
    good = fc.check(c.cost, c.backward, params, args, mode="directional", seed=0)
    assert good.passed
    bad = fc.check(c.cost, c.backward_bug("factor-2"), params, args, mode="directional",
                   seed=0)
    assert not bad.passed
    assert "b1" in bad.failing_blocks()
    counted = _Counter(c.cost)
    r = fc.check(counted, c.backward, params, args, mode="directional", seed=0)
    assert r.evaluations == counted.n


def test_sample_auto_and_max_failures(mlp_s):
    r = fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, sample="auto",
                 target_rate=0.05, seed=0, backend="numba")
    assert r.passed and isinstance(r.failure_rate_bound, float)
    assert r.failure_rate_bound <= 0.05 or r.n_checked == r.n_params
    from fastcheck.models import make_mlp

    p = make_mlp("S", bug="missing-regularization", seed=0)
    stop = fc.check(p.cost, p.grad, p.theta, p.args, max_failures=3, seed=0,
                    backend="numba")
    assert not stop.passed and 1 <= stop.failed.size
    assert stop.n_checked < p.theta.size
    assert stop.indices.dtype == np.int64 and np.all(np.diff(stop.indices) > 0)
    np.testing.assert_array_equal(stop.analytic, p.grad(p.theta, *p.args)[stop.indices])
    assert isinstance(stop.failure_rate_bound, float)  # a part was checked: a bound
    auto_bad = fc.check(p.cost, p.grad, p.theta, p.args, sample="auto", seed=0,
                        backend="numba")
    assert not auto_bad.passed


# -- bad input -------------------------------------------------------------------------------
def test_grad_shape_mismatch_names_grad():
    params, args = c.problem()
    g = c.backward(params, *args)
    g["dW1"] = g["dW1"].T
    with pytest.raises(ValueError, match="W1"):
        fc.check(c.cost, g, params, args)


def test_grad_missing_key_names_it():
    params, args = c.problem()
    g = c.backward(params, *args)
    del g["db2"]
    with pytest.raises((ValueError, KeyError), match="b2"):
        fc.check(c.cost, g, params, args)


def test_grad_wrong_flat_length_is_value_error():
    theta = np.arange(5.0)
    with pytest.raises(ValueError, match="grad"):
        fc.check(lambda t: float(t @ t), np.zeros(4), theta)


@pytest.mark.parametrize("value", [np.array([1.0, 2.0]), float("nan"), float("inf"), "x",
                                   None])
def test_non_scalar_or_non_finite_cost_names_cost(value):
    theta = np.arange(3.0)
    with pytest.raises((ValueError, TypeError), match="cost"):
        fc.check(lambda t: value, np.zeros(3), theta)


@pytest.mark.parametrize("theta", [np.arange(4), np.arange(4) + 0j,
                                   np.array([1, "a", None, 2.0], dtype=object)])
def test_integer_complex_object_params_refused_naming_params(theta):
    with pytest.raises((ValueError, TypeError), match="params"):
        fc.check(lambda t: float(np.sum(t)), np.ones(4), theta)


def test_integer_block_in_dict_refused():
    params = {"w": np.arange(3), "b": np.zeros(2)}
    with pytest.raises((ValueError, TypeError), match="w"):
        fc.check(lambda p: float(np.sum(p["w"]) + np.sum(p["b"])), {"w": np.ones(3),
                 "b": np.ones(2)}, params)


def test_nondeterministic_cost():
    rng = np.random.default_rng(0)
    params, args = c.problem()

    def dropout_cost(p, *a):
        return c.cost(p, *a) * (1 + 1e-3 * rng.standard_normal())

    with pytest.raises(fc.NondeterministicCostError) as info:
        fc.check(dropout_cost, c.backward, params, args, backend="serial")
    assert isinstance(info.value, fc.FastcheckError)
    msg = str(info.value).lower()
    assert "dropout" in msg or "random" in msg or "seed" in msg


def test_error_hierarchy():
    assert issubclass(fc.NondeterministicCostError, fc.FastcheckError)
    assert issubclass(fc.GradientCheckError, fc.FastcheckError)
    assert issubclass(fc.GradientCheckError, AssertionError)
    assert issubclass(fc.FastcheckError, Exception)


def test_assert_gradient():
    params, args = c.problem()
    fc.assert_gradient(c.cost, c.backward, params, args, backend="serial")
    with pytest.raises(fc.GradientCheckError) as info:
        fc.assert_gradient(c.cost, c.backward_bug("transposed"), params, args,
                           backend="serial")
    assert "W2" in str(info.value)
    with pytest.raises(AssertionError):
        fc.assert_gradient(c.cost, c.backward_bug("transposed"), params, args, sample=30,
                           seed=0, backend="serial")


# -- float32 ---------------------------------------------------------------------------------
def test_float32_params_warn_and_stay_unchanged():
    params, args = c.problem()
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    before = _snapshot(p32)
    with pytest.warns(Warning, match="float64"):
        r = fc.check(c.cost, c.backward, p32, args, backend="serial")
    assert r.passed
    _assert_same(before, p32)
    with pytest.warns(Warning, match="float64"):
        bad = fc.check(c.cost, c.backward_bug("factor-2"), p32, args, backend="serial")
    assert bad.failing_blocks() == ["b1"]


def test_float32_flat_theta():
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(20).astype(np.float32)
    keep = theta.copy()

    def cost(t):
        return np.sum(np.sin(t) * t)  # follows its input's dtype

    def grad(t):
        return np.sin(t) + t * np.cos(t)

    with pytest.warns(Warning, match="float64"):
        r = fc.check(cost, grad, theta, backend="serial")
    assert r.passed
    np.testing.assert_array_equal(theta, keep)
    assert theta.dtype == np.float32

    def bad(t):
        g = grad(t)
        g[3] *= 1.01
        return g

    with pytest.warns(Warning, match="float64"):
        rb = fc.check(cost, bad, theta, backend="serial")
    assert rb.failed.tolist() == [3]


_SHARED_COUNT = None


def _shared_counting_cost(p, *a):
    with _SHARED_COUNT.get_lock():
        _SHARED_COUNT.value += 1
    return c.cost(p, *a)


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_evaluations_counts_calls_in_workers(backend):
    import multiprocessing

    global _SHARED_COUNT
    if backend == "processes" and multiprocessing.get_start_method(allow_none=True) not in (
            None, "fork"):
        pytest.skip("the shared counter reaches forked workers only")
    _SHARED_COUNT = multiprocessing.Value("l", 0)
    params, args = c.problem()
    for backward in (c.backward, c.backward_bug("factor-2")):
        _SHARED_COUNT.value = 0
        r = fc.check(_shared_counting_cost, backward, params, args, backend=backend,
                     threads=2, sample=30, seed=4)
        assert r.backend == backend
        assert r.evaluations == _SHARED_COUNT.value


@pytest.mark.parametrize(("factor", "rtol"), [(1 + 2e-5, 1e-3), (1.01, 0.1), (1.5, 0.9),
                                              (1 + 3e-6, 1e-5), (1.01, 1e-5)])
def test_passed_verdict_and_headline_never_contradict(factor, rtol):
    params, args = c.problem()

    def scaled(p, *a):
        return {k: v * factor for k, v in c.backward(p, *a).items()}

    r = fc.check(c.cost, scaled, params, args, rtol=rtol, backend="serial")
    head = r.summary().splitlines()[0]
    assert (r.verdict == "fail") == (not r.passed)
    assert ("FAIL" in head) == (not r.passed)
    if r.passed:
        assert "almost certainly a bug" not in head
    assert r.to_dict()["passed"] == r.passed and r.to_dict()["verdict"] == r.verdict


@pytest.mark.parametrize("bug", ["missing-regularization", "bias-factor-2", "sign-flip",
                                 "transposed", "swapped", "mean-vs-sum"])
def test_njit_mlp_bug_hints(bug):
    from fastcheck.models import make_mlp

    p = make_mlp("SQ" if bug == "swapped" else "S", bug=bug, seed=0)
    r = fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout, backend="numba")
    assert not r.passed and set(r.failing_blocks()) == p.affected()
    words = {"missing-regularization": "regulari", "bias-factor-2": "factor 2",
             "sign-flip": "sign", "transposed": "transpose", "swapped": "swapped",
             "mean-vs-sum": "sum"}[bug]
    assert any(words in h.lower() for h in r.hints), r.hints


@pytest.mark.parametrize("where", ["grad", "cost"])
def test_nonfinite_component_is_a_fail_kind_in_worst(where):
    """API.md: ComponentError.kind is "fail", "kink" or "ok" -- also for a NaN gradient
    (log(0) in a backward) or a cost that overflows at a perturbed point."""
    import json

    theta = np.array([1.0, 0.5, 2.0])

    def cost(t):
        if where == "cost" and t[1] != 0.5:
            return float("nan")
        return float(t @ t)

    def grad(t):
        g = 2 * t
        if where == "grad":
            g[1] = np.nan
        return g

    with np.errstate(all="ignore"):
        r = fc.check(cost, grad, theta, backend="serial")
    assert not r.passed and r.failed.tolist() == [1]
    assert all(w.kind in ("fail", "kink", "ok") for w in r.worst(3))
    assert r.worst(1)[0].flat_index == 1 and r.worst(1)[0].kind == "fail"
    assert all(w["kind"] in ("fail", "kink", "ok") for w in r.to_dict()["worst"])
    json.dumps(r.to_dict())


@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
def test_hostile_grad_writing_into_its_input_does_not_reach_the_caller(backend):
    params, args = c.problem()
    before = _snapshot(params)

    def grad(p, *a):
        out = c.backward(p, *a)
        p["W1"] *= 2.0
        return out

    fc.check(c.cost, grad, params, args, backend=backend, threads=2)
    _assert_same(before, params)


def test_cost_writing_into_flat_theta_is_a_fastcheck_error_and_theta_is_unchanged():
    theta = np.arange(1.0, 5.0)
    keep = theta.copy()

    def cost(t):
        value = float(t @ t)
        t[0] = 99.0
        return value

    with pytest.raises(fc.FastcheckError):
        fc.check(cost, 2 * theta, theta, backend="serial")
    np.testing.assert_array_equal(theta, keep)


@pytest.mark.parametrize("grad_true", [False, True])
def test_evaluations_counts_cost_calls_when_kinks_are_confirmed_off_the_kink(grad_true):
    """A backprop-like subgradient (0) outside the one-sided slopes [1, 3] at exact kinks:
    fastcheck looks off the kink (cost and gradient calls). ``evaluations`` counts the cost
    calls, so it equals a counting wrapper's total; with grad=True the cost is the
    gradient function, and each of its calls counts."""
    theta = np.zeros(5)
    calls = {"cost": 0, "grad": 0}

    def cost(x):
        calls["cost"] += 1
        value = float(np.sum(np.where(x > 0, 3 * x, x)))
        if grad_true:
            return value, np.where(x > 0, 3.0, np.where(x < 0, 1.0, 0.0))
        return value

    def grad(x):
        calls["grad"] += 1
        return np.where(x > 0, 3.0, np.where(x < 0, 1.0, 0.0))

    r = fc.check(cost, True if grad_true else grad, theta, backend="serial")
    assert r.passed and np.all(r.kinds == "kink")
    assert calls["grad"] > 1 or grad_true  # the confirmation called the gradient again
    assert r.evaluations == calls["cost"]
