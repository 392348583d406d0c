"""Per-component verdicts without false alarms, and without excusing a wrong value.

First pass: a component is a *suspect* when ``|a - n|`` exceeds ``rtol * (|a| + |n|)``
plus the roundoff floor of its difference quotient (``C * eps * |J| / h``).

Re-examination moves the step in the direction that lowers the error estimate: when the
step is below the optimal one (``h < cbrt(eps_machine) * max(1, |theta|) / 2``, roundoff
dominates) it grows (h*4, h*16, h*64); otherwise truncation may dominate and it shrinks (h/4,
h/16, h/64). At each level a suspect is:

- ``ok`` when the central difference there agrees with the analytic value (within rtol,
  the roundoff floor and the truncation estimate from the change across levels);
- a *kink candidate* when its one-sided slopes ``r = (J+ - J0)/h`` and
  ``l = (J0 - J-)/h`` stay apart from one step to the next (a smooth J's jump ``|r - l|``
  scales like h; a kink's does not);
- ``fail`` when the central difference is stable across steps (its change below the
  floor and below a quarter of its miss) and still differs.

**The kink rule.** A kink candidate is called ``kink`` only when its analytic value ``a``
lies in the hull of the one-sided slopes, ``min(l, r) - tol <= a <= max(l, r) + tol``,
with ``tol = rtol * (|a| + max(|l|, |r|)) + 2 * roundoff + truncation`` (truncation: the
change of each slope between the last two steps, extrapolated). Every value of that hull is
a one-sided derivative of ``t -> J(theta + t e_i)`` or a convex combination of them, so it
is the i-th component of some Clarke subgradient of J at theta: a value a correct gradient
can have. A value outside the hull (|x| at 0 with slopes -1 and 1 given 3.0, -2.5 or 100)
is a failure, whatever the size of the jump.

The one exception is the API's "confirmed at a nearby point off the kink": when one
parameter moves several kinks at once (a ReLU unit at 0 for several examples with inputs
of both signs), backprop's subgradient can lie outside the hull. Such candidates are
returned as ``fail`` with ``off_hull`` set; the driver then evaluates the gradient
function at ``theta +- h e_i`` (where the kinks are left behind) and compares it with
central differences there. Only if both sides agree is the component a kink. That
confirmation cannot excuse an error that is still there a step away from the kink (a wrong
formula, scale, index or missing term); an analytic value that is wrong *only* exactly on
the kink and outside the hull would pass it, which is why an array ``grad`` (no function
to call elsewhere) never gets it: off the hull is then a failure.

Everything here is vectorised over components.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._steps import AUTO_RELATIVE_STEP, EPS_MACHINE

#: Multiple of eps*|J| assumed as the error of one cost evaluation.
ROUNDOFF_FACTOR = 32.0
#: Multiple of the measured noise sigma of a float32 cost used instead (Problem.noise).
NOISE_FACTOR = 12.0
#: Each re-examination level multiplies or divides the step by this.
SHRINK = 4.0
#: Number of re-examination levels (h/4, h/16, h/64 or h*4, h*16, h*64).
LEVELS = 3
#: A failure needs the central difference settled: its change across the last two steps
#: at most this fraction of its difference from the analytic value (else one more level).
SETTLED_FRACTION = 0.25
#: A step below this fraction of the optimal one is re-examined at larger steps.
GROW_BELOW = 0.5

OK, KINK, FAIL, NONFINITE = "ok", "kink", "fail", "nonfinite"


@dataclass
class Differences:
    """Cost values around theta for a set of components at one step."""

    j_plus: np.ndarray
    j_minus: np.ndarray
    x_plus: np.ndarray
    x_minus: np.ndarray

    def numeric(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return (self.j_plus - self.j_minus) / (self.x_plus - self.x_minus)

    def roundoff(self, j0: float, noise: float = 0.0) -> np.ndarray:
        """Roundoff floor of the central quotient: C * eps * |J| / h (or C' * sigma / h for
        a cost with measured noise sigma, see Problem.noise)."""
        scale = np.maximum(np.maximum(np.abs(self.j_plus), np.abs(self.j_minus)), abs(j0))
        error = np.maximum(ROUNDOFF_FACTOR * EPS_MACHINE * scale, NOISE_FACTOR * noise)
        return error * 2.0 / (self.x_plus - self.x_minus)

    def slopes(self, theta_at: np.ndarray, j0: float) -> tuple[np.ndarray, np.ndarray]:
        """The one-sided quotients ``(left, right)`` around ``theta_at``."""
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            right = (self.j_plus - j0) / (self.x_plus - theta_at)
            left = (j0 - self.j_minus) / (theta_at - self.x_minus)
        return left, right


@dataclass
class Level:
    """What one step tells about each component: the central difference and the
    one-sided slopes."""

    numeric: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @classmethod
    def of(cls, d: Differences, theta_at: np.ndarray, j0: float) -> Level:
        left, right = d.slopes(theta_at, j0)
        return cls(d.numeric(), left, right)

    def at(self, idx: np.ndarray) -> Level:
        return Level(self.numeric[idx], self.left[idx], self.right[idx])

    def put(self, idx: np.ndarray, other: Level) -> None:
        self.numeric[idx], self.left[idx], self.right[idx] = (other.numeric, other.left,
                                                               other.right)

    def jump(self) -> np.ndarray:
        """``|right - left|``: shrinks like h for a smooth J, stays at a kink."""
        with np.errstate(invalid="ignore", over="ignore"):
            return np.abs(self.right - self.left)


def relative_errors(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """``|a - n| / (|a| + |n|)``: 0 where both are 0, NaN where either is NaN."""
    with np.errstate(invalid="ignore", over="ignore"):  # 0/0 is invalid, never divide
        rel = np.abs(analytic - numeric) / (np.abs(analytic) + np.abs(numeric))
    return np.where((analytic == 0) & (numeric == 0), 0.0, rel)


def suspects(analytic, numeric, floor, rtol: float) -> np.ndarray:
    """Boolean mask of suspects: ``|a - n| > rtol (|a| + |n|) + floor``, or non-finite."""
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.abs(analytic - numeric) <= rtol * (np.abs(analytic) + np.abs(numeric)) + floor
    ok &= np.isfinite(analytic) & np.isfinite(numeric)  # inf <= inf is no agreement
    return ~ok


def first_pass(analytic, diffs: Differences, j0: float, rtol: float) -> np.ndarray:
    """Suspects of a central difference (its floor: the roundoff)."""
    return suspects(analytic, diffs.numeric(), diffs.roundoff(j0), rtol)


def grows(theta_at: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per component: re-examine at larger steps (roundoff dominates: ``h`` is below
    GROW_BELOW times the optimal step), else at smaller ones."""
    optimal = AUTO_RELATIVE_STEP * np.maximum(1.0, np.abs(theta_at))
    return np.abs(h) < GROW_BELOW * optimal


