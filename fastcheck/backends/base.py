"""What every backend provides: evaluate J at theta +/- a step, chunk by chunk."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import CostEvaluationError


class Backend(Protocol):
    """A way to evaluate the cost at perturbed points.

    Used as a context manager around a whole check (it may set thread counts and
    restores them on exit). ``evaluate`` returns J+ and J- for each component.
    """

    name: str
    threads: int
    compile_seconds: float

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc) -> None: ...

    def evaluate(self, indices: np.ndarray, x_plus: np.ndarray,
                 x_minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def cost_raised(problem, flat_index: int, exc: BaseException) -> CostEvaluationError:
    """The error raised when ``cost`` fails at a perturbed point, naming the component."""
    label = problem.layout.label(int(flat_index))
    return CostEvaluationError(
        f"cost raised {type(exc).__name__}: {exc} -- while evaluating component {label} "
        f"(flat index {int(flat_index)}) perturbed by the finite-difference step",
        flat_index=int(flat_index), name=label,
    )


def serial_values(problem, x: np.ndarray, call, indices, x_plus, x_minus, scalar):
    """Plain loop: perturb ``x`` in place, evaluate, restore (also on error)."""
    n = indices.shape[0]
    j_plus = np.empty(n, dtype=np.float64)
    j_minus = np.empty(n, dtype=np.float64)
    theta = problem.theta
    for k in range(n):
        i = int(indices[k])
        try:
            x[i] = x_plus[k]
            j_plus[k] = scalar(call(), "at a perturbed point")
            x[i] = x_minus[k]
            j_minus[k] = scalar(call(), "at a perturbed point")
        except (KeyboardInterrupt, CostEvaluationError):
            raise
        except Exception as exc:  # the user's cost failed: say where
            raise cost_raised(problem, i, exc) from exc
        finally:
            x[i] = theta[i]
    return j_plus, j_minus
