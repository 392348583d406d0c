"""Unit tests of the verdict code (_steps, _verdict, _driver) on synthetic evaluations.

Fast and exact, so that ``make mutate`` can tell a changed constant or comparison apart
(docs/testing.md).
"""

import numpy as np
import pytest

from fastcheck import _driver, _steps, _verdict
from fastcheck._inputs import prepare
from fastcheck.backends.serial import SerialBackend

EPS = np.finfo(np.float64).eps


# -- _steps ----------------------------------------------------------------------------------
def test_auto_step_is_cbrt_eps_times_max_1_theta():
    assert _steps.AUTO_RELATIVE_STEP == pytest.approx(EPS ** (1 / 3), rel=1e-15)
    theta = np.array([0.0, 0.5, -1.0, 4.0, -250.0])
    h = _steps.nominal_steps(theta, "auto")
    np.testing.assert_array_equal(h, EPS ** (1 / 3) * np.array([1, 1, 1, 4, 250.0]))


def test_fixed_step_and_perturbed_points():
    theta = np.array([0.0, 3.0])
    h = _steps.nominal_steps(theta, 1e-3)
    np.testing.assert_array_equal(h, [1e-3, 1e-3])
    xp, xm = _steps.perturbed_points(theta, h)
    np.testing.assert_array_equal(xp, [1e-3, 3.001])
    np.testing.assert_array_equal(xm, [-1e-3, 2.999])


# -- Differences -----------------------------------------------------------------------------
def _diffs(jp, jm, xp, xm):
    return _verdict.Differences(*(np.atleast_1d(np.asarray(v, dtype=float))
                                  for v in (jp, jm, xp, xm)))


def test_numeric_slopes_and_jump_are_the_textbook_quotients():
    d = _diffs(5.0, 1.0, 1.5, 0.5)  # theta = 1, j0 = 2
    assert d.numeric()[0] == 4.0
    left, right = d.slopes(np.array([1.0]), 2.0)
    assert (left[0], right[0]) == (2.0, 6.0)
    level = _verdict.Level.of(d, np.array([1.0]), 2.0)
    assert (level.numeric[0], level.left[0], level.right[0]) == (4.0, 2.0, 6.0)
    assert level.jump()[0] == 4.0
    flat = _verdict.Level.of(_diffs(1.0, 3.0, 1.5, 0.5), np.array([1.0]), 2.0)
    assert flat.jump()[0] == 0.0  # both slopes -2


def test_roundoff_floor_is_32_eps_max_abs_j_over_h():
    d = _diffs([-3.0, 1.0], [2.0, 1.0], [1.25, 2.0], [0.75, 0.0])
    np.testing.assert_array_equal(d.roundoff(-5.0), [32 * EPS * 5 / 0.25, 32 * EPS * 5 / 1.0])
    np.testing.assert_array_equal(d.roundoff(0.5), [32 * EPS * 3 / 0.25, 32 * EPS / 1.0])
    assert _diffs(1.0, -7.0, 1.0, -1.0).roundoff(0.0)[0] == 32 * EPS * 7


def test_relative_errors_edge_cases():
    a = np.array([1.0, 0.0, 0.0, np.nan, 2.0, -1.0, 0.25, np.inf])
    n = np.array([3.0, 0.0, 2.0, 1.0, np.nan, 1.0, 0.5, 1.0])
    r = _verdict.relative_errors(a, n)
    np.testing.assert_array_equal(r[:3], [0.5, 0.0, 1.0])
    assert np.isnan(r[3]) and np.isnan(r[4]) and r[5] == 1.0 and r[6] == 1 / 3
    assert np.isnan(r[7])


