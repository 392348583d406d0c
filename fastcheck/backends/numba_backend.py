"""The numba backend: all evaluations of a chunk inside one ``prange`` kernel."""

from __future__ import annotations

import time

import numba
import numpy as np
from numba.core.errors import NumbaError
from numba.extending import is_jitted

from .._inputs import scalar_cost
from .._kernels import central_values
from ..errors import FastcheckError
from .base import serial_values


def max_threads() -> int:
    """The most threads numba can run (``NUMBA_NUM_THREADS``)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip() and not ln.startswith("During:")]
    return " ".join(lines[:2])[:300]


def jitted_cost(cost):
    """``cost`` itself when it is an ``@njit`` dispatcher, else ``numba.njit(cost)``."""
    if is_jitted(cost):
        return cost
    try:
        return numba.njit(cost)
    except Exception as exc:  # pragma: no cover - njit() itself rarely refuses
        raise TypeError(f"backend='numba': numba cannot compile cost: {_short(exc)}") from None


class _BlasLimit:
    """Limit BLAS to one thread (threads x BLAS threads would oversubscribe)."""

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            self._ctl = None
            return self
        self._ctl = threadpool_limits(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._ctl is not None:
            self._ctl.restore_original_limits()


class NumbaBackend:
    """Run the central differences of each chunk in the parallel numba kernel."""

    name = "numba"

    def __init__(self, problem, threads: int | None = None):
        if problem.params_kind != "flat":
            raise TypeError(
                "backend='numba' needs a flat float64 params vector and a cost on that "
                "vector (use layout=fc.Layout(...) for block names); params is a mapping"
            )
        if problem.cost_returns_grad:
            raise TypeError("backend='numba' needs a cost that returns the loss only, "
                            "not (loss, grads); use grad=<callable> or backend='serial'")
        self.problem = problem
        self.requested_threads = int(threads) if threads else max_threads()
        self.threads = min(self.requested_threads, max_threads())
        self.compile_seconds = 0.0
        self.evaluations = 0
        self._cost = jitted_cost(problem.cost)
        self._saved_threads: int | None = None
        self._blas = _BlasLimit()

    def __enter__(self) -> NumbaBackend:
        self._saved_threads = numba.get_num_threads()
        try:
            numba.set_num_threads(self.threads)
            self._compile()
            self._blas.__enter__()
        except BaseException:
            numba.set_num_threads(self._saved_threads)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._blas.__exit__(*exc)
        finally:
            numba.set_num_threads(self._saved_threads)

    def _kernel(self, indices, x_plus, x_minus):
        p = self.problem
        return central_values(self._cost, p.theta, indices, x_plus, x_minus,
                              self.requested_threads, p.args)

    def _compile(self) -> None:
        """Compile the kernel for this cost (timed) with a one-component call."""
        theta = self.problem.theta
        one = np.zeros(1, dtype=np.int64)
        start = time.perf_counter()
        try:
            self._kernel(one, theta[:1].copy(), theta[:1].copy())
        except NumbaError as exc:
            raise TypeError(
                f"backend='numba': numba cannot compile cost with these args: {_short(exc)}"
            ) from None
        except Exception:
            pass  # the cost itself raised; evaluate() will say where
        self.compile_seconds = time.perf_counter() - start
        self.evaluations += 2

    def evaluate(self, indices, x_plus, x_minus):
        """J+ and J- of each component, computed in parallel."""
        try:
            out = self._kernel(indices, x_plus, x_minus)
        except (KeyboardInterrupt, NumbaError):
            raise
        except Exception as exc:
            self._locate_failure(indices, x_plus, x_minus, exc)
        self.evaluations += 2 * indices.shape[0]
        return out

    def _locate_failure(self, indices, x_plus, x_minus, exc: BaseException):
        """An exception inside prange arrives as SystemError: find the component."""
        p = self.problem
        x = p.theta.copy()
        cost, args = self._cost, p.args
        serial_values(p, x, lambda: cost(x, *args), indices, x_plus, x_minus, scalar_cost)
        raise FastcheckError(
            f"the numba kernel failed ({type(exc).__name__}: {_short(exc)}) but no "
            "component raised when re-evaluated serially"
        ) from exc
