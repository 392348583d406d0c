"""mode="directional": K random directions, then group testing that localizes the bug.

Measured claims (the numbers quoted in the issue note):
- one wrong element of the L network (N = 109,386) is found, named W2[1, 3], in <= 300
  cost evaluations (a full check needs 218,774);
- correct gradients raise no false alarm over many seeds on S, M and L;
- ReLU kinks cause no false failure (the step moves theta by one full-check step in
  Euclidean length, and suspects get the full check's kink-aware re-examination).
"""

import json
import math

import numpy as np
import pytest

import fastcheck as fc
from fastcheck import _steps
from fastcheck._inputs import prepare
from fastcheck.directional import LEAF_SIZE, MAX_FAILURES_PER_BLOCK, run_directional
from fastcheck.errors import CostEvaluationError
from fastcheck.models import BUGS, affected_blocks, make_mlp

from . import _models


def _run(cost, grad, params, args=(), layout=None, *, seed=0, rtol=1e-5, eps="auto",
         n_directions=8):
    problem = prepare(cost, grad, params, args, layout)
    return problem, run_directional(problem, eps=eps, rtol=rtol, seed=seed,
                                    n_directions=n_directions)


def _run_mlp(m, **kwargs):
    return _run(m.cost, m.grad, m.theta, m.args, m.layout, **kwargs)


@pytest.fixture(scope="module")
def mlp_l_one_element():
    return make_mlp("L", bug="one-element", seed=0)


# -- the headline claim ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_one_wrong_element_in_l_is_found_within_300_evaluations(mlp_l_one_element, seed):
    m = mlp_l_one_element
    theta = m.theta.copy()
    problem, report = _run_mlp(m, seed=seed)
    assert not report.passed and report.verdict == "fail"
    assert [m.layout.label(int(i)) for i in report.failed] == ["W2[1, 3]"]
    assert report.evaluations <= 300, report.stop_reason
    assert report.failing_blocks() == ["W2"]
    worst = report.worst(1)[0]
    assert worst.name == "W2" and worst.index == (1, 3) and worst.kind == "fail"
    assert worst.analytic - worst.numeric == pytest.approx(1e-3, rel=1e-3)
    # the caller's theta and the problem's private copy are untouched
    np.testing.assert_array_equal(m.theta, theta)
    np.testing.assert_array_equal(problem.theta, theta)


def test_report_fields_of_a_directional_run(mlp_l_one_element):
    m = mlp_l_one_element
    problem, report = _run_mlp(m, seed=11)
    assert report.sampled and report.backend == "serial" and report.threads == 1
    assert report.seed == 11 and report.eps == "auto" and report.rtol == 1e-5
    assert report.n_params == m.theta.size == 109_386
    assert report.n_checked == report.indices.size <= 3 * 8
    assert np.all(np.diff(report.indices) > 0)
    for field in ("analytic", "numeric", "abs_errors", "rel_errors", "kinds", "steps"):
        assert getattr(report, field).shape == report.indices.shape, field
    np.testing.assert_array_equal(report.analytic, problem.analytic[report.indices])
    np.testing.assert_allclose(report.steps, _steps.nominal_steps(
        problem.theta[report.indices], "auto"), rtol=1e-6)
    assert [b.name for b in report.blocks] == list(m.layout.names)
    assert sum(b.n_checked for b in report.blocks) == report.n_checked
    reason = report.stop_reason
    assert "8 random Rademacher directions" in reason
    assert f"{report.evaluations:,} cost evaluations" in reason
    assert "detection power" in reason and "218,774" in reason
    # built by the one constructor: statistics and hints on demand, everything serialises
    assert report.mode == "directional" and report.failure_rate_bound is None
    assert report.stats["failure_rate_bound"] is None
    json.dumps(report.to_dict(), allow_nan=False)
    assert "W2[1, 3]" in report.summary()
    assert report.summary().startswith("fastcheck FAIL (directional):")