def test_the_arithmetic_is_quiet_on_zeros_infinities_and_overflow():
    # fastcheck must not spray RuntimeWarnings at its users: every quotient of the verdict
    # runs under errstate
    import warnings

    big = np.array([1e308, -1e308, np.inf, 0.0, np.nan, np.inf])
    other = np.array([-1e308, 1e308, np.inf, 0.0, 1.0, -np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = _verdict.Differences(big, other, big, other)
        d.numeric()
        left, right = d.slopes(np.zeros(6), 1e308)
        d.slopes(np.array([1e308, -1e308, np.inf, 0.0, 0.0, np.inf]), np.inf)
        _verdict.relative_errors(big, other)
        _verdict.in_hull(big, other, big, big, other, 1.0)
        _verdict.in_hull(other, big, other, np.zeros(6), big, 1e308)
        _verdict.Level(big, big, other).jump()
        _verdict.Differences(np.ones(2), np.zeros(2), np.zeros(2), np.zeros(2)).numeric()
        _verdict.suspects(big, other, np.zeros(6), 1.0)
        steps = _verdict.Differences(big, other, np.full(6, 1.0), np.full(6, -1.0))
        _verdict.first_pass(big, steps, 1e308, 1.0)


def test_first_pass_tolerance_is_rtol_scale_plus_roundoff():
    d = _diffs([2.0, 2.0, 2.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-1.0, -1.0, -1.0])
    floor = d.roundoff(0.0)[0]  # numeric = 1
    t = (0.2 + floor) / 0.9  # a = 1 + t is exactly at 0.1 * (|a| + 1) + floor
    a = np.array([1.0 + t - 1e-9, 1.0 + t + 1e-9, np.inf])
    assert list(_verdict.first_pass(a, d, 0.0, 0.1)) == [False, True, True]
    inf = _diffs([np.inf], [0.0], [1.0], [-1.0])
    assert _verdict.first_pass(np.array([np.inf]), inf, 0.0, 0.1)[0]


def test_first_pass_counts_the_roundoff_floor_and_its_boundary():
    d = _diffs(1.0, -1.0, 1.0, -1.0)  # numeric 1, floor 32 eps exactly
    assert d.roundoff(0.0)[0] == 32 * EPS
    a = np.array([1.0 + 32 * EPS, 1.0 + 34 * EPS, 1.0 - 32 * EPS])
    assert list(_verdict.first_pass(a, _diffs([1.0] * 3, [-1.0] * 3, [1.0] * 3, [-1.0] * 3),
                                     0.0, 0.0)) == [False, True, False]


def test_first_pass_is_quiet_on_infinities():
    import warnings

    d = _diffs(np.inf, 0.0, 1.0, -1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _verdict.first_pass(np.array([np.inf]), d, 0.0, 1e-5)[0]


# -- direction of re-examination and the hull ------------------------------------------------
def test_step_grows_below_half_the_optimal_step():
    optimal = _steps.AUTO_RELATIVE_STEP * np.array([1.0, 2.0])
    theta = np.array([0.5, -2.0])
    at = _verdict.GROW_BELOW * optimal
    assert _verdict.GROW_BELOW == 0.5
    assert list(_verdict.grows(theta, at)) == [False, False]
    assert list(_verdict.grows(theta, at * (1 - 1e-12))) == [True, True]
    assert list(_verdict.grows(theta, -at * 0.5)) == [True, True]  # |h|


def test_truncation_factors_are_richardsons():
    central, slope = _verdict.truncation_factors(np.array([False, True]))
    np.testing.assert_allclose(central, [1 / 15, 16 / 15], rtol=1e-15)
    np.testing.assert_allclose(slope, [1 / 3, 4 / 3], rtol=1e-15)


@pytest.mark.parametrize(("left", "right"), [(-1.0, 1.0), (1.0, -1.0)])
def test_hull_bounds_and_each_tolerance_term(left, right):
    one = np.ones(1)
    zero = np.zeros(1)

    def inside(a, noise=0.0, trunc=0.0, rtol=0.0):
        return bool(_verdict.in_hull(a * one, left * one, right * one, noise * one,
                                     trunc * one, rtol)[0])

    assert inside(1.0) and inside(-1.0) and inside(0.0)
    assert not inside(1.0 + 1e-12) and not inside(-1.0 - 1e-12)
    # 2 * noise, truncation, and rtol * (|a| + max(|l|, |r|)) widen it exactly
    assert inside(1.2 - 1e-9, noise=0.1) and not inside(1.2 + 1e-9, noise=0.1)
    assert inside(-1.2 + 1e-9, noise=0.1) and not inside(-1.2 - 1e-9, noise=0.1)
    assert inside(1.3 - 1e-9, trunc=0.3) and not inside(1.3 + 1e-9, trunc=0.3)
    a = 1.0 + 0.1 * (2.0 + 0.2)  # rtol 0.1: tol = 0.1 * (|a| + 1) with |a| = 1.22
    assert inside(a - 1e-9, rtol=0.1) and not inside(a + 0.02, rtol=0.1)
    assert not bool(_verdict.in_hull(np.nan * one, -one, one, zero, zero, 0.1)[0])


# -- the comparisons of one level ---------------------------------------------------------
class _Cur(_verdict.Level):
    noise: np.ndarray


def _level(numeric=0.0, left=0.0, right=0.0, noise=0.0):
    level = _Cur(*(np.array([float(v)]) for v in (numeric, left, right)))
    level.noise = np.array([float(noise)])
    return level


def _judge(a, cur, prev=None, grow=False, rtol=0.0):
    prev = prev if prev is not None else cur
    t = _verdict.judge_level(np.array([float(a)]), cur, prev, cur.noise, np.array([grow]),
                             rtol)
    return {k: bool(getattr(t, k)[0]) for k in ("matches", "kink", "consistent", "hull")}


def test_matches_boundary_and_each_term():
    # rtol (|a| + |n|): 0.25 * (3 + 5) == |3 - 5| exactly
    assert _judge(3.0, _level(5.0), rtol=0.25)["matches"]
    assert not _judge(3.0, _level(5.0 + 1e-9), rtol=0.25)["matches"]
    # + noise
    assert _judge(1.0, _level(1.5, noise=0.5))["matches"]
    assert not _judge(1.0, _level(1.5 + 1e-9, noise=0.5))["matches"]
    # + spread / 15 (shrinking) or 16 spread / 15 (growing)
    prev = _level(16.0)
    assert _judge(2.0, _level(1.0), prev)["matches"]
    assert not _judge(2.0 + 1e-9, _level(1.0), prev)["matches"]
    assert _judge(17.0, _level(1.0), prev, grow=True)["matches"]
    assert not _judge(17.0 + 1e-9, _level(1.0), prev, grow=True)["matches"]


def test_consistent_boundary_and_each_term():
    prev = _level(5.0)
    assert _judge(13.0, _level(3.0), prev, rtol=1 / 8)["consistent"]  # 2 <= (13 + 3) / 8
    assert not _judge(13.0, _level(3.0), _level(5.0 + 1e-9), rtol=1 / 8)["consistent"]
    assert _judge(3.0, _level(1.0, noise=0.25), _level(1.5))["consistent"]  # 0.5 <= 2 * 0.25
    assert not _judge(3.0, _level(1.0, noise=0.25), _level(1.5 + 1e-9))["consistent"]


def test_consistent_needs_the_estimate_settled_next_to_its_miss():
    """A central difference that moved by more than a quarter of what it misses by is
    still converging (a kink just inside the stencil): not consistent, one more level."""
    prev = _level(1.5)
    assert _judge(3.0, _level(1.0, noise=1.0), prev)["consistent"]  # 0.5 <= 0.25 * 2
    assert not _judge(3.0 - 1e-9, _level(1.0, noise=1.0), prev)["consistent"]
    assert not _judge(1.0, _level(1.0, noise=1.0), prev)["consistent"]  # moved, misses 0


def test_kink_needs_a_jump_above_tolerance_that_does_not_scale_with_the_step():
    def kink(cur, prev, grow=False, rtol=0.0):
        return _judge(0.0, cur, prev, grow, rtol)["kink"]

    same = _level(0.0, -1.0, 1.0)  # jump 2
    assert kink(same, same)
    assert not kink(_level(0.0, -1.0, 1.0, noise=1.0), same)  # 2 > 2 * 1.0 fails
    assert kink(_level(0.0, -1.0, 1.0, noise=1.0 - 1e-9), same)
    assert kink(_level(0.0, -1.0, 1.0, noise=0.9), same)  # 2 > 2 * 0.9 (not 3 * 0.9)
    assert not kink(same, same, rtol=1.0) and kink(same, same, rtol=0.99)  # rtol (|l| + |r|)
    # shrinking: the current (smaller) step's jump must be >= half the previous one's
    assert kink(_level(0.0, -0.5, 0.5), _level(0.0, -1.0, 1.0))
    assert not kink(_level(0.0, -0.5, 0.5 - 1e-9), _level(0.0, -1.0, 1.0))
    # growing: the previous (smaller) step's jump must be >= half the current one's
    assert kink(_level(0.0, -1.0, 1.0), _level(0.0, -0.5, 0.5), grow=True)
    assert not kink(_level(0.0, -1.0, 1.0), _level(0.0, -0.5, 0.5 - 1e-9), grow=True)
    assert not kink(_level(0.0, -0.5, 0.5), _level(0.0, -1.0, 1.0 + 1e-9), grow=False)


def test_hull_truncation_from_the_change_of_the_slopes():
    prev = _level(0.0, -1.0, 1.3)  # the right slope moved by 0.3: truncation 0.1 shrinking
    cur = _level(0.0, -1.0, 1.0)
    assert _judge(1.1 - 1e-9, cur, prev)["hull"] and not _judge(1.1 + 1e-9, cur, prev)["hull"]
    prev = _level(0.0, -1.3, 1.0)  # the left one: same
    assert _judge(-1.1 + 1e-9, cur, prev)["hull"]
    assert not _judge(-1.1 - 1e-9, cur, prev)["hull"]
    # growing: 4/3 of the change
    assert _judge(1.4 - 1e-9, cur, prev, grow=True)["hull"]
    assert not _judge(1.4 + 1e-9, cur, prev, grow=True)["hull"]


def test_judge_level_is_quiet_on_overflow_and_infinities():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = _judge(1e308, _level(-1e308, -1e308, 1e308, 1e300),
                      _level(np.inf, np.inf, np.inf), rtol=1.0)
        infinite = _judge(np.inf, _level(np.inf, np.inf, np.inf),
                          _level(-np.inf, -np.inf, np.inf))
    assert huge["hull"] and not infinite["matches"] and not infinite["kink"]


# -- reexamine on synthetic costs ------------------------------------------------------------
class Recorder:
    """``evaluate`` for reexamine from a scalar function of one coordinate."""

    def __init__(self, f):
        self.f = np.vectorize(f, otypes=[float])
        self.calls = []

    def __call__(self, positions, xp, xm):
        self.calls.append((positions.copy(), xp.copy(), xm.copy()))
        return self.f(xp), self.f(xm)


def _examine(f, analytic, theta=0.0, h=1e-3, rtol=1e-5):
    theta_at, hh = np.array([theta]), np.array([h])
    xp, xm = theta_at + hh, theta_at - hh
    rec = Recorder(f)
    first = _verdict.Differences(rec.f(xp), rec.f(xm), xp, xm)
    out = _verdict.reexamine(np.array([float(analytic)]), theta_at, hh, first, float(f(theta)),
                             rtol, rec)
    return out, rec


def test_shrinks_h_over_4_then_16_when_above_the_optimal_step():
    out, rec = _examine(lambda x: abs(x) + 3 * x, 2.5)  # kink; 2.5 in [2, 4]
    assert out.kinds[0] == "kink" and not out.off_hull[0]
    assert len(rec.calls) == 1  # decided at the first level
    np.testing.assert_array_equal(rec.calls[0][1], [1e-3 / 4])
    assert out.steps[0] == 1e-3 / 4
    assert out.numeric[0] == pytest.approx(3.0)  # the first pass's value is kept on kinks


def test_grows_4h_then_16h_below_the_optimal_step():
    # a wrong value at a step of 1e-9 on a cost of 1e3: roundoff dominates, so the
    # re-examination grows the step (4h, then 16h while undecided)
    out, rec = _examine(lambda x: 1e3 + 1e-9 * x, 5.0e-9, h=1e-9)
    steps = [c[1][0] for c in rec.calls]
    assert steps[0] == 4e-9 and steps == [4e-9, 16e-9][: len(steps)]


def test_smooth_wrong_value_fails_after_both_levels_agree():
    out, rec = _examine(lambda x: np.sin(x), 1.1)  # derivative 1 at 0
    assert out.kinds[0] == "fail" and not out.off_hull[0]
    assert out.numeric[0] == pytest.approx(np.sin(2.5e-4) / 2.5e-4, rel=1e-12)
    np.testing.assert_array_equal(rec.calls[0][1], [2.5e-4])


def test_smooth_right_value_with_truncation_is_ok():
    # a suspect at a large step (truncation h^2 / 6 * 1 = 0.015): ok once the step shrinks
    out, rec = _examine(lambda x: np.sin(x), 1.0, h=0.3, rtol=1e-3)
    assert out.kinds[0] == "ok"
    assert out.numeric[0] == pytest.approx(np.sin(0.075) / 0.075)


@pytest.mark.parametrize("value", [3.0, -2.5, 100.0, 1.0 + 1e-3])
def test_kink_outside_the_hull_is_a_failure_marked_off_hull(value):
    out, rec = _examine(abs, value)
    assert out.kinds[0] == "fail" and out.off_hull[0]
    # decided at the last step: a kink off theta could have left a smaller stencil
    assert out.steps[0] == 1e-3 / 4 ** _verdict.LEVELS
    assert len(rec.calls) == _verdict.LEVELS


def test_a_kink_off_theta_outside_the_hull_is_left_behind_by_a_smaller_step():
    """|x - 2e-4| at 0 with h = 1e-3: the kink is inside the first two stencils (h/4 =
    2.5e-4) and the analytic -1 is outside its hull there, but J is smooth at 0 (the kink
    is off theta): at h/16 the stencil leaves it and -1 matches. +1, the slope beyond the
    kink, fails there."""
    def f(x):
        return abs(x - 2e-4)

    right, _ = _examine(f, -1.0)
    assert right.kinds[0] == "ok" and not right.off_hull[0]
    wrong, _ = _examine(f, 1.0)
    assert wrong.kinds[0] == "fail"


@pytest.mark.parametrize("value", [-1.0, 0.25, 1.0])
def test_kink_inside_the_hull_is_a_kink(value):
    out, _ = _examine(abs, value)
    assert out.kinds[0] == "kink" and not out.off_hull[0]
    assert out.off_hull.dtype == bool


def test_nonfinite_first_pass_and_level():
    out, rec = _examine(lambda x: np.inf if x > 0 else x, 1.0)
    assert out.kinds[0] == "nonfinite" and rec.calls == []
    out, rec = _examine(lambda x: np.nan if 0 < x < 5e-4 else x, 3.0)  # one side only
    assert out.kinds[0] == "nonfinite" and len(rec.calls) == 1
    assert out.numeric[0] == 1.0  # the last finite estimate is kept
    out, rec = _examine(lambda x: -np.inf if -5e-4 < x < 0 else x, 3.0)
    assert out.kinds[0] == "nonfinite" and len(rec.calls) == 1
    out, _ = _examine(lambda x: x, np.nan)
    assert out.kinds[0] == "nonfinite"


def test_unstable_numeric_without_kink_is_judged_against_10_rtol():
    # J jumps by 2e-12 across 0: both one-sided slopes agree (no kink signature) but the
    # central difference moves with the step, so no level decides
    def f(x):
        return x + np.sign(x) * 1e-12

    last = 1e-3 / 4 ** _verdict.LEVELS  # the smallest step tried
    final = (f(last) - f(-last)) / (2 * last)
    near, rec = _examine(f, final + 1e-8, rtol=1e-9)
    assert near.kinds[0] == "ok" and len(rec.calls) == _verdict.LEVELS
    assert near.numeric[0] == final
    far, _ = _examine(f, final + 1e-7, rtol=1e-9)
    assert far.kinds[0] == "fail"
    # the bound is 10 rtol (|a| + |n|) = 2e-8 here
    assert _examine(f, final + 1.95e-8, rtol=1e-9)[0].kinds[0] == "ok"
    assert _examine(f, final + 2.05e-8, rtol=1e-9)[0].kinds[0] == "fail"


def test_suspects_decided_at_the_first_pass_do_not_disturb_the_others():
    # three suspects: one non-finite at once, two re-examined over every level
    funcs = [lambda x: np.inf if x > 0 else x,
             lambda x: x + np.sign(x) * 1e-12,
             lambda x: 2 * x + np.sign(x) * 3e-12]
    h = np.full(3, 1e-3)
    xp, xm = h, -h

    def values(positions, xp, xm):
        jp = np.array([funcs[p](v) for p, v in zip(positions, xp)])
        jm = np.array([funcs[p](v) for p, v in zip(positions, xm)])
        return jp, jm

    first = _verdict.Differences(*values(np.arange(3), xp, xm), xp, xm)
    last = 1e-3 / 4 ** _verdict.LEVELS
    finals = [(funcs[k](last) - funcs[k](-last)) / (2 * last) for k in (1, 2)]
    analytic = np.array([1.0, finals[0] + 1e-8, finals[1] + 1e-8])
    out = _verdict.reexamine(analytic, np.zeros(3), h, first, 0.0, 1e-9, values)
    assert list(out.kinds) == ["nonfinite", "ok", "ok"]
    np.testing.assert_array_equal(out.numeric[1:], finals)


def test_levels_are_three():
    """h/4, h/16, h/64: a kink 3e-7 from theta under a step of 6e-6 (a ReLU net with
    weights ~5e-3) leaves the stencil only at h/64."""
    assert _verdict.LEVELS == 3 and _verdict.SHRINK == 4.0
    out, rec = _examine(lambda x: x + (1e-6 if x > 5e-4 else 0.0), 1.0, h=1e-3)
    # the jump at 5e-4 is crossed only at the first step: the next level agrees
    assert out.kinds[0] == "ok" and len(rec.calls) == 1


# -- _driver ---------------------------------------------------------------------------------
def test_chunk_schedule_starts_small_and_doubles():
    sizes = [s.stop - s.start for s in _driver.chunk_schedule(2000, first=256, largest=1024)]
    assert sizes == [256, 512, 1024, 208]
    assert [s.start for s in _driver.chunk_schedule(5, first=0)] == [0, 1, 3]
    assert list(_driver.chunk_schedule(0)) == []
    assert _driver.FIRST_CHUNK == 256


def _problem(cost, grad, theta):
    return prepare(cost, grad, theta, (), None)


def _targets(problem, eps="auto"):
    idx = np.arange(problem.theta.size)
    h = _steps.nominal_steps(problem.theta, eps)
    xp, xm = _steps.perturbed_points(problem.theta, h)
    return _driver.Targets(idx, problem.theta.copy(), h, xp, xm, problem.analytic.copy())


def test_run_checks_every_component_and_counts_failures():
    theta = np.linspace(-1, 1, 600)
    g = 2 * theta
    g[[5, 400]] += 1.0
    p = _problem(lambda x: float(np.sum(x**2)), g, theta)
    runner = SerialBackend(p)
    seen = []
    state = _driver.run(runner, p, _targets(p), 1e-5, np.arange(600),
                        on_chunk=lambda n, f: seen.append((n, f)))
    assert state.stop_reason == "complete" and state.done == 600 and state.error is None
    assert seen == [(256, 1), (344, 2)]
    assert list(np.flatnonzero(state.kinds == "fail")) == [5, 400]
    assert state.n_failed == 2 and state.off_hull == []
    np.testing.assert_allclose(state.numeric, 2 * theta, rtol=1e-7, atol=1e-7)
    assert list(state.finished_positions()) == list(range(600))


def test_run_stops_when_the_rule_says_and_keeps_what_was_done():
    theta = np.linspace(-1, 1, 600)
    p = _problem(lambda x: float(np.sum(x**2)), 2 * theta, theta)
    order = np.arange(600)[::-1].copy()
    state = _driver.run(SerialBackend(p), p, _targets(p), 1e-5, order,
                        stop=lambda done, failed: "enough" if done >= 256 else None)
    assert state.stop_reason == "enough" and state.done == 256
    assert list(state.finished_positions()) == list(range(344, 600))
    assert np.all(state.kinds[:344] == "")


def test_run_stores_an_exception_with_the_partial_state():
    theta = np.linspace(-1, 1, 600)

    def cost(x):
        if x[500] != theta[500]:
            raise RuntimeError("boom")
        return float(np.sum(x**2))

    p = _problem(cost, 2 * theta, theta)
    state = _driver.run(SerialBackend(p), p, _targets(p), 1e-5, np.arange(600))
    assert state.done == 256 and state.error is not None
    assert state.stop_reason == f"interrupted by {type(state.error).__name__}"
    assert type(state.error).__name__ == "CostEvaluationError"


def test_confirmation_off_the_kink_is_counted_and_bounded():
    n = _driver.MAX_CONFIRMATIONS + 3
    theta = np.zeros(n)
    calls = []

    def grad(x):  # backprop-like: 0 on the kink (outside the hull [1, 3]), right elsewhere
        calls.append(1)
        return np.where(x > 0, 3.0, np.where(x < 0, 1.0, 0.0))

    def cost(x):
        return float(np.sum(np.where(x > 0, 3 * x, x)))

    p = _problem(cost, grad, theta)
    runner = SerialBackend(p)
    state = _driver.run(runner, p, _targets(p), 1e-5, np.arange(n))
    kinds = list(state.kinds)
    assert kinds.count("kink") == _driver.MAX_CONFIRMATIONS
    assert kinds.count("fail") == 3  # beyond the bound: not excused
    assert state.off_hull == [n - 3, n - 2, n - 1]
    assert len(calls) == 1 + 2 * _driver.MAX_CONFIRMATIONS
    # 2 per component, 2 per re-examination level (an exact kink outside the hull is decided
    # at the last), 4 cost calls per confirmation (the 2 calls of the separate grad
    # function are not cost calls: API.md's evaluations counts those)
    assert runner.evaluations == (2 * n + 2 * _verdict.LEVELS * n
                                  + 4 * _driver.MAX_CONFIRMATIONS)


def test_confirmation_rejects_a_gradient_wrong_off_the_kink():
    def grad(x):
        return np.where(x > 0, 3.5, np.where(x < 0, 1.0, 0.0))  # wrong on the right

    def cost(x):
        return float(np.sum(np.where(x > 0, 3 * x, x)))

    p = _problem(cost, grad, np.zeros(2))
    state = _driver.run(SerialBackend(p), p, _targets(p), 1e-5, np.arange(2))
    assert list(state.kinds) == ["fail", "fail"]


def test_no_confirmation_for_values():
    def cost(x):
        return float(np.sum(np.where(x > 0, 3 * x, x)))

    p = _problem(cost, np.zeros(2), np.zeros(2))
    runner = SerialBackend(p)
    state = _driver.run(runner, p, _targets(p), 1e-5, np.arange(2))
    assert list(state.kinds) == ["fail", "fail"]
    assert runner.evaluations == 2 * 2 + 2 * 2 * _verdict.LEVELS
    assert state.off_hull == [0, 1]


def test_complex_method_keeps_exact_values_and_only_kinks_excuse():
    def cost(x):
        return x[0] ** 3 + abs(x[1]) + x[2] ** 3

    # x2's analytic value is off by the truncation error of the central difference at
    # eps=1e-2: central re-examination would call it ok, the exact complex step does not
    p = _problem(cost, np.array([3.0 + 1e-6, 0.5, 3.0 + 1e-4]), np.array([1.0, 0.0, 1.0]))
    runner = SerialBackend(p)
    state = _driver.run(runner, p, _targets(p, 1e-2), 1e-9, np.arange(3), method="complex")
    assert list(state.kinds) == ["fail", "kink", "fail"]
    assert state.numeric[0] == 3.0  # the complex step's exact value, not a re-examined one
    assert state.numeric[2] == 3.0
    assert state.numeric[1] == 0.0  # on the kink: the central difference, (1 - 1) / 2


def test_central_suspect_cleared_by_re_examination_is_ok():
    # x^3 at 1 with eps=1e-2: the central difference is 3 + 1e-4 (truncation), a suspect
    # at rtol=1e-5; at h/4 it settles on 3
    p = _problem(lambda x: float(x[0] ** 3), np.array([3.0]), np.array([1.0]))
    runner = SerialBackend(p)
    state = _driver.run(runner, p, _targets(p, 1e-2), 1e-5, np.arange(1))
    assert list(state.kinds) == ["ok"] and runner.evaluations == 4
    assert state.numeric[0] == pytest.approx(3 + 2.5e-3**2, rel=1e-12)


def test_backends_that_can_race_verify_every_suspect():
    calls = []

    class Verifying(SerialBackend):
        def verify(self, indices, x_plus, x_minus, j_plus, j_minus):
            calls.append((indices, x_plus, x_minus, j_plus, j_minus))

    theta = np.linspace(0.5, 1.5, 10)
    g = 2 * theta
    g[[2, 7]] = 0.0
    p = _problem(lambda x: float(np.sum(x**2)), g, theta)
    t = _targets(p)
    _driver.run(Verifying(p), p, t, 1e-5, np.arange(10))
    (call,) = calls
    np.testing.assert_array_equal(call[0], [2, 7])
    np.testing.assert_array_equal(call[1], t.x_plus[[2, 7]])
    np.testing.assert_array_equal(call[2], t.x_minus[[2, 7]])
    expected_plus = [np.sum(np.where(np.arange(10) == k, t.x_plus[k], theta) ** 2)
                     for k in (2, 7)]
    np.testing.assert_allclose(call[3], expected_plus, rtol=1e-15)
    assert np.all(call[4] < call[3])


def test_a_correct_gradient_costs_exactly_two_evaluations_per_component():
    theta = np.linspace(-1, 1, 300)
    p = _problem(lambda x: float(np.sum(np.sin(x))), np.cos(theta), theta)
    runner = SerialBackend(p)
    state = _driver.run(runner, p, _targets(p), 1e-5, np.arange(300))
    assert runner.evaluations == 600 and np.all(state.kinds == "ok")


def test_stop_rule_sees_done_and_failures():
    theta = np.linspace(-1, 1, 600)
    g = 2 * theta
    g[3] = 5.0
    p = _problem(lambda x: float(np.sum(x**2)), g, theta)
    seen = []
    _driver.run(SerialBackend(p), p, _targets(p), 1e-5, np.arange(600),
                stop=lambda done, failed: seen.append((done, failed)))
    assert seen == [(256, 1), (600, 1)]


def _piecewise(left, right):
    def cost(x):
        return float(np.sum(np.where(x > 0, right * x, left * x)))
    return cost


def test_confirmation_looks_at_both_sides():
    def grad(x):  # right on the right, wrong on the left, outside the hull at the kink
        return np.where(x > 0, 3.0, np.where(x < 0, 1.5, 0.0))

    p = _problem(_piecewise(1.0, 3.0), grad, np.zeros(1))
    state = _driver.run(SerialBackend(p), p, _targets(p), 1e-5, np.arange(1))
    assert list(state.kinds) == ["fail"] and state.off_hull == [0]


def test_confirmation_with_a_flat_side_has_no_tolerance_to_spare():
    # J = min(x, 0): on the right J is exactly 0, so the roundoff floor is 0 and only an
    # exact 0 agrees there
    def grad(x):
        return np.where(x > 0, 0.0, np.where(x < 0, 1.0, 5.0))

    p = _problem(_piecewise(1.0, 0.0), grad, np.zeros(1))
    state = _driver.run(SerialBackend(p), p, _targets(p), 1e-5, np.arange(1))
    assert list(state.kinds) == ["kink"]


def test_confirmation_tolerance_is_relative_to_the_gradient():
    def grad(x, off):  # 1e-7 relative off the kink: within rtol=1e-5
        return np.where(x > 0, 300.0 * (1 + off), np.where(x < 0, 100.0, 0.0))

    for off, kind in ((1e-7, "kink"), (1e-3, "fail")):
        p = _problem(_piecewise(100.0, 300.0), lambda x, off=off: grad(x, off), np.zeros(1))
        state = _driver.run(SerialBackend(p), p, _targets(p), 1e-5, np.arange(1))
        assert list(state.kinds) == [kind], off


def test_infinities_at_a_level_are_nonfinite_and_quiet():
    import warnings

    def f(x):
        return np.inf * np.sign(x) if 0 < abs(x) < 5e-4 else x

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, rec = _examine(f, 3.0)
    assert out.kinds[0] == "nonfinite" and len(rec.calls) == 1


def test_a_growing_step_tells_a_smooth_curvature_from_a_kink():
    # J = 1e6 x^2 near x = 1e-3 at a step of 1e-9 (grown to 4e-9, 1.6e-8): the one-sided
    # slopes differ by J'' h, which grows with the step: no kink, so a wrong value fails
    # as a plain failure, also inside the (curvature-wide) hull
    def f(x):
        return 1e6 * x * x

    for wrong in (2e3 + 1.0, 2e3 + 2e-3):
        out, rec = _examine(f, wrong, theta=1e-3, h=1e-9, rtol=1e-9)
        assert rec.calls[0][1][0] - 1e-3 == pytest.approx(4e-9, rel=1e-6)
        assert out.kinds[0] == "fail" and not out.off_hull[0], wrong


def test_a_kink_inside_the_stencil_keeps_the_difference_unsettled():
    """The measured levels of W1[0, 5] (a ReLU net with weights ~5e-3, a kink 3e-7 away):
    between h and h/4 the central difference moved by a tenth of its miss, yet the jump
    left once the curvature's share is extrapolated away, (4 * 1.97e-7 - 6.56e-7) / 3 =
    4.3e-8, is twice the miss: not settled. A smooth J with a real error is still."""
    a = -9.411858e-05
    prev = _level(-9.4141707e-05, -9.4469896e-05, -9.3813518e-05, noise=1.3e-09)
    cur = _level(-9.4140360e-05, -9.4238642e-05, -9.4042078e-05, noise=5.1e-09)
    t = _judge(a, cur, prev, rtol=1e-5)
    assert not t["matches"] and not t["kink"] and not t["consistent"]
    # the same miss with the jump shrinking like h (the curvature's only): settled, a failure
    smooth = _level(-9.4140360e-05, -9.4140360e-05 - 0.8205e-07, -9.4140360e-05 + 0.8205e-07,
                    noise=5.1e-09)
    assert _judge(a, smooth, prev, rtol=1e-5)["consistent"]
