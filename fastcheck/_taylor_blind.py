"""What the directions of a Taylor test resolved, and the verdict over them.

Its one job: for each block of the gradient (and the whole of it), the best ratio of its
contribution ``|g_B . d_B|`` to the detection limit over the directions tried, the
probability that a 10 % error passed them all, whether a further direction is wanted, the
verdict over the runs (an ambiguous failure of a noisy cost waits for a second direction)
and the words for what a passing test could not see. The runs come from ``_taylor_fit``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._inputs import Problem
from ._steps import EPS_MACHINE
from ._taylor_fit import MIN_POINTS, _Run

if TYPE_CHECKING:  # pragma: no cover
    from .taylor import TaylorResult

#: Along a direction of a noisy cost a rate from this up to ``PASS_RATE`` (or a failing fit
#: of at most ``MIN_POINTS`` steps) is ambiguous: a failure only when another random
#: direction fails too (see ``_verdict``).
AMBIGUOUS_RATE = 1.3
#: A block is resolved along d when its contribution |g_B . d_B| to g.d is at least this
#: multiple of the detection limit: then a factor-2 error in its gradient (an error of half
#: that contribution, or of all of it) would show as rate 1.
RESOLVE_FACTOR = 2.0
#: ``taylor_test`` also draws further random directions (up to ``MAX_DIRECTIONS``) while
#: an error of the gradient whose scaled norm ``||e * max(1, |theta|)||_2`` is
#: ``MISS_ERROR`` times the gradient's would have passed every direction tried with a
#: probability above ``MISS_TARGET``.
MISS_ERROR = 0.1
MISS_TARGET = 0.01
#: A block whose scaled gradient norm is below this fraction of the whole gradient's is
#: zero to roundoff: there is no size of its own to resolve.
NEGLIGIBLE = 1e3 * EPS_MACHINE
#: The label of the whole gradient among the unresolved blocks (when there are several).
WHOLE = "all blocks"


def _ambiguous(run: _Run) -> bool:
    """A failure whose rate is neither about 1 nor about 2, or rests on few steps."""
    return not run.passed and not run.kink and math.isfinite(run.rate) and (
        AMBIGUOUS_RATE <= run.rate or int(np.count_nonzero(run.used)) <= MIN_POINTS)


def _verdict(runs: list[_Run], confirm: bool) -> bool | None:
    """True (pass), False (fail), or None while one ambiguous failure awaits confirmation.

    Along some directions the noise of a noisy cost leaves only two or three steps above
    it, at the largest steps, where higher-order terms still bend the curve: a right
    gradient then shows a rate between 1 and 2, or even about 1 (3 in 1000 random
    directions on float32 MLPs; every such fit rested on at most ``MIN_POINTS`` steps). So,
    with random directions and a noisy cost (``confirm``), such a failure (a rate in
    ``[AMBIGUOUS_RATE, PASS_RATE)``, or a fit of at most ``MIN_POINTS`` steps) counts only
    when a second direction fails too; any other failure fails at once.
    """
    failed = [run for run in runs if not run.passed]
    if not failed:
        return True
    if not confirm or len(failed) > 1 or not _ambiguous(failed[0]):
        return False
    later = runs.index(failed[0]) + 1 < len(runs)
    return True if later else None


def _blind_notes(best: _Resolution, unresolved: tuple[str, ...], miss: float,
                 n_runs: int, kinks: int = 0) -> list[str]:
    """What a passing test could not see, one sentence per reason (none when conclusive)."""
    notes = []
    if unresolved:
        them = "its" if len(unresolved) == 1 else "their"
        notes.append(
            f"not resolved: {best.describe(unresolved)}, so an "
            f"error as large as {them} gradient (a factor 2, a wrong sign) could go unseen "
            f"along the {n_runs} direction(s) tried")
    if miss > MISS_TARGET:
        why = (_KINK_SWAMPS if kinks else "the cost's roundoff or noise swamps its directional "
               "derivatives")
        notes.append(
            f"an error of {MISS_ERROR:.0%} of the gradient (scaled norm) would have passed "
            f"all {n_runs} random direction(s) with probability {miss:.0%}: {why}")
    if kinks and kinks >= n_runs:
        notes.append(_all_kinks(n_runs))
    return notes


#: Why errors pass along directions that cross kinks.
_KINK_SWAMPS = ("at a kink g.d is only bounded by the one-sided directional derivatives, and "
                "an error that keeps it between them goes unseen")


def _all_kinks(n_runs: int) -> str:
    return (f"every one of the {n_runs} direction(s) tried crosses a kink of the cost at "
            "theta, where no rate 2 is expected: g.d was only checked to lie between the "
            "one-sided directional derivatives")


def _blind_spot(result: TaylorResult) -> str:
    """Why a passing result is not a clean pass, in one sentence (warning and summary)."""
    n = max(1, result.rates.size)
    why = []
    if result.unresolved:
        why.append(f"a factor-2 error in the gradient of {', '.join(result.unresolved)} "
                   "could pass")
    if result.miss_probability > MISS_TARGET:
        why.append(f"an error of {MISS_ERROR:.0%} of the gradient would pass with "
                   f"probability {result.miss_probability:.0%}")
    if result.kinks and result.kinks >= n:
        why.append("no direction was smooth enough for the rate to say anything")
    hid = ("the roundoff floor and the h^2 term" if not result.kinks else
           "the roundoff floor, the h^2 term and the kinks (their one-sided derivatives)")
    return (f"it is not a clean pass: along the {n} direction(s) tried {hid} hid errors in "
            f"g.d below the detection limit (~{result.detection_limit:.1e} along the "
            f"direction shown), so {' and '.join(why)}. fc.check compares every component "
            "and has no such blind spot")


# -- what the directions resolved ---------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Group:
    """A block (or the whole gradient): its slice, analytic gradient and scaled size."""

    label: str
    where: slice
    grad: np.ndarray
    #: ``||g_B * max(1, |theta_B|)||_2``: the standard deviation of ``g_B . d_B`` along a
    #: default random direction.
    size: float


def _scaled_norm(problem: Problem) -> float:
    """``||g * max(1, |theta|)||_2``: the standard deviation of ``g . d`` along a default
    random direction."""
    return float(np.linalg.norm(problem.analytic * np.maximum(1.0, np.abs(problem.theta))))


def _groups(problem: Problem) -> list[_Group]:
    """The blocks, and the whole gradient when there are several, that have a size of their
    own (a gradient not zero to roundoff)."""
    layout, g = problem.layout, problem.analytic
    whole = [(WHOLE, slice(0, layout.size))] if len(layout) > 1 else []
    scaled = g * np.maximum(1.0, np.abs(problem.theta))
    total = float(np.linalg.norm(scaled))
    out = []
    for label, where in [(n, layout.block_slice(n)) for n in layout.names] + whole:
        size = float(np.linalg.norm(scaled[where]))
        if total > 0 and size > NEGLIGIBLE * total:
            out.append(_Group(label, where, g[where], size))
    return out


class _Resolution:
    """For each group, the best ratio ``|g_B . d_B| / limit`` over the directions tried."""

    def __init__(self, groups: list[_Group], size: float):
        self.groups = groups
        #: The probability that an error of scaled norm ``MISS_ERROR * size`` passed every
        #: direction so far (NaN for a zero gradient).
        self.miss = 1.0 if size > 0 else math.nan
        self.error = MISS_ERROR * size
        self.ratio = {grp.label: 0.0 for grp in groups}
        self.part = {grp.label: 0.0 for grp in groups}  # |g_B . d_B| at the best ratio
        self.limit = {grp.label: math.nan for grp in groups}

    def add(self, run: _Run) -> None:
        if math.isfinite(self.miss):
            limit = run.limit if math.isfinite(run.limit) else math.inf
            self.miss *= math.erf(limit / (math.sqrt(2.0) * self.error))
        for grp in self.groups:
            part = abs(float(grp.grad @ run.d[grp.where]))
            if not math.isfinite(run.limit):
                ratio = 0.0
            elif run.limit == 0.0:
                ratio = math.inf if part > 0 else 0.0
            else:
                ratio = part / run.limit
            if ratio >= self.ratio[grp.label]:
                self.ratio[grp.label], self.part[grp.label] = ratio, part
                self.limit[grp.label] = run.limit

    def unresolved(self) -> tuple[str, ...]:
        """The groups no direction resolved, in block order."""
        return tuple(grp.label for grp in self.groups
                     if self.ratio[grp.label] < RESOLVE_FACTOR)

    def wanting(self, limit: float) -> bool:
        """Is some unresolved group large enough for a random direction to resolve it?

        Along ``d = z * max(1, |theta|)`` the contribution ``g_B . d_B`` is normal with
        standard deviation ``grp.size``; below ``RESOLVE_FACTOR * limit`` a further
        direction would rarely resolve it, and none is drawn for it.
        """
        if not math.isfinite(limit):
            return False
        return any(self.ratio[grp.label] < RESOLVE_FACTOR
                   and grp.size >= RESOLVE_FACTOR * limit for grp in self.groups)

    def describe(self, labels: tuple[str, ...]) -> str:
        """How far each of ``labels`` got, in words."""
        parts = []
        for label in labels:
            what = "g.d itself was" if label == WHOLE else f"{label}'s part of g.d was"
            parts.append(f"{what} at most {self.part[label]:.1e} against a detection limit "
                         f"of {self.limit[label]:.1e}")
        return ", ".join(parts)