# -- no false alarms ------------------------------------------------------------------------
def _false_alarms(size, model_seeds, direction_seeds):
    alarms, runs, evaluations = [], 0, []
    for ms in model_seeds:
        m = make_mlp(size, seed=ms)
        problem = prepare(m.cost, m.grad, m.theta, m.args, m.layout)
        for s in direction_seeds:
            report = run_directional(problem, eps="auto", rtol=1e-5, seed=1000 * ms + s)
            runs += 1
            evaluations.append(report.evaluations)
            if not report.passed or report.verdict != "pass":
                alarms.append((ms, s, report.short_summary()))
    return alarms, runs, evaluations


def test_no_false_alarm_on_s_over_100_seeds():
    alarms, runs, evaluations = _false_alarms("S", range(4), range(25))
    assert runs == 100 and alarms == []
    assert max(evaluations) <= 2 + 2 * 8 + 4 * 8  # at most a re-examination per direction


def test_no_false_alarm_on_m_over_60_seeds():
    alarms, runs, _ = _false_alarms("M", range(3), range(20))
    assert runs == 60 and alarms == []


def test_no_false_alarm_on_l_over_40_seeds():
    alarms, runs, evaluations = _false_alarms("L", range(2), range(20))
    assert runs == 40 and alarms == []
    assert max(evaluations) <= 50


def test_full_length_steps_would_cross_kinks_on_m_and_l():
    """Why the step along a direction is divided by sqrt(N): JAX-style full-length steps
    (every component moved by its full-check step) cross ReLU kinks on these networks."""
    for size in ("M", "L"):
        m = make_mlp(size, seed=0)
        theta, g = m.theta, m.grad(m.theta, *m.args)
        rng = np.random.default_rng(0)
        h = _steps.nominal_steps(theta, "auto")
        naive_failures = 0
        for _ in range(8):
            d = h * np.where(rng.random(theta.size) < 0.5, -1.0, 1.0)
            numeric = (m.cost(theta + d, *m.args) - m.cost(theta - d, *m.args)) / 2
            analytic = g @ d
            naive_failures += abs(analytic - numeric) > 1e-5 * (abs(analytic) + abs(numeric))
        assert naive_failures >= 1, size
        _, report = _run_mlp(m, seed=0)
        assert report.passed and report.verdict == "pass", report.stop_reason


