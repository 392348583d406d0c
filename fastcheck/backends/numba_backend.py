"""The numba backend: all evaluations of a chunk inside one ``prange`` kernel.

The kernel comes from the disk cache when the cost is importable (``_kernel_cache``),
else it is the argument-taking ``_kernels.central_values`` compiled in this process.
BLAS is held at one thread from the compile call to the end of the check (``_blas``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba.core.errors import NumbaError
from numba.extending import is_jitted

from .._blas import single_threaded_blas
from .._kernel_cache import cached_kernel
from .._kernels import central_values
from .base import Backend, complex_step_values, locate_failure, timed_compile
from .base import short_error as _short

#: Kernel chunks per thread: more than one lets a thread that was slowed down (a shared
#: machine) hand work to the others; each chunk costs one copy of theta.
CHUNKS_PER_THREAD = 4
#: A chunk is never smaller than this many components (so the copy of theta is amortised).
MIN_CHUNK = 16


def max_threads() -> int:
    """The most threads numba can run (``NUMBA_NUM_THREADS``)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def jitted_cost(cost):
    """``cost`` itself when it is an ``@njit`` dispatcher, else ``numba.njit(cost)``."""
    if is_jitted(cost):
        return cost
    try:
        return numba.njit(cost)
    except Exception as exc:  # pragma: no cover - njit() itself rarely refuses
        raise TypeError(f"backend='numba': numba cannot compile cost: {_short(exc)}") from None


def _interrupted(exc: BaseException | None) -> bool:
    """True when a ``KeyboardInterrupt`` is in the cause/context chain of ``exc``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class NumbaBackend(Backend):
    """Run the central differences of each chunk in the parallel numba kernel."""

    name = "numba"
    supports = {"complex": True}

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
        self._cached = cached_kernel(self._cost)
        self._saved_threads: int | None = None
        self._blas = single_threaded_blas()

    def __enter__(self) -> NumbaBackend:
        self._saved_threads = numba.get_num_threads()
        try:
            numba.set_num_threads(self.threads)
            self._blas.__enter__()
        except BaseException:
            numba.set_num_threads(self._saved_threads)
            raise
        try:
            self._compile()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def close(self) -> None:
        """Restore BLAS's and numba's thread counts."""
        try:
            self._blas.__exit__(None, None, None)
        finally:
            numba.set_num_threads(self._saved_threads)

    def n_chunks(self, n: int) -> int:
        """Kernel chunks for ``n`` components: a few per running thread, none tiny, never
        more than ``n`` (an absurd ``threads=`` must not make an absurd prange)."""
        per_thread = max(1, min(CHUNKS_PER_THREAD, n // (MIN_CHUNK * self.threads)))
        return max(1, min(n, self.threads * per_thread))

    def _kernel(self, indices, x_plus, x_minus):
        p = self.problem
        n_chunks = self.n_chunks(indices.shape[0])
        with numba.parallel_chunksize(1):  # hand out chunks dynamically
            if self._cached is not None:
                return self._cached(p.theta, indices, x_plus, x_minus, n_chunks, p.args)
            return central_values(self._cost, p.theta, indices, x_plus, x_minus, n_chunks,
                                  p.args)

    def _compile(self) -> None:
        """Compile the kernel for this cost (timed) with a one-component call."""
        theta = self.problem.theta
        one = np.zeros(1, dtype=np.int64)
        self.compile_seconds = timed_compile(
            lambda: self._kernel(one, theta[:1].copy(), theta[:1].copy()), self.name)
        self.evaluations += 2

    def evaluate(self, indices, x_plus, x_minus):
        """J+ and J- of each component, computed in parallel."""
        try:
            j_plus, j_minus, finished = self._kernel(indices, x_plus, x_minus)
        except (KeyboardInterrupt, NumbaError):
            raise
        except Exception as exc:
            if _interrupted(exc):  # Ctrl-C during the kernel comes back as a SystemError
                raise KeyboardInterrupt from exc
            self._locate_failure(indices, x_plus, x_minus, exc)
        if not finished.all():  # the cost raised in a worker thread
            self._locate_failure(indices, x_plus, x_minus, None)
        self.evaluations += 2 * indices.shape[0]
        return j_plus, j_minus

    def evaluate_complex(self, indices, steps):
        """Complex-step derivatives of each component, in the parallel complex kernel."""
        from .._kernels_complex import complex_step_values as kernel

        p = self.problem
        theta_c = p.theta.astype(np.complex128)
        try:
            with numba.parallel_chunksize(1):
                out, finished = kernel(self._cost, theta_c, indices, steps,
                                       self.n_chunks(indices.shape[0]), p.args)
        except KeyboardInterrupt:
            raise
        except NumbaError as exc:
            raise TypeError(f"method='complex': numba cannot compile cost for complex "
                            f"input: {_short(exc)}") from None
        except Exception as exc:
            if _interrupted(exc):
                raise KeyboardInterrupt from exc
            finished = np.zeros(1, dtype=np.bool_)
        if not finished.all():  # the cost raised: re-run serially to say where
            x = theta_c.copy()
            cost, args = self._cost, p.args
            complex_step_values(p, x, lambda: cost(x, *args), indices, steps)
        self.evaluations += indices.shape[0]
        return out

    def _locate_failure(self, indices, x_plus, x_minus, exc: BaseException | None):
        """The cost raised inside prange: a SystemError (calling thread) or an unfinished
        chunk (a worker). Re-evaluate serially to raise the cost's own error, located."""
        locate_failure(self.problem, self._cost, indices, x_plus, x_minus, exc)
