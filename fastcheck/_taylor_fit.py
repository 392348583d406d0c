"""The numerical machinery of the Taylor test along one direction.

Its one job: given a direction d, evaluate the remainders ``r(h)`` over a run of steps,
read the roundoff floor (and the noise the remainders show at tiny steps), fit the rate
over the asymptotic range and say what the fit could not see (the detection limit). The
public :func:`fastcheck.taylor.taylor_test` combines such runs along several directions
(see ``_taylor_blind``).

A rate that fails is not yet a wrong gradient: at a kink of the cost at theta along d
(``|w|`` at ``w = 0``, a ReLU whose input is exactly 0) the one-sided directional
derivatives ``a+ = lim (J(theta + h d) - J(theta)) / h`` and
``a- = lim (J(theta) - J(theta - h d)) / h`` differ, and ``r(h) ~ h |a+ - g.d|`` for every
subgradient g. So a failing direction takes the mirrored steps ``J(theta - h d)`` too
(``_kink``). Their symmetric second difference ``S(h) = J(theta + h d) + J(theta - h d) -
2 J(theta)`` does not depend on g; it falls like h^2 for a smooth J and like
``h |a+ - a-|`` at a kink. When S falls at rate 1 (and its jump ``S/h`` stands well clear
of its own error) the direction crosses a kink and g is judged by what a subgradient can
be there: ``g.d`` must lie between ``a-`` and ``a+`` (both estimated, with their error,
from the halved steps, taken down to where roundoff takes over). Inside: the direction is
a *kink*, not a failure, and says nothing about the rate. Outside by more than the error:
the gradient is wrong along d and the test fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ._inputs import Problem
from ._steps import EPS_MACHINE
from ._taylor_nearby import CONFIRM_POINTS, KINK_RESOLVE, Nearby
from ._values import scalar_cost
from ._verdict import NOISE_FACTOR, ROUNDOFF_FACTOR
from .backends.serial import ensure_unmodified
from .errors import CostEvaluationError

#: The test passes when the fitted rate is at least this (2 expected, 1 for a wrong g).
PASS_RATE = 1.8
#: The default steps are halved at most this many times.
MAX_STEPS = 48
#: ... and stop after this many consecutive remainders on the roundoff floor.
FLOOR_RUN = 3
#: ... or once this many consecutive local slopes are within 0.1 of 1 (a wrong gradient).
LINEAR_RUN = 5
#: A larger step joins the fit while its local slope is within this of the fitted rate.
SLOPE_TOLERANCE = 0.25
#: Points needed for a fit.
MIN_POINTS = 3
#: A remainder joins the fit only above this multiple of the floor (roundoff then changes
#: it by about 1 %, the local slopes by a few hundredths).
FIT_MARGIN = 8.0
#: A failing direction crosses a kink when ``S(h)`` (see the module docstring) is fitted at
#: a rate within ``SLOPE_TOLERANCE`` of 1 over at least ``MIN_POINTS`` steps ...
KINK_RATE = 1.0
#: The one-sided derivatives are trusted to within this multiple of their estimated error
#: (truncation: the change of ``(J(theta +- h d) - J(theta)) / h`` across a halving of h;
#: roundoff: the floor over h).
KINK_SAFETY = 2.0


# -- one direction ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Run:
    """The remainders and the fit along one direction."""

    d: np.ndarray
    h: np.ndarray
    r: np.ndarray
    floor: np.ndarray
    rate: float
    stderr: float
    used: np.ndarray
    passed: bool
    note: str
    limit: float
    #: True when d crosses a kink of the cost at theta (then ``passed`` says whether g.d
    #: lies between the one-sided directional derivatives, not what the rate is).
    kink: bool = False
    #: At a kink: the one-sided directional derivatives, widened by their error, that g.d
    #: was compared with (``limit`` is its width); None elsewhere.
    interval: tuple[float, float] | None = None
    #: Cost evaluations at the mirrored steps ``theta - h d`` (0 unless the rate failed).
    mirrored: int = 0


def _along(problem: Problem, d: np.ndarray, steps: np.ndarray | None) -> _Run:
    """The Taylor test along ``d``: the steps, the remainders, the fit and the verdict;
    a failing rate is judged again by the mirrored steps (see ``_kink``)."""
    rem = _Remainders(problem, d)
    if steps is None:
        h = 0.1 * max(1.0, float(np.max(np.abs(problem.theta)))) / float(np.max(np.abs(d)))
        for _ in range(MAX_STEPS):
            rem.add(h)
            if rem.at_floor_run() >= FLOOR_RUN or rem.linear_run() >= LINEAR_RUN:
                break
            h /= 2.0
    else:
        for h in steps:
            rem.add(float(h))
    run = _judge(rem, d)
    if run.passed or not np.any(run.used):
        return run
    return _kink(problem, d, rem, extend=steps is None, run=run)


def _judge(rem: _Remainders, d: np.ndarray) -> _Run:
    """The rate verdict over the remainders ``rem`` holds so far."""
    hs, r, floor = np.array(rem.h), np.array(rem.r), np.array(rem.floor)
    floor = np.maximum(floor, _observed_noise(hs, r))
    rate, stderr, used, note = _fit(hs, r, floor)
    finite = np.isfinite(r)
    if np.any(used):
        passed = bool(rate >= PASS_RATE)
    elif np.any(finite):
        passed = True
        note = ("every remainder is at (or near) the roundoff floor: J is linear along d, or "
                "g exact, to machine precision; nothing fails, but no rate can be fitted")
    else:
        passed = False
        note = "every step gave a non-finite cost: try smaller steps= or another direction"
    if np.any(~finite):
        note = (note + "; " if note else "") + (
            f"{int(np.count_nonzero(~finite))} step(s) gave a non-finite cost and were left out")
    return _Run(d, hs, r, floor, float(rate), float(stderr), used, passed, note,
                _detection_limit(used, r, hs, floor))


def _detection_limit(used: np.ndarray, residuals: np.ndarray, steps: np.ndarray,
                     floor: np.ndarray) -> float:
    """r/h at the smallest fitted step (see ``TaylorResult.detection_limit``)."""
    if np.any(used):
        k = int(np.flatnonzero(used)[-1])
        return float(residuals[k] / steps[k])
    finite = np.isfinite(residuals)
    if not np.any(finite):
        return math.nan
    k = int(np.flatnonzero(finite)[-1])
    return float(floor[k] / steps[k])


# -- kinks --------------------------------------------------------------------------------
def _kink(problem: Problem, d: np.ndarray, plus: _Remainders, extend: bool, run: _Run) -> _Run:
    """A direction whose rate failed, judged again with the mirrored steps.

    When ``S(h)`` falls at rate 1 (or has not settled at 2: a small jump under the h^2
    term) the steps are halved further (when they are the default ones) until roundoff
    takes over the one-sided derivatives; if S then falls at rate 1 the direction crosses
    a kink at theta and g.d is compared with them. Otherwise (a smooth cost: S falls like
    h^2, or sits at the floor) the failure ``run`` stands. A kink *near* theta that
    the smaller steps pass under shows rate 2 there: then the run passes by its rate.
    """
    minus = _Remainders(problem, d, mirrored=True)
    for h in plus.h:
        minus.add(h)
    s_rate, s_points = _second_difference(plus, minus)
    if not _falls_like_h(s_rate, s_points) and (not extend or _smooth(s_rate, s_points)):
        return _no_kink(problem, d, run, minus, s_rate)
    if extend:  # S falls like h, or has not settled (a small jump under the h^2 term)
        _extend(plus, minus)
        run = _judge(plus, d)
        if run.passed:  # the kink is near theta, not at it: the smaller steps see h^2
            return replace(run, mirrored=len(minus.h))
        s_rate, s_points = _second_difference(plus, minus)
        if not _falls_like_h(s_rate, s_points):
            return _no_kink(problem, d, run, minus, s_rate)
    (rho_p, err_p), (rho_m, err_m) = _one_sided(plus), _one_sided(minus)
    tol = KINK_SAFETY * (err_p + err_m)
    jump = rho_p + rho_m  # a+ - a-: S(h) / h as h -> 0
    if not (math.isfinite(tol) and abs(jump) >= KINK_RESOLVE * tol):
        return _no_kink(problem, d, run, minus, s_rate)
    gd = float(problem.analytic @ d)
    # rho_p = a+ - g.d and rho_m = g.d - a-: g.d lies between a- and a+ when they have the
    # same sign; else it lies outside by the smaller of the two.
    lo, hi = gd + min(rho_p, -rho_m) - tol, gd + max(rho_p, -rho_m) + tol
    outside = max(min(rho_p, -rho_m), min(-rho_p, rho_m))
    passed = bool(outside <= tol)
    nearby = (Nearby(problem, d, plus.h[0], gd, tol)
              if not passed and problem.grad_fn is not None else None)
    if nearby is not None and nearby.spans(gd, tol):
        passed = True
    kink = (f"d crosses a kink of the cost at theta: J(theta + h d) + J(theta - h d) - "
            f"2 J(theta) falls at rate {s_rate:.2f} (h, not h^2), the one-sided directional "
            f"derivatives differ by {abs(jump):.2e}, and the remainder falls like h for any "
            "subgradient")
    if nearby is not None and passed:
        lo, hi = min(lo, nearby.lo - tol), max(hi, nearby.hi + tol)
        note = (f"{kink}; g.d = {gd:.6e} lies outside them, but the gradient function, "
                f"confirmed by central differences at {nearby.confirmed} of "
                f"{nearby.tried} points next to theta (off the kinks), gives g.d from "
                f"{nearby.lo:.6e} to {nearby.hi:.6e} there: several kinks meet at theta, "
                "and g is the gradient of a smooth piece next to it (a Clarke subgradient); "
                "an error in g.d that keeps it inside goes unseen")
    elif passed:
        note = (f"{kink}; g.d = {gd:.6e} lies between them ([{lo:.6e}, {hi:.6e}] with their "
                "error): a subgradient along d, whose rate says nothing, and an error in g.d "
                "that keeps it inside goes unseen")
    else:
        note = (f"{kink}; g.d = {gd:.6e} lies outside them ([{lo:.6e}, {hi:.6e}] with their "
                f"error) by {outside - tol:.2e}: not a subgradient, the gradient is wrong "
                "along d")
        if nearby is not None:
            note += (" (nor the gradient of a smooth piece next to theta: "
                     + (f"at the {nearby.confirmed} of {nearby.tried} nearby points where "
                        f"the gradient function was confirmed it gives g.d from "
                        f"{nearby.lo:.6e} to {nearby.hi:.6e})" if nearby.confirmed else
                        f"the gradient function disagrees with the cost at all "
                        f"{CONFIRM_POINTS} nearby points)"))
    extra = len(minus.h) + (nearby.evaluations if nearby is not None else 0)
    return replace(run, passed=passed, note=_join(note, run.note), limit=hi - lo, kink=True,
                   interval=(lo, hi), mirrored=extra)


def _join(first: str, second: str) -> str:
    return "; ".join(part for part in (first, second) if part)


def _no_kink(problem: Problem, d: np.ndarray, run: _Run, minus: _Remainders,
             s_rate: float) -> _Run:
    """No kink along d: the failure stands, unless kinks meet at theta and cancel along d
    (``relu(t) - relu(-t) = t``): then g may still be the gradient of a piece next to
    theta, confirmed as in ``_kink`` among pieces that differ from each other."""
    how = (f"falls at rate {s_rate:.2f}" if math.isfinite(s_rate)
           else "is at the roundoff floor")
    note = (f"no kink at theta along d: J(theta + h d) + J(theta - h d) - 2 J(theta) {how} "
            "(like h only at a kink)")
    extra = len(minus.h)
    if problem.grad_fn is not None and math.isfinite(run.rate):
        gd = float(problem.analytic @ d)
        nearby = Nearby(problem, d, run.h[0], gd, 0.0, distinct=True)
        extra += nearby.evaluations
        if nearby.spans(gd, 0.0, distinct=True):
            note = (f"{note}, but several kinks meet at theta and cancel along d: g.d = "
                    f"{gd:.6e} is not J's derivative along d, yet the gradient function, "
                    f"confirmed by central differences at {nearby.confirmed} of "
                    f"{nearby.tried} points next to theta (off the kinks), gives g.d from "
                    f"{nearby.lo:.6e} to {nearby.hi:.6e} there: g is the gradient of a "
                    "smooth piece next to theta (a Clarke subgradient), and an error in g.d "
                    "that keeps it inside goes unseen")
            return replace(run, passed=True, note=_join(note, run.note),
                           limit=nearby.hi - nearby.lo, kink=True,
                           interval=(nearby.lo, nearby.hi), mirrored=extra)
    return replace(run, note=_join(run.note, note), mirrored=extra)


def _second_difference(plus: _Remainders, minus: _Remainders) -> tuple[float, int]:
    """The fitted rate of ``|S(h)|`` and the number of steps in its fit."""
    n = len(minus.h)
    h = np.array(plus.h[:n])
    j0 = plus.problem.j0
    with np.errstate(invalid="ignore", over="ignore"):
        s = np.abs(np.array(plus.j[:n]) + np.array(minus.j) - 2.0 * j0)
    floor = np.array(plus.floor[:n]) + np.array(minus.floor)
    rate, _, used, _ = _fit(h, np.where(np.isfinite(s), s, np.nan), floor)
    return float(rate), int(np.count_nonzero(used))


def _smooth(rate: float, points: int) -> bool:
    """S at the floor, or falling like h^2 (or faster): no kink shows above the floor."""
    return points < 2 or not math.isfinite(rate) or rate >= 2.0 - SLOPE_TOLERANCE


def _falls_like_h(rate: float, points: int) -> bool:
    return points >= MIN_POINTS and abs(rate - KINK_RATE) <= SLOPE_TOLERANCE


def _quotients(rem: _Remainders) -> tuple[np.ndarray, np.ndarray]:
    """``(J(theta +- h d) - J(theta) -+ h g.d) / h`` and its roundoff, per step."""
    h = np.array(rem.h)
    return np.array(rem.signed) / h, np.array(rem.floor) / h


def _one_sided(rem: _Remainders) -> tuple[float, float]:
    """The limit of the quotient (a+ - g.d, or g.d - a- for the mirrored steps) and its
    error: at the step where the larger change to a neighbouring step plus the roundoff
    is least (NaN, inf without three finite steps in a row)."""
    q, round_q = _quotients(rem)
    best, err = math.nan, math.inf
    for k in range(1, q.shape[0] - 1):
        e = max(abs(q[k - 1] - q[k]), abs(q[k] - q[k + 1])) + round_q[k]
        if math.isfinite(e) and e < err:
            best, err = float(q[k]), float(e)
    return best, err


#: The steps at a kink are halved until the error of both one-sided quotients is this
#: multiple of its least value so far (past the step where roundoff takes over).
PAST_OPTIMUM = 4.0


def _extend(plus: _Remainders, minus: _Remainders) -> None:
    """Halve the steps on both sides until roundoff takes over (or ``MAX_STEPS``)."""
    h = plus.h[-1]
    while len(plus.h) < MAX_STEPS and not (_past_optimum(plus) and _past_optimum(minus)):
        h /= 2.0
        plus.add(h)
        minus.add(h)


def _past_optimum(rem: _Remainders) -> bool:
    q, round_q = _quotients(rem)
    with np.errstate(invalid="ignore"):
        err = np.abs(np.diff(q)) + round_q[1:]
    if err.shape[0] == 0 or not math.isfinite(err[-1]):
        return err.shape[0] > 0
    finite = err[np.isfinite(err)]
    return bool(err[-1] > PAST_OPTIMUM * np.min(finite))


# -- evaluation ---------------------------------------------------------------------------
class _Remainders:
    """Evaluates r(h) on a private copy of theta (at ``theta - h d`` when ``mirrored``)."""

    def __init__(self, problem: Problem, d: np.ndarray, mirrored: bool = False):
        self.problem, self.d = problem, (-d if mirrored else d)
        self.where = "theta - h*d" if mirrored else "theta + h*d"
        self.x = problem.theta.copy()
        self.call = problem.make_call(self.x)
        self.h: list[float] = []
        self.r: list[float] = []
        self.floor: list[float] = []
        self.j: list[float] = []  # J at the step
        self.signed: list[float] = []  # J - J0 - g . step, with its sign

    def add(self, h: float) -> None:
        p = self.problem
        target = p.theta + h * self.d
        self.x[:] = target
        try:
            j = scalar_cost(self.call(), f"at {self.where} (h = {h:.3e})")
        except (KeyboardInterrupt, CostEvaluationError, TypeError):
            raise
        except Exception as exc:  # the user's cost failed: say where
            raise CostEvaluationError(
                f"cost raised {type(exc).__name__}: {exc} -- at {self.where} with h = {h:.3e} "
                f"(Taylor test); pass smaller steps= if the cost has a limited domain"
            ) from exc
        ensure_unmodified(self.x, target)
        with np.errstate(invalid="ignore", over="ignore"):
            linear = float(p.analytic @ (target - p.theta))  # the step actually stored
            signed = j - p.j0 - linear
        finite = math.isfinite(signed)
        self.h.append(h)
        self.r.append(abs(signed) if finite else math.nan)
        self.signed.append(signed if finite else math.nan)
        self.j.append(j if math.isfinite(j) else math.nan)
        scale = max(abs(p.j0), abs(j)) if math.isfinite(j) else abs(p.j0)
        roundoff = max(ROUNDOFF_FACTOR * EPS_MACHINE * scale, NOISE_FACTOR * p.noise)  # float32
        self.floor.append(roundoff + EPS_MACHINE * abs(linear))

    def at_floor_run(self) -> int:
        k = 0
        for r, f in zip(reversed(self.r), reversed(self.floor)):
            if not (math.isfinite(r) and r <= f):
                break
            k += 1
        return k

    def linear_run(self) -> int:
        r = np.asarray(self.r)
        slopes = _local_slopes(np.asarray(self.h), r)
        k = 0
        for s in slopes[::-1]:
            if not (math.isfinite(s) and abs(s - 1.0) <= 0.1):
                break
            k += 1
        return k


def _local_slopes(h: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Slope of log r between consecutive steps (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(r[:-1] / r[1:]) / np.log(h[:-1] / h[1:])


#: Steps this many octaves below the first are "tiny": a remainder there is noise plus at
#: most 2**-NOISE_OCTAVES of the signal the larger steps show.
NOISE_OCTAVES = 30


def _observed_noise(h: np.ndarray, r: np.ndarray) -> float:
    """The noise the remainders show at tiny steps (0 when the steps never got tiny).

    The floor ``eps * |J|`` assumes the roundoff of J is relative to |J(theta)|. When
    J(theta) is ~0 by cancellation of O(1) terms the real noise is far above it, and the
    fit would read that noise as a slope. At steps ``2**-NOISE_OCTAVES`` below the first
    one the Taylor remainder of a right gradient (~h^2) is far below roundoff and that
    of a wrong one (~h) is ``2**-NOISE_OCTAVES`` of its value at the first step, so the
    largest remainder there is a floor that hides no slope above it: a wrong gradient
    still shows rate 1 over the steps between.
    """
    if h.shape[0] == 0:
        return 0.0
    tiny = (h <= h[0] * 2.0 ** -NOISE_OCTAVES) & np.isfinite(r)
    if np.count_nonzero(tiny) < 3:
        return 0.0
    return float(np.max(r[tiny]))


# -- the fit ------------------------------------------------------------------------------
def _fit(h: np.ndarray, r: np.ndarray, floor: np.ndarray
         ) -> tuple[float, float, np.ndarray, str]:
    """Rate, its standard error, the mask of fitted steps and a note."""
    usable = np.isfinite(r) & (r > FIT_MARGIN * floor)
    used = np.zeros(h.shape[0], dtype=bool)
    if not np.any(usable):
        return math.nan, math.nan, used, ""
    # The asymptotic range: the run of usable steps ending at the smallest usable one.
    end = int(np.flatnonzero(usable)[-1])
    start = end
    while start > 0 and usable[start - 1]:
        start -= 1
    if end - start + 1 < 2:
        return math.nan, math.nan, used, ""
    lo = max(start, end - MIN_POINTS + 1)
    slopes = _local_slopes(h, r)
    with np.errstate(divide="ignore"):  # a remainder of exactly 0 is never fitted
        logh, logr = np.log(h), np.log(r)
    rate = _regress(logh[lo:end + 1], logr[lo:end + 1])[0]
    while lo > start and abs(slopes[lo - 1] - rate) <= SLOPE_TOLERANCE:
        lo -= 1
        rate = _regress(logh[lo:end + 1], logr[lo:end + 1])[0]
    used[lo:end + 1] = True
    rate, stderr = _regress(logh[used], logr[used])
    note = ""
    if used.sum() < MIN_POINTS:
        note = "only two steps above the roundoff floor: the rate rests on one pair"
    return rate, stderr, used, note


def _regress(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.shape[0] == 2:
        return float((y[0] - y[1]) / (x[0] - x[1])), math.nan
    import scipy.stats  # lazily: 0.5 s, and only the fit of three or more steps needs it

    fit = scipy.stats.linregress(x, y)
    return float(fit.slope), float(fit.stderr)

