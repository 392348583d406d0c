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


class Cancelled(Exception):
    """A worker's loop was told to stop because another worker failed."""


def serial_values(problem, x: np.ndarray, call, indices, x_plus, x_minus, scalar,
                  cancel=None):
    """Plain loop: perturb ``x`` in place, evaluate, restore (also on error).

    ``cancel`` (a ``threading.Event``), when set, ends the loop with ``Cancelled``.
    """
    n = indices.shape[0]
    j_plus = np.empty(n, dtype=np.float64)
    j_minus = np.empty(n, dtype=np.float64)
    theta = problem.theta
    for k in range(n):
        if cancel is not None and cancel.is_set():
            raise Cancelled
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


def complex_value(value, where: str) -> complex:
    """The cost's value at a complex point, or a TypeError if the cost dropped the
    imaginary part (returned a real): such a cost cannot be used with method='complex'."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(())[()]
    if isinstance(value, (complex, np.complexfloating)):
        return complex(value)
    raise TypeError(
        f"method='complex': cost returned {type(value).__name__} {where}, not a complex "
        "number; a cost used with the complex step must keep complex arithmetic (no "
        "float() casts, np.real, or real-only output arrays)"
    )


def complex_unsupported(exc: BaseException) -> TypeError:
    """The error for a cost that cannot take complex input."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TypeError(
        f"method='complex': cost cannot take complex input ({type(exc).__name__}: "
        f"{first[:200]}); use method='central' or 'richardson', or write the cost with "
        "complex-safe operations"
    )


def complex_step_values(problem, x: np.ndarray, call, indices, steps) -> np.ndarray:
    """``Im J(theta + i*h*e_k) / h`` for each component, by a plain loop on the complex
    buffer ``x`` (a complex copy of theta), restoring it after each evaluation."""
    out = np.empty(indices.shape[0], dtype=np.float64)
    for k in range(indices.shape[0]):
        i = int(indices[k])
        try:
            x[i] = complex(x[i].real, steps[k])
            value = call()
        except (KeyboardInterrupt, CostEvaluationError):
            raise
        except TypeError as exc:
            raise complex_unsupported(exc) from exc
        except Exception as exc:
            raise cost_raised(problem, i, exc) from exc
        finally:
            x[i] = complex(x[i].real, 0.0)
        out[k] = complex_value(value, "at a complex-perturbed point").imag / steps[k]
    return out
