"""Finite-difference methods: how a numeric derivative and its error floor are estimated.

One function per method, chosen once from ``METHODS``:

- ``central``: ``(J(θ+h) − J(θ−h)) / 2h``; error floor = roundoff ``C·eps·|J|/h``.
- ``richardson``: central at h and h/2 combined to O(h⁴), ``(4·D(h/2) − D(h)) / 3``; the
  difference of the two is a per-component error estimate added to the floor.
- ``complex``: complex step ``Im J(θ + i·h·e_i) / h`` with h = 1e-20·max(1, |θ_i|): one
  evaluation, no subtraction, exact to machine precision for a complex-analytic cost.

Every method returns an :class:`Estimate`; the driver compares it with the analytic
gradient and re-examines suspects with central differences (kinks, noise) as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._steps import EPS_MACHINE
from ._verdict import Differences

#: Relative size of the complex step (any tiny value works: there is no cancellation).
COMPLEX_STEP = 1e-20
#: Error floor of a complex-step derivative, relative to the gradient's scale.
COMPLEX_FLOOR = 64 * EPS_MACHINE

METHOD_NAMES = ("central", "richardson", "complex")


@dataclass
class Estimate:
    """Numeric derivatives of a chunk, the error floor of each, and (when computed) the
    central differences at the nominal step for re-examination."""

    numeric: np.ndarray
    floor: np.ndarray
    central: Differences | None


def central(runner, problem, t, pos) -> Estimate:
    """Two-sided differences at the nominal step."""
    jp, jm = runner.evaluate(t.indices[pos], t.x_plus[pos], t.x_minus[pos])
    first = Differences(jp, jm, t.x_plus[pos], t.x_minus[pos])
    return Estimate(first.numeric(), first.roundoff(problem.j0, problem.noise), first)


def richardson(runner, problem, t, pos) -> Estimate:
    """Central differences at h and h/2, extrapolated to O(h⁴)."""
    coarse = central(runner, problem, t, pos)
    half = t.h[pos] / 2
    xp, xm = t.theta_at[pos] + half, t.theta_at[pos] - half
    jp, jm = runner.evaluate(t.indices[pos], xp, xm)
    fine = Differences(jp, jm, xp, xm)
    d1, d2 = coarse.numeric, fine.numeric()
    with np.errstate(invalid="ignore", over="ignore"):
        numeric = (4.0 * d2 - d1) / 3.0
        fine_floor = fine.roundoff(problem.j0, problem.noise)
        floor = np.abs(d1 - d2) / 3.0 + (4.0 * fine_floor + coarse.floor) / 3.0
    return Estimate(numeric, floor, coarse.central)


def complex_steps(theta_at: np.ndarray) -> np.ndarray:
    """The complex step of each component: ``1e-20 * max(1, |theta_i|)``."""
    return COMPLEX_STEP * np.maximum(1.0, np.abs(theta_at))


def gradient_scale(analytic: np.ndarray) -> float:
    """The largest finite ``|g_i|`` of the whole gradient (0 for none)."""
    finite = np.abs(analytic[np.isfinite(analytic)])
    return float(finite.max()) if finite.size else 0.0


def complex_step(runner, problem, t, pos) -> Estimate:
    """Complex-step derivatives (one evaluation each).

    The floor is relative to the component's values and to the whole gradient's scale: a
    true gradient of 0 (a bias before a centring, as in batchnorm) comes out of backprop
    as a sum rounding to ~1e-17, which the exact complex step must not call a failure.
    """
    steps = complex_steps(t.theta_at[pos])
    numeric = runner.evaluate_complex(t.indices[pos], steps)
    scale = np.maximum(np.maximum(np.abs(numeric), np.abs(t.analytic[pos])),
                       gradient_scale(t.analytic))
    return Estimate(numeric, COMPLEX_FLOOR * scale + 1e-300, None)


METHODS = {"central": central, "richardson": richardson, "complex": complex_step}