# -- kinks ----------------------------------------------------------------------------------
def _relu_net_at_kink(seed):
    """A ReLU net with eight pre-activations exactly at 0: every direction crosses kinks."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6, 16))
    Y = np.eye(3)[:, rng.integers(0, 3, 16)]
    params = {"W1": rng.normal(size=(8, 6)), "b1": rng.normal(size=(8, 1)) * 0.1,
              "W2": rng.normal(size=(3, 8)), "b2": np.zeros((3, 1))}
    params["b1"][:, 0] = -(params["W1"] @ X[:, :1])[:, 0]
    return params, (X, Y, 0.1, "relu")


@pytest.mark.parametrize("seed", range(4))
def test_relu_kinks_at_theta_are_kinks_not_failures(seed):
    params, args = _relu_net_at_kink(seed)
    _, report = _run(_models.cost, _models.backward, params, args, seed=seed)
    assert report.passed, report.summary()
    assert report.failed.size == 0
    assert np.count_nonzero(report.kinds == "kink") >= 1
    assert "kink" in report.stop_reason


def test_a_bug_next_to_kinks_is_still_found():
    params, args = _relu_net_at_kink(0)

    def grad(p, *a):
        g = _models.backward(p, *a)
        g["dW2"] = g["dW2"].copy()
        g["dW2"][1, 3] += 1e-2
        return g

    problem, report = _run(_models.cost, grad, params, args, seed=0)
    assert not report.passed
    assert [problem.layout.label(int(i)) for i in report.failed] == ["W2[1, 3]"]


def test_abs_kinks_do_not_fail_and_a_bug_beside_them_is_found():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=2000)
    theta[::40] = 0.0  # |x| exactly at its kink

    def cost(x):
        return float(np.sum(np.abs(x)) + 0.5 * x @ x)

    def grad(x):
        return np.sign(x) + x

    def wrong(x):
        g = grad(x)
        g[777] += 0.1
        return g

    for seed in range(10):
        assert _run(cost, grad, theta, seed=seed)[1].passed
    _, report = _run(cost, wrong, theta, seed=0)
    assert list(report.failed) == [777]


# -- bugs spread over blocks ----------------------------------------------------------------
@pytest.mark.parametrize("bug", sorted(b for b in BUGS if b != "swapped"))
def test_every_bug_of_s_is_detected_in_its_blocks(bug):
    m = make_mlp("S", bug=bug, seed=0)
    _, report = _run_mlp(m, seed=1)
    assert not report.passed
    failing = set(report.failing_blocks())
    assert failing and failing <= affected_blocks(bug, "S"), report.summary()


@pytest.mark.parametrize("size,bug", [("M", "sign-flip"), ("L", "sign-flip"),
                                      ("M", "missing-regularization"),
                                      ("L", "missing-regularization")])
def test_whole_block_bug_is_named_and_the_work_capped(size, bug):
    m = make_mlp(size, bug=bug, seed=0)
    _, report = _run_mlp(m, seed=2)
    assert not report.passed
    assert set(report.failing_blocks()) == affected_blocks(bug, size)
    for b in report.blocks:  # the cap is checked before each leaf of <= LEAF_SIZE
        assert b.n_failed < MAX_FAILURES_PER_BLOCK + LEAF_SIZE
    assert "cap per block" in report.stop_reason and "spread" in report.stop_reason
    assert report.evaluations <= 600, report.stop_reason


def test_swapped_biases_of_sq_are_both_named():
    m = make_mlp("SQ", bug="swapped", seed=0)
    _, report = _run_mlp(m, seed=0)
    assert set(report.failing_blocks()) == {"b1", "b2"}


# -- plumbing -------------------------------------------------------------------------------
def test_mapping_params_and_fixed_eps():
    params, args = _relu_net_at_kink(1)
    params = {k: v.copy() for k, v in params.items()}
    params["b1"] += 0.05  # away from the kink
    before = {k: v.copy() for k, v in params.items()}
    _, report = _run(_models.cost, _models.backward, params, args, eps=1e-6, seed=3)
    assert report.passed and report.eps == 1e-6
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_small_problem_with_one_block_is_checked_directly():
    theta = np.array([0.1, 0.2, 0.3])
    problem, report = _run(lambda x: float(np.sum(np.sin(x))),
                           lambda x: np.cos(x) + np.array([0.0, 1e-3, 0.0]), theta)
    assert list(report.failed) == [1]
    assert report.n_checked == 3


def test_correct_gradient_report_is_empty_but_says_what_it_tested():
    m = make_mlp("S", seed=0)
    _, report = _run_mlp(m, seed=5, n_directions=4)
    assert report.passed and report.n_checked == 0 and report.indices.size == 0
    assert report.evaluations == 2 + 2 * 4
    assert "4 random Rademacher directions" in report.stop_reason
    assert "4 agreed" in report.stop_reason
    assert math.isfinite(report.relative_error)


def test_seed_none_is_drawn_and_recorded():
    m = make_mlp("S", seed=0)
    problem = prepare(m.cost, m.grad, m.theta, m.args, m.layout)
    report = run_directional(problem, eps="auto", rtol=1e-5, seed=None)
    assert isinstance(report.seed, int)
    again = run_directional(problem, eps="auto", rtol=1e-5, seed=report.seed)
    assert again.stop_reason.split("relative error")[0] == report.stop_reason.split(
        "relative error")[0]


def test_cost_raising_along_a_direction_is_reported():
    calls = []

    def cost(x):
        calls.append(1)
        if len(calls) > 2:  # after prepare's two evaluations
            raise FloatingPointError("boom")
        return float(np.sum(x ** 2))

    with pytest.raises(CostEvaluationError, match="boom"):
        _run(cost, lambda x: 2 * x, np.ones(5))


def test_n_directions_is_validated():
    m = make_mlp("S", seed=0)
    problem = prepare(m.cost, m.grad, m.theta, m.args, m.layout)
    with pytest.raises(ValueError, match="n_directions"):
        run_directional(problem, eps="auto", rtol=1e-5, seed=0, n_directions=0)
    with pytest.raises(TypeError, match="n_directions"):
        run_directional(problem, eps="auto", rtol=1e-5, seed=0, n_directions=2.5)


def test_error_spread_below_the_component_tolerance_warns_but_never_fails():
    # every component off by 0.95 rtol (relative error 9.5e-6): the full check passes it,
    # the directions see the sum; no single component can be blamed -> "warn", not "fail"
    m = make_mlp("M", seed=0)
    g = m.grad(m.theta, *m.args)
    problem = prepare(m.cost, g * (1 + 1.9e-5 * np.sign(g)), m.theta, m.args, m.layout)
    verdicts = []
    for seed in range(5):
        report = run_directional(problem, eps="auto", rtol=1e-5, seed=seed)
        assert report.passed and report.failed.size == 0
        verdicts.append(report.verdict)
        if report.verdict == "warn":
            assert "no single component could be blamed" in report.stop_reason
            assert any(b.verdict == "warn" for b in report.blocks)
    assert "warn" in verdicts


# -- what a passing directional check could have missed (issue 11, item 8) --------------------
@pytest.fixture(scope="module")
def mlp_l():
    return make_mlp("L", seed=0)


@pytest.mark.parametrize("seed", range(3))
def test_a_passing_directional_report_states_an_error_it_could_miss(mlp_l, seed):
    # W2[1, 3] off by 0.1 % of its value (1.2e-5): a full check fails it, the directions
    # do not see it; the report must say that an error of that size could go undetected.
    m = mlp_l
    g = m.grad(m.theta, *m.args)
    k = m.layout.offset_of("W2") + int(np.ravel_multi_index((1, 3), m.layout.shape_of("W2")))
    wrong = g.copy()
    wrong[k] *= 1.001
    error = abs(wrong[k] - g[k])
    report = fc.check(m.cost, wrong, m.theta, m.args, layout=m.layout, mode="directional",
                      seed=seed)
    assert report.passed and report.evaluations <= 50
    d = report.directional
    assert d.probability == 0.95 and d.gradient_norm == pytest.approx(np.linalg.norm(g))
    assert d.detection_limit * d.gradient_norm > error  # it honestly could have missed it
    assert d.detection_limit <= d.guaranteed_limit
    head = report.summary().splitlines()[0]
    assert head.startswith("fastcheck PASS (directional): ")
    assert f"a single-component error below {d.detection_limit:.1e}·|g| could go " \
           f"undetected (p=0.95" in head
    html = report._repr_html_()
    assert "PASS (directional)</span>" in html and "could go undetected" in html


def test_an_error_above_the_stated_limit_is_found(mlp_l):
    # 1 % (1.2e-4) is above the guaranteed limit of a clean run: the directions find it
    m = mlp_l
    g = m.grad(m.theta, *m.args)
    clean = fc.check(m.cost, g, m.theta, m.args, layout=m.layout, mode="directional", seed=0)
    assert clean.passed and clean.failure_rate_bound is None
    k = m.layout.offset_of("W2") + int(np.ravel_multi_index((1, 3), m.layout.shape_of("W2")))
    wrong = g.copy()
    wrong[k] += 4 * clean.directional.guaranteed_limit * clean.directional.gradient_norm
    report = fc.check(m.cost, wrong, m.theta, m.args, layout=m.layout, mode="directional",
                      seed=0)
    assert not report.passed and [m.layout.label(int(i)) for i in report.failed] == ["W2[1, 3]"]
    assert "could go undetected" not in report.headline()


@pytest.mark.parametrize("option", [{"backend": "numba"}, {"backend": "threads"},
                                    {"threads": 2}, {"client": object()},
                                    {"sample": 0.5}, {"max_failures": 1}])
def test_directional_mode_refuses_options_it_cannot_honour(option):
    theta = np.linspace(0.1, 1.0, 10)
    with pytest.raises(ValueError, match=r'mode="directional".*cannot honour') as info:
        fc.check(lambda x: float(np.sum(np.sin(x))), np.cos, theta, mode="directional",
                 **option)
    assert f"{next(iter(option))}=" in str(info.value)


def test_directional_mode_honours_progress_and_serial(capsys):
    theta = np.linspace(0.1, 1.0, 10)
    report = fc.check(lambda x: float(np.sum(np.sin(x))), np.cos, theta, mode="directional",
                      backend="serial", threads=1, progress=True, seed=0)
    assert report.passed and report.backend == "serial"
    assert "eval" in capsys.readouterr().err  # the bar counted cost evaluations
