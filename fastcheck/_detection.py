"""What a directional check could have missed: the smallest single-component error seen.

Used by ``directional.run_directional``; the numbers land on ``report.directional`` and in
the headline of a passing directional report.
"""

from __future__ import annotations

import math

import numpy as np

from ._inputs import Problem
from ._verdict import OK
from .report import Directional, global_relative_error

__all__ = ["detection_limits"]


def detection_limits(tests: list, problem: Problem, steps: np.ndarray,
                     probability: float) -> Directional:
    """What the directions could have missed: the smallest single-component error seen.

    A component j off by delta moves g.d along direction k by ``u_kj delta h_j / sqrt(N)``
    on top of its residual ``r_k = a_k - n_k``: direction k sees it whatever the sign
    when that exceeds ``tol_k + |r_k|``, for one sign of two above ``tol_k - |r_k|``,
    never below (nor on a kink). With h_j the smallest step, the limit is the smallest
    delta seen with probability ``probability`` over the random signs;
    ``guaranteed_limit`` the one seen for sure. Both are relative to ``||g||_2``.

    Only the directions that passed count: a failed one already fails, so it cannot tell
    whether one more error is there (whether that error is then located is up to the
    group testing, which guarantees nothing for it). Were they counted, every failed
    direction would "see" any error with probability 1/2, and a report that could not
    locate a thinly spread error would state a tiny limit.
    """
    n = problem.layout.size
    g_norm = float(np.linalg.norm(problem.analytic))
    usable = [t for t in tests if t.kind == OK and math.isfinite(t.tolerance)
              and math.isfinite(t.analytic - t.numeric)]
    scale = math.sqrt(n) / float(np.min(steps))
    lo = np.array([max(t.tolerance - abs(t.analytic - t.numeric), 0.0) for t in usable])
    hi = np.array([t.tolerance + abs(t.analytic - t.numeric) for t in usable])
    limit = guaranteed = math.inf
    if usable:
        guaranteed = float(hi.min()) * scale
        for c in np.unique(np.concatenate([lo, hi])):
            e = c * (1 + 1e-12)
            miss = np.prod(np.where(e > hi, 0.0, np.where(e > lo, 0.5, 1.0)))
            if 1.0 - miss >= probability:
                limit = float(c) * scale
                break

    def relative(x: float) -> float:
        return x / g_norm if g_norm > 0 else (0.0 if x == 0 else math.inf)

    return Directional(
        n_directions=len(tests), n_failed=sum(t.failed for t in tests),
        relative_error=global_relative_error(np.array([t.analytic for t in tests]),
                                             np.array([t.numeric for t in tests])),
        gradient_norm=g_norm,
        detection_limit=relative(limit), guaranteed_limit=relative(guaranteed),
        probability=probability)
