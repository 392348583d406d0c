"""The backend protocol, and the helpers every backend shares.

A backend evaluates the cost at perturbed points, chunk by chunk, for the driver. It is
used as a context manager around one whole check (it may set thread counts, start a
pool or ship data to a cluster, and undoes that on exit). To add a backend: subclass
``Backend`` in a module of its own, override ``evaluate`` (and what else it can do), and
register it in ``backends.BACKENDS``.

- ``evaluate(indices, x_plus, x_minus)`` returns J+ and J- for each component.
- ``evaluate_complex(indices, steps)`` returns complex-step derivatives; a backend that
  cannot says so in ``supports`` and is refused at the start of the check (``require``).
- ``verify(indices, x_plus, x_minus, j_plus, j_minus)`` re-checks values that may have
  raced (default: nothing to verify).
- ``events()`` lists, in words, what the backend survived during the check (lost
  workers, retried tasks); the report shows them.
- ``close()`` releases what the backend holds; ``__exit__`` calls it.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NoReturn

import numpy as np

from ..errors import CostEvaluationError, FastcheckError

#: What each ``method=`` needs from a backend, beyond ``evaluate``.
METHOD_NEEDS: Mapping[str, str] = MappingProxyType({"complex": "complex"})


class Backend:
    """Base class of the backends: the whole protocol, with defaults.

    Attributes
    ----------
    name : str
        The ``backend=`` value that selects this backend.
    supports : mapping of str to bool
        Capabilities beyond ``evaluate`` (``"complex"``: ``evaluate_complex``).
    threads : int
        Parallel lanes the backend runs (1 for serial).
    compile_seconds : float
        Time spent compiling for this check (reported apart from the evaluation time).
    evaluations : int
        Cost calls the backend made.
    """

    name: ClassVar[str] = ""
    supports: ClassVar[Mapping[str, bool]] = MappingProxyType({"complex": False})
    threads: int = 1
    compile_seconds: float = 0.0
    evaluations: int = 0
    #: True when a chunk costs a fixed launch (a parallel kernel) that small first chunks
    #: would pay again; the driver then skips them unless a stop rule or a progress bar
    #: needs to hear early. Python backends keep them, so Ctrl-C keeps a partial report.
    large_chunks: ClassVar[bool] = False

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the backend holds (pools, thread settings, shipped data)."""

    def evaluate(self, indices: np.ndarray, x_plus: np.ndarray,
                 x_minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """J+ and J- of each component ``indices[k]`` set to ``x_plus[k]``/``x_minus[k]``."""
        raise NotImplementedError(f"backend {self.name!r} does not define evaluate")

    def evaluate_complex(self, indices: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Complex-step derivatives ``Im J(theta + i h e_k) / h`` of each component."""
        raise unsupported(self.name, "complex")

    def verify(self, indices: np.ndarray, x_plus: np.ndarray, x_minus: np.ndarray,
               j_plus: np.ndarray, j_minus: np.ndarray) -> None:
        """Raise if values returned earlier were wrong (default: nothing can race)."""
        return None

    def events(self) -> list[str]:
        """What the backend survived during the check, in words (default: nothing)."""
        return []


def unsupported(backend: str, method: str) -> ValueError:
    """The error for a ``method=`` that ``backend`` cannot evaluate."""
    return ValueError(
        f"backend={backend!r} cannot evaluate method={method!r} (it has no "
        f"{METHOD_NEEDS.get(method, method)} evaluations); choose another backend or "
        "method='central'"
    )


def require(backend: type[Backend] | Backend, method: str) -> None:
    """Raise ``ValueError`` at the start of a check if ``backend`` cannot do ``method``."""
    need = METHOD_NEEDS.get(method)
    if need is None:
        return
    supports: Mapping[str, bool] | None = getattr(backend, "supports", None)
    if supports is None:  # a backend not derived from Backend: what it defines
        able = callable(getattr(backend, f"evaluate_{need}", None))
    else:
        able = bool(supports.get(need, False))
    if not able:
        raise unsupported(getattr(backend, "name", "?"), method)


def short_error(exc: BaseException) -> str:
    """The first lines of an error's message (numba's are pages long), at most 300 chars."""
    text = str(exc).strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip() and not ln.startswith("During:")]
    return " ".join(lines[:2])[:300]


def ensure_unmodified(x: np.ndarray, theta: np.ndarray) -> None:
    """Raise if ``cost`` wrote into the parameters it was given (and restore them)."""
    if not np.array_equal(x, theta):
        where = int(np.flatnonzero(x != theta)[0])
        x[:] = theta
        raise FastcheckError(
            f"cost modified the parameters it was given (component {where} changed); a "
            "cost must not write into theta, or every later evaluation is wrong"
        )


def timed_compile(call: Callable[[], object], backend: str) -> float:
    """Seconds spent by ``call()``, which compiles a kernel by evaluating one component.

    numba's refusal becomes a ``TypeError`` naming ``backend``; an error of the cost itself
    is ignored here (the evaluation will say where it happens).
    """
    from numba.core.errors import NumbaError, NumbaWarning

    start = time.perf_counter()
    try:
        with warnings.catch_warnings():  # a cost numba cannot cache: still correct
            warnings.simplefilter("ignore", NumbaWarning)
            call()
    except NumbaError as exc:
        raise TypeError(
            f"backend={backend!r}: numba cannot compile cost with these args: "
            f"{short_error(exc)}"
        ) from None
    except Exception:
        pass  # the cost itself raised; the evaluation will say where
    return time.perf_counter() - start


def locate_failure(problem: Any, cost: Callable[..., Any], indices: np.ndarray,
                   x_plus: np.ndarray, x_minus: np.ndarray,
                   exc: BaseException | None) -> NoReturn:
    """A kernel failed (``exc``, or None: a chunk did not finish): re-evaluate the chunk
    serially with the jitted ``cost`` to raise the cost's own error, located; raise
    ``FastcheckError`` if no component fails that way."""
    from .._values import scalar_cost

    x = problem.theta.copy()
    args = problem.args
    serial_values(problem, x, lambda: cost(x, *args), indices, x_plus, x_minus, scalar_cost)
    what = ("a chunk did not finish" if exc is None
            else f"{type(exc).__name__}: {short_error(exc)}")
    raise FastcheckError(
        f"the numba kernel failed ({what}) but no component raised when re-evaluated "
        "serially"
    ) from exc


def cost_raised(problem: Any, flat_index: int, exc: BaseException) -> CostEvaluationError:
    """The error raised when ``cost`` fails at a perturbed point, naming the component."""
    label = problem.layout.label(int(flat_index))
    return CostEvaluationError(
        f"cost raised {type(exc).__name__}: {exc} -- while evaluating component {label} "
        f"(flat index {int(flat_index)}) perturbed by the finite-difference step",
        flat_index=int(flat_index), name=label,
    )


class Cancelled(Exception):
    """A worker's loop was told to stop because another worker failed."""


def serial_values(problem: Any, x: np.ndarray, call: Callable[[], Any], indices: np.ndarray,
                  x_plus: np.ndarray, x_minus: np.ndarray,
                  scalar: Callable[[Any, str], float],
                  cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray]:
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


def complex_value(value: Any, where: str) -> complex:
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


def complex_step_values(problem: Any, x: np.ndarray, call: Callable[[], Any],
                        indices: np.ndarray, steps: np.ndarray) -> np.ndarray:
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