def truncation_factors(grow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Richardson factors turning the change of an estimate between two levels into the
    error of the current level's: for the central difference (error ~ h^2) and for the
    one-sided slopes (error ~ h). Shrinking by SHRINK = 4: 1/15 and 1/3; growing: 16/15
    and 4/3."""
    ratio = np.where(grow, SHRINK, 1.0)
    return ratio**2 / (SHRINK**2 - 1.0), ratio / (SHRINK - 1.0)


def in_hull(analytic, left, right, noise, truncation, rtol: float) -> np.ndarray:
    """Is the analytic value within the hull of the one-sided slopes (with tolerance)?"""
    with np.errstate(invalid="ignore", over="ignore"):
        tol = (rtol * (np.abs(analytic) + np.maximum(np.abs(left), np.abs(right)))
               + 2.0 * noise + truncation)
        return ((analytic >= np.minimum(left, right) - tol)
                & (analytic <= np.maximum(left, right) + tol))


@dataclass
class LevelTests:
    """The comparisons made at one level (boolean arrays over components)."""

    matches: np.ndarray  # the central difference agrees with the analytic value
    kink: np.ndarray  # the one-sided slopes stay apart from one step to the next
    consistent: np.ndarray  # the central difference is stable across the two steps
    hull: np.ndarray  # the analytic value lies in the hull of the one-sided slopes
    kink_inside: np.ndarray  # a kink inside the stencil can explain the miss


def judge_level(a: np.ndarray, cur: Level, prev: Level, noise: np.ndarray, grow: np.ndarray,
                rtol: float, prev_kinky: np.ndarray | None = None) -> LevelTests:
    """Compare the analytic values ``a`` with the level ``cur`` (previous step: ``prev``;
    ``noise``: the roundoff floor of ``cur``'s central difference).

    - matches: ``|a - n| <= rtol (|a| + |n|) + noise + truncation of n`` (the truncation
      read from the change since the previous step, unless a kink was inside that step:
      ``prev_kinky``, then its change is the kink's, not truncation);
    - kink: ``|r - l| > rtol (|r| + |l|) + 2 noise`` and the jump at the smaller of the two
      steps is at least half the jump at the larger (a smooth J's jump scales with h).
      2, not 4 (the bound of the jump's roundoff, 4 * ROUNDOFF_FACTOR eps |J| / h): a kink
      whose jump is below the threshold moves the central difference by up to half of it,
      and ``matches`` allows one ``noise``; with 4, a jump between 2 and 4 noise was
      neither a kink nor a match, and a correct gradient failed (a float32 cost on a ReLU
      kink, 9 of 40 seeds). For a float32 cost the bound is 12 sigma per evaluation
      (NOISE_FACTOR), so 2 noise is still ~10 standard deviations of the jump's noise
      (sqrt(6) sigma / h);
    - consistent: the central differences of both steps agree within
      ``rtol (|a| + |n|) + 2 noise`` and within ``SETTLED_FRACTION |a - n|``, and no kink
      inside the stencil explains the miss (a persistent jump of the one-sided slopes, or
      the jump left once the curvature's share is extrapolated away, as large as it);
    - hull: :func:`in_hull`, the slopes' truncation estimated from their change.
    """
    central_trunc, slope_trunc = truncation_factors(grow)
    with np.errstate(invalid="ignore", over="ignore"):
        n = cur.numeric
        scale = np.abs(a) + np.abs(n)
        spread = np.abs(prev.numeric - n)
        truncation_n = spread * central_trunc
        if prev_kinky is not None:
            truncation_n = np.where(prev_kinky, 0.0, truncation_n)
        matches = np.abs(a - n) <= rtol * scale + noise + truncation_n
        # the signed jumps r - l at the smaller and the larger of the two steps
        signed, prev_signed = cur.right - cur.left, prev.right - prev.left
        small = np.where(grow, prev_signed, signed)
        large = np.where(grow, signed, prev_signed)
        jump, small_jump, large_jump = np.abs(signed), np.abs(small), np.abs(large)
        slopes = np.abs(cur.left) + np.abs(cur.right)
        kink = (jump > rtol * slopes + 2 * noise) & (small_jump >= 0.5 * large_jump)
        # stable across the two steps, and moving much less than it misses by: a central
        # difference still converging (a kink just inside the stencil, with a slope change
        # as small as the curvature's, as in a ReLU net with weights ~1e-3) may move by
        # less than the roundoff floor and yet not have arrived
        miss = np.abs(a - n)
        consistent = (spread <= rtol * scale + 2 * noise) & (spread <= SETTLED_FRACTION * miss)
        # nor is a difference settled whose miss a kink inside the stencil can explain: a
        # jump of the one-sided slopes that persists (below the kink threshold), or the
        # part of the jump left once the curvature's (proportional to h) is extrapolated
        # away, at least as large as the miss (a kink off theta by d < h shifts the
        # central difference by up to half its slope change, until the step is below d)
        excess = np.abs(SHRINK * small - large) / (SHRINK - 1.0)
        small_noise = noise * np.where(grow, SHRINK, 1.0)
        kink_inside = (((small_jump >= 0.5 * large_jump) & (jump > noise) & (miss <= jump))
                       | ((excess > small_noise) & (miss <= excess)))
        consistent &= ~kink_inside
        truncation = slope_trunc * np.maximum(np.abs(cur.left - prev.left),
                                              np.abs(cur.right - prev.right))
    return LevelTests(matches, kink, consistent,
                      in_hull(a, cur.left, cur.right, noise, truncation, rtol), kink_inside)


@dataclass
class Reexamination:
    """Outcome for the suspects.

    ``kinds`` per suspect and the ``numeric`` value relied on; ``off_hull`` marks the
    failures that look like kinks but whose analytic value lies outside the hull of the
    one-sided slopes (a caller that can evaluate the gradient elsewhere may confirm them
    off the kink), and ``steps`` the half-step at which each suspect was decided.
    """

    kinds: np.ndarray
    numeric: np.ndarray
    off_hull: np.ndarray
    steps: np.ndarray


def reexamine(analytic, theta_at, h, first: Differences, j0: float, rtol: float,
              evaluate: Callable[[np.ndarray, np.ndarray, np.ndarray],
                                 tuple[np.ndarray, np.ndarray]],
              j_noise: float = 0.0) -> Reexamination:
    """Classify suspects with evaluations at other steps (see the module docstring).

    Parameters
    ----------
    analytic, theta_at, h : ndarray
        Analytic gradient, theta and nominal step at the suspects.
    first : Differences
        The evaluations of the first pass at the suspects.
    j0 : float
        The cost at theta.
    rtol : float
        Relative tolerance.
    evaluate : callable
        ``evaluate(positions, x_plus, x_minus) -> (j_plus, j_minus)`` for the suspects at
        ``positions`` (in order).

    Returns
    -------
    Reexamination
    """
    n = analytic.shape[0]
    kinds = np.full(n, "", dtype=object)
    off_hull = np.zeros(n, dtype=bool)
    numeric = first.numeric()
    finite0 = np.isfinite(analytic) & np.isfinite(first.j_plus) & np.isfinite(first.j_minus)
    kinds[~finite0] = NONFINITE
    prev = Level.of(first, theta_at, j0)
    step = h.copy()
    steps = h.copy()
    grow = grows(theta_at, h)
    factor = np.where(grow, SHRINK, 1.0 / SHRINK)
    inside = np.zeros(n, dtype=bool)  # at its last level, a kink inside could explain it
    kinky = np.zeros(n, dtype=bool)  # a kink was inside the previous level's stencil
    outside = np.zeros(n, dtype=bool)  # a kink with the analytic value outside its hull seen
    for level in range(LEVELS):
        last = level == LEVELS - 1
        open_ = np.flatnonzero(kinds == "")
        if open_.size == 0:
            break
        step[open_] = step[open_] * factor[open_]
        steps[open_] = step[open_]
        xp, xm = theta_at[open_] + step[open_], theta_at[open_] - step[open_]
        jp, jm = evaluate(open_, xp, xm)
        diffs = Differences(jp, jm, xp, xm)
        cur = Level.of(diffs, theta_at[open_], j0)
        t = judge_level(analytic[open_], cur, prev.at(open_), diffs.roundoff(j0, j_noise),
                        grow[open_], rtol, kinky[open_])
        finite = np.isfinite(jp) & np.isfinite(jm)
        live = finite & ~t.matches
        decided = np.full(open_.size, "", dtype=object)
        decided[~finite] = NONFINITE
        decided[finite & t.matches] = OK
        # outside the hull: a failure at the last step; before it, the kink may sit off
        # theta (J smooth at theta, its derivative unique) and leave a smaller stencil,
        # where the value must then match. Once seen outside, a later hull never excuses it
        off = live & t.kink & (~t.hull | outside[open_])
        decided[live & t.kink & ~off] = KINK
        decided[off] = FAIL if last else ""
        decided[live & ~t.kink & t.consistent] = FAIL
        off_hull[open_] = off & last
        outside[open_] |= off
        inside[open_] = t.kink_inside
        kinky[open_] = t.kink | t.kink_inside
        kinds[open_] = decided
        numeric[open_] = np.where(finite & ~t.kink, cur.numeric, numeric[open_])
        prev.put(open_, cur)
    undecided = kinds == ""
    if np.any(undecided):
        # Numeric derivative unstable across steps and no kink signature: call it a
        # failure only when the analytic value is far from every estimate.
        scale = np.abs(analytic[undecided]) + np.abs(numeric[undecided])
        close = np.abs(analytic[undecided] - numeric[undecided]) <= rtol * scale * 10
        # ... and never one seen outside a kink's hull that no smaller step cleared
        close &= ~outside[undecided]
        kinds[undecided] = np.where(close, OK, FAIL)
        # still moving with kinks inside the stencil down to the smallest step (one
        # parameter moving several kinks at once, e.g. a bias of a layer with many units
        # near 0): a failure the caller may confirm off the kinks, like one off the hull
        off_hull[undecided] = ~close & (inside[undecided] | outside[undecided])
    return Reexamination(kinds.astype(str), numeric, off_hull, steps)
