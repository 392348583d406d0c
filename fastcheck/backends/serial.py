"""The serial backend: a plain Python loop, for any callable cost."""

from __future__ import annotations

import numpy as np

from .._values import scalar_cost
from .base import Backend, complex_step_values, ensure_unmodified, serial_values

__all__ = ["SerialBackend", "ensure_unmodified"]  # ensure_unmodified: for older imports


class SerialBackend(Backend):
    """Evaluate components one after another in the calling thread."""

    name = "serial"
    supports = {"complex": True}

    def __init__(self, problem, threads: int | None = None):
        self.problem = problem
        self.threads = 1
        self.compile_seconds = 0.0
        self.evaluations = 0
        self._x = problem.theta.copy()
        self._call = problem.make_call(self._x)

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
