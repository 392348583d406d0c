"""Per-component verdicts without false alarms.

First pass: a component is a *suspect* when ``|a - n|`` exceeds ``rtol * (|a| + |n|)``
plus the roundoff floor of its difference quotient (``C * eps * |J| / h``). Suspects are
re-examined at smaller steps (h/4, then h/16): a component whose numeric derivative
settles on the analytic value is noise or truncation ("ok"); one whose one-sided slopes
stay apart as the step shrinks sits on a kink ("kink", not a failure); one whose numeric
derivative is stable across steps and still differs from the analytic value fails.
Everything here is vectorised over components.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._steps import EPS_MACHINE

#: Multiple of eps*|J| assumed as the error of one cost evaluation.
ROUNDOFF_FACTOR = 32.0
#: Multiple of the measured noise sigma of a float32 cost used instead (Problem.noise).
NOISE_FACTOR = 12.0
#: Each re-examination level divides the step by this.
SHRINK = 4.0
#: Number of re-examination levels (h/4, h/16).
LEVELS = 2

OK, KINK, FAIL, NONFINITE = "ok", "kink", "fail", "nonfinite"
KIND_CODES = np.array([OK, KINK, FAIL, NONFINITE])


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

    def one_sided_jump(self, theta_at: np.ndarray, j0: float) -> np.ndarray:
        """|right slope - left slope|: shrinks like h for smooth J, stays at a kink."""
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            right = (self.j_plus - j0) / (self.x_plus - theta_at)
            left = (j0 - self.j_minus) / (theta_at - self.x_minus)
            return np.abs(right - left), np.abs(right) + np.abs(left)


def relative_errors(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """``|a - n| / (|a| + |n|)``: 0 where both are 0, NaN where either is NaN."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = np.abs(analytic - numeric)
        scale = np.abs(analytic) + np.abs(numeric)
        rel = diff / np.where(scale > 0, scale, 1.0)
    rel = np.where(scale == 0, 0.0, rel)
    return np.where(np.isnan(analytic) | np.isnan(numeric), np.nan, rel)


def first_pass(analytic, diffs: Differences, j0: float, rtol: float) -> np.ndarray:
    """Boolean mask of suspects (including non-finite values)."""
    numeric = diffs.numeric()
    tol = rtol * (np.abs(analytic) + np.abs(numeric)) + diffs.roundoff(j0)
    with np.errstate(invalid="ignore"):
        ok = np.abs(analytic - numeric) <= tol
    ok &= np.isfinite(analytic) & np.isfinite(numeric)  # inf <= inf is no agreement
    return ~ok


@dataclass
class Reexamination:
    """Outcome for the suspects: kind per suspect and the numeric value relied on."""

    kinds: np.ndarray
    numeric: np.ndarray


def reexamine(analytic, theta_at, h, first: Differences, j0: float, rtol: float,
              evaluate: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
              j_noise: float = 0.0) -> Reexamination:
    """Classify suspects with evaluations at smaller steps.

    Parameters
    ----------
    analytic, theta_at, h : ndarray
        Analytic gradient, theta and nominal step at the suspects.
    first : Differences
        The evaluations of the first pass at the suspects.
    evaluate : callable
        ``evaluate(x_plus, x_minus) -> (j_plus, j_minus)`` for the suspects (in order).
    """
    n = analytic.shape[0]
    kinds = np.full(n, "", dtype=object)
    numeric = first.numeric()
    finite0 = np.isfinite(analytic) & np.isfinite(first.j_plus) & np.isfinite(first.j_minus)
    kinds[~finite0] = NONFINITE
    prev_numeric = numeric.copy()
    prev_jump, _ = first.one_sided_jump(theta_at, j0)
    step = np.asarray(h, dtype=np.float64)
    for _level in range(LEVELS):
        open_ = np.flatnonzero(kinds == "")
        if open_.size == 0:
            break
        step = step / SHRINK
        xp, xm = theta_at[open_] + step[open_], theta_at[open_] - step[open_]
        jp, jm = evaluate(open_, xp, xm)
        cur = Differences(jp, jm, xp, xm)
        n_cur = cur.numeric()
        a = analytic[open_]
        finite = np.isfinite(jp) & np.isfinite(jm)
        noise = cur.roundoff(j0, j_noise)
        scale = np.abs(a) + np.abs(n_cur)
        spread = np.abs(prev_numeric[open_] - n_cur)
        jump, slopes = cur.one_sided_jump(theta_at[open_], j0)
        with np.errstate(invalid="ignore"):
            matches = np.abs(a - n_cur) <= rtol * scale + noise + spread / (SHRINK**2 - 1)
            kink = (jump > rtol * slopes + 4 * noise) & (jump >= 0.5 * prev_jump[open_])
            consistent = spread <= rtol * scale + 2 * noise
        decided = np.full(open_.size, "", dtype=object)
        decided[~finite] = NONFINITE
        live = finite & ~matches
        decided[finite & matches] = OK
        decided[live & kink] = KINK
        decided[live & ~kink & consistent] = FAIL
        kinds[open_] = decided
        use_new = finite & (decided != KINK)
        numeric[open_] = np.where(use_new, n_cur, numeric[open_])
        prev_numeric[open_] = n_cur
        prev_jump[open_] = jump
    undecided = kinds == ""
    if np.any(undecided):
        # Numeric derivative unstable across steps and no kink signature: call it a
        # failure only when the analytic value is far from every estimate.
        scale = np.abs(analytic[undecided]) + np.abs(numeric[undecided])
        close = np.abs(analytic[undecided] - numeric[undecided]) <= rtol * scale * 10
        kinds[undecided] = np.where(close, OK, FAIL)
    return Reexamination(kinds.astype(str), numeric)
