"""Step sizes of the finite differences: the rule for ``eps`` and representable steps."""

from __future__ import annotations

import numpy as np

EPS_MACHINE = float(np.finfo(np.float64).eps)
#: cbrt(eps): the step that balances truncation (h^2) against roundoff (eps/h).
AUTO_RELATIVE_STEP = EPS_MACHINE ** (1.0 / 3.0)


def nominal_steps(theta_at: np.ndarray, eps: float | str) -> np.ndarray:
    """Nominal step ``h_i`` for each checked component.

    ``"auto"`` gives ``cbrt(eps_machine) * max(1, |theta_i|)``; a float is used as given.
    """
    if isinstance(eps, str):
        return AUTO_RELATIVE_STEP * np.maximum(1.0, np.abs(theta_at))
    return np.full(theta_at.shape, float(eps))


def perturbed_points(theta_at: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values ``theta_i + h`` and ``theta_i - h`` as the floats that will be stored.

    The effective (representable) half-steps are ``xp - theta`` and ``theta - xm``;
    the central difference divides by ``xp - xm``.
    """
    return theta_at + h, theta_at - h
