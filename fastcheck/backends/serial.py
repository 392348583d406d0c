"""The serial backend: a plain Python loop, for any callable cost."""

from __future__ import annotations

import numpy as np

from .._inputs import scalar_cost
from ..errors import FastcheckError
from .base import complex_step_values, serial_values


def ensure_unmodified(x: np.ndarray, theta: np.ndarray) -> None:
    """Raise if ``cost`` wrote into the parameters it was given."""
    if not np.array_equal(x, theta):
        where = int(np.flatnonzero(x != theta)[0])
        x[:] = theta
        raise FastcheckError(
            f"cost modified the parameters it was given (component {where} changed); a "
            "cost must not write into theta, or every later evaluation is wrong"
        )


class SerialBackend:
    """Evaluate components one after another in the calling thread."""

    name = "serial"

    def __init__(self, problem, threads: int | None = None):
        self.problem = problem
        self.threads = 1
        self.compile_seconds = 0.0
        self.evaluations = 0
        self._x = problem.theta.copy()
        self._call = problem.make_call(self._x)

    def __enter__(self) -> SerialBackend:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def evaluate(self, indices, x_plus, x_minus):
        """J+ and J- of each component, in order."""
        out = serial_values(self.problem, self._x, self._call, indices, x_plus, x_minus,
                            scalar_cost)
        self.evaluations += 2 * indices.shape[0]
        ensure_unmodified(self._x, self.problem.theta)
        return out

    def evaluate_complex(self, indices, steps):
        """Complex-step derivatives ``Im J(theta + i h e_k) / h`` of each component."""
        x = self.problem.theta.astype(np.complex128)
        out = complex_step_values(self.problem, x, self.problem.make_call(x), indices, steps)
        self.evaluations += indices.shape[0]
        return out
