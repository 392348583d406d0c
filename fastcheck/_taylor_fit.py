"""The numerical machinery of the Taylor test along one direction.

Its one job: given a direction d, evaluate the remainders ``r(h)`` over a run of steps,
read the roundoff floor (and the noise the remainders show at tiny steps), fit the rate
over the asymptotic range and say what the fit could not see (the detection limit). The
public :func:`fastcheck.taylor.taylor_test` combines such runs along several directions
(see ``_taylor_blind``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._inputs import Problem
from ._steps import EPS_MACHINE
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


def _along(problem: Problem, d: np.ndarray, steps: np.ndarray | None) -> _Run:
    """The Taylor test along ``d``: the steps, the remainders, the fit and the verdict."""
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


# -- evaluation ---------------------------------------------------------------------------
class _Remainders:
    """Evaluates r(h) on a private copy of theta."""

    def __init__(self, problem: Problem, d: np.ndarray):
        self.problem, self.d = problem, d
        self.x = problem.theta.copy()
        self.call = problem.make_call(self.x)
        self.h: list[float] = []
        self.r: list[float] = []
        self.floor: list[float] = []

    def add(self, h: float) -> None:
        p = self.problem
        target = p.theta + h * self.d
        self.x[:] = target
        try:
            j = scalar_cost(self.call(), f"at theta + h*d (h = {h:.3e})")
        except (KeyboardInterrupt, CostEvaluationError, TypeError):
            raise
        except Exception as exc:  # the user's cost failed: say where
            raise CostEvaluationError(
                f"cost raised {type(exc).__name__}: {exc} -- at theta + h*d with h = {h:.3e} "
                f"(Taylor test); pass smaller steps= if the cost has a limited domain"
            ) from exc
        ensure_unmodified(self.x, target)
        with np.errstate(invalid="ignore", over="ignore"):
            linear = float(p.analytic @ (target - p.theta))  # the step actually stored
            r = abs(j - p.j0 - linear)
        self.h.append(h)
        self.r.append(r if math.isfinite(r) else math.nan)
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

