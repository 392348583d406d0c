"""The pieces of the cost next to a kink, for the Taylor test (``_taylor_fit._kink``).

Where several kinks meet at theta, backprop's correct subgradient can lie outside the
one-sided directional derivatives along d; ``Nearby`` looks for g.d among the gradients of
the pieces of J just next to theta, each confirmed by a central difference there.
"""

from __future__ import annotations

import math

import numpy as np

from ._inputs import Problem, _call_user, normalise_grad
from ._steps import EPS_MACHINE
from ._values import scalar_cost
from ._verdict import NOISE_FACTOR, ROUNDOFF_FACTOR
from .backends.serial import ensure_unmodified
from .errors import CostEvaluationError

#: A failing direction crosses a kink when ``S(h)`` is fitted at rate 1 (``_taylor_fit``)
#: and its jump ``|a+ - a-|`` is at least this multiple of the error of the one-sided
#: derivatives (noise that a fit happens to read as rate 1 has no such clear jump).
KINK_RESOLVE = 4.0


#: Where several kinks meet at theta (ReLU units at 0 together), a correct subgradient of
#: backprop can lie outside the one-sided derivatives along d (relu(t) - relu(-t) = t has a
#: smooth derivative 1 along t, but the pieces next to 0 have gradients 0 and 2). So with a
#: gradient function, a g.d outside is looked for among the pieces next to theta: at this
#: many rays ``theta + t eps v`` (``v = +-d`` and random directions scaled like d) ...
CONFIRM_POINTS = 32
#: ... with ``eps`` this fraction of the first step, the gradient function's ``g(y) . d`` at
#: ``y = theta + eps v`` is confirmed by a central difference of step ``eps / CONFIRM_SHRINK``
#: there (which rarely reaches back to a kink; a point where it does disagrees and is left
#: out) within ``CONFIRM_RTOL`` (plus roundoff), and extrapolated to theta along the ray
#: (``2 g(y) . d - g(theta + 2 eps v) . d``, with their difference as its error). g.d
#: passes when it lies within the values confirmed: so a wrong formula (wrong off the kink
#: too, so never confirmed) and a value that no piece next to theta has (sign(0) replaced
#: by 3 in an L1 term) still fail.
CONFIRM_OFFSET = 1e-4
#: Rays are no longer drawn after this many when none was confirmed (the gradient function
#: is wrong off the kink too) or, when the pieces must differ, all confirmed are one piece.
CONFIRM_EARLY = 8
CONFIRM_SHRINK = 64.0
CONFIRM_RTOL = 1e-6


class Nearby:
    """The confirmed ``g . d`` of the pieces of J next to theta (see ``CONFIRM_POINTS``),
    drawn until they span ``gd`` (with ``tol``) or ``CONFIRM_POINTS`` rays were tried
    (``CONFIRM_EARLY`` when they give no hope).

    With ``distinct``, the pieces must also differ from each other (their spread at least
    ``KINK_RESOLVE`` times their error): kinks meet at theta, the cost is not smooth there.
    """

    def __init__(self, problem: Problem, d: np.ndarray, h0: float, gd: float, tol: float,
                 distinct: bool = False):
        self.lo, self.hi, self.error = math.inf, -math.inf, 0.0
        self.confirmed = self.tried = self.evaluations = 0
        theta, scale = problem.theta, np.maximum(1.0, np.abs(problem.theta))
        eps = CONFIRM_OFFSET * h0
        step = eps / CONFIRM_SHRINK
        rng = np.random.default_rng(CONFIRM_POINTS)  # reproducible
        x = theta.copy()
        call = problem.make_call(x)
        size = float(np.max(np.abs(d)))
        while self.tried < CONFIRM_POINTS and not self.spans(gd, tol, distinct):
            if self.tried >= CONFIRM_EARLY and (not self.confirmed or (
                    distinct and not self.hi - self.lo >= KINK_RESOLVE * self.error)):
                break  # a formula wrong off the kink, or (distinct) one smooth piece
            m, self.tried = self.tried, self.tried + 1
            v = d if m == 0 else -d if m == 1 else rng.standard_normal(d.shape[0]) * scale
            v = v * (size / float(np.max(np.abs(v))))
            near, far = (float(_gradient_at(problem, theta + k * eps * v) @ d) for k in (1, 2))
            js = [_cost_at(call, x, target) for target in (theta + eps * v + step * d,
                                                          theta + eps * v - step * d)]
            self.evaluations += 2 + 2 * int(problem.cost_returns_grad)
            numeric = (js[0] - js[1]) / (2.0 * step)
            roundoff = (ROUNDOFF_FACTOR * EPS_MACHINE * max(abs(js[0]), abs(js[1]))
                        + NOISE_FACTOR * problem.noise) / step
            allowed = CONFIRM_RTOL * (abs(near) + abs(numeric)) + roundoff
            if abs(near - numeric) <= allowed:
                at_theta, drift = 2.0 * near - far, abs(near - far)
                self.lo = min(self.lo, at_theta - drift)
                self.hi = max(self.hi, at_theta + drift)
                self.error = max(self.error, 2 * drift + allowed)
                self.confirmed += 1

    def spans(self, gd: float, tol: float, distinct: bool = False) -> bool:
        """Does g.d lie within the confirmed values (widened by ``tol``), and do they
        differ (when ``distinct``)?"""
        if distinct and not self.hi - self.lo >= KINK_RESOLVE * self.error:
            return False
        return self.confirmed > 0 and self.lo - tol <= gd <= self.hi + tol


def _cost_at(call, x: np.ndarray, target: np.ndarray) -> float:
    """The cost at ``target`` (written into ``x``, which ``call`` evaluates)."""
    x[:] = target
    try:
        j = scalar_cost(call(), "next to a kink (Taylor test)")
    except (KeyboardInterrupt, CostEvaluationError, TypeError):
        raise
    except Exception as exc:  # the user's cost failed: say where
        raise CostEvaluationError(
            f"cost raised {type(exc).__name__}: {exc} -- next to a kink at theta, where the "
            "Taylor test confirms the gradient function off the kink") from exc
    ensure_unmodified(x, target)
    return j


def _gradient_at(problem: Problem, y: np.ndarray) -> np.ndarray:
    """The gradient function at y, flat float64 (a private copy of y is passed)."""
    if problem.grad_fn is None:
        raise ValueError("the Taylor test confirms a kink only with grad as a function")
    raw = _call_user(problem.grad_fn, y, problem.layout, problem.params_kind, problem.args,
                     "grad")
    if problem.cost_returns_grad:
        raw = raw[1]
    return normalise_grad(raw, problem.layout, problem.params_kind, "grad next to a kink",
                          float32_ok=bool(problem.notes))
