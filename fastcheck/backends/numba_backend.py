"""The numba backend: all evaluations of a chunk inside one ``prange`` kernel.

The kernel comes from the disk cache when the cost is importable (``_kernel_cache``),
else it is the argument-taking ``_kernels.central_values`` compiled in this process.
BLAS is held at one thread from the start to the end of the check (``_blas``).

Compiling the parallel kernel takes ~2 s; loading it from numba's disk cache ~0.03 s,
which is done on the calling thread when the cache's index names it. A compile happens
on a background thread, started when the check starts; until it is ready the
components are evaluated on the calling thread by a plain loop over the jitted cost (the
same compiled cost, so the same numbers). A check that is done before its kernel is ready
waits for the compile at its end, so that no thread outlives ``fc.check`` and the next
check (and the next process, through the disk cache) starts with the kernel.
"""

from __future__ import annotations

import time

import numba
import numpy as np
from numba.core.errors import NumbaError
from numba.extending import is_jitted

from .._blas import single_threaded_blas
from .._kernel_cache import KernelCompile, cached_kernel, kernel_compile
from .._kernels import central_values
from .._values import scalar_cost
from .base import Backend, complex_step_values, locate_failure, serial_values
from .base import short_error as _short

#: Kernel chunks per thread: more than one lets a thread that was slowed down (a shared
#: machine) hand work to the others; each chunk costs one copy of theta.
CHUNKS_PER_THREAD = 4
#: A chunk is never smaller than this many components (so the copy of theta is amortised).
MIN_CHUNK = 16
#: While the kernel compiles, components are evaluated serially in slices of about this
#: many seconds, looking between slices whether the kernel is ready.
SERIAL_SLICE_SECONDS = 0.02

#: Short launches (expected under this many seconds: cost time x evaluations / threads)
#: watch for a busy machine. All threads of a launch wait for the slowest, and one that
#: loses its core to another process for a time slice (milliseconds) made a 1.3 ms check of
#: the S network take 7.5 ms, against 3.0 ms on one thread (bench/contended.py).
CONTENDED_LAUNCH_SECONDS = 0.005
#: A short launch on several threads that takes this many times its expected time marks
#: the machine busy: short launches then run on one thread for CONTENDED_MEMORY_SECONDS,
#: after which several threads are tried again. (Reading the machine's load instead, from
#: /proc/loadavg, misjudged a quiet machine 5 % of the time: numba's own workers spin.)
CONTENDED_SLOWDOWN = 2.5
CONTENDED_MEMORY_SECONDS = 1.0
#: Until when (``time.perf_counter()``) short launches run on one thread.
_one_thread_until = [0.0]


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
    large_chunks = True  # one kernel launch for a small check, not two

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
        self._may_yield_cores = not threads  # threads= given: use exactly that many
        self._events: list[str] = []
        self.compile_seconds = 0.0
        self.evaluations = 0
        self._cost = jitted_cost(problem.cost)
        self._cached = cached_kernel(self._cost)
        self._saved_threads: int | None = None
        self._saved_chunksize = 0
        self._blas = single_threaded_blas()
        self._pending: KernelCompile | None = None  # the kernel's compile, until ready
        self._x: np.ndarray | None = None  # the serial loop's copy of theta
        self._slice = MIN_CHUNK  # components per serial slice, adapted to the cost

    def __enter__(self) -> NumbaBackend:
        self._saved_threads = numba.get_num_threads()
        try:
            if self._saved_threads != self.threads:
                numba.set_num_threads(self.threads)
            # kernel chunks handed out one at a time (dynamically), for every launch of
            # the check: set once here, not around each launch (the setting is per thread)
            self._saved_chunksize = numba.set_parallel_chunksize(1)
            self._blas.__enter__()
        except BaseException:
            numba.set_num_threads(self._saved_threads)
            numba.set_parallel_chunksize(self._saved_chunksize)
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
            if self._pending is not None:  # a check done before its kernel was ready:
                self._pending.needed = False  # (a forked child's kernel: not loaded here)
                self._pending.join()  # no thread outlives the check; the next one is fast
                self.compile_seconds += self._pending.seconds
                self._pending = None
        finally:
            try:
                self._blas.__exit__(None, None, None)
            finally:
                numba.set_parallel_chunksize(self._saved_chunksize)
                if numba.get_num_threads() != self._saved_threads:
                    numba.set_num_threads(self._saved_threads)

    def n_chunks(self, n: int) -> int:
        """Kernel chunks for ``n`` components: a few per running thread, none tiny, never
        more than ``n`` (an absurd ``threads=`` must not make an absurd prange)."""
        per_thread = max(1, min(CHUNKS_PER_THREAD, n // (MIN_CHUNK * self.threads)))
        return max(1, min(n, self.threads * per_thread))

    def _kernel_args(self, indices, x_plus, x_minus) -> tuple:
        p = self.problem
        n_chunks = self.n_chunks(indices.shape[0])
        if self._cached is not None:
            return (p.theta, indices, x_plus, x_minus, n_chunks, p.args)
        return (self._cost, p.theta, indices, x_plus, x_minus, n_chunks, p.args)

    def _kernel(self, indices, x_plus, x_minus):
        kernel = self._cached if self._cached is not None else central_values
        expected = self._short_launch(indices.shape[0])
        start = time.perf_counter()
        out = kernel(*self._kernel_args(indices, x_plus, x_minus))
        if expected and self.threads > 1 and \
                time.perf_counter() - start > CONTENDED_SLOWDOWN * expected:
            _one_thread_until[0] = time.perf_counter() + CONTENDED_MEMORY_SECONDS
        return out

    def _short_launch(self, n: int) -> float:
        """The expected seconds of a short launch of ``n`` components (0 for a long one, or
        with ``threads=`` given); on one thread while the machine was seen busy (see
        CONTENDED_SLOWDOWN). The numbers do not depend on the thread count."""
        if not self._may_yield_cores or self.threads == 1:
            return 0.0
        seconds = 2 * n * self.problem.cost_seconds / self.threads
        if not seconds < CONTENDED_LAUNCH_SECONDS:
            return 0.0
        if time.perf_counter() < _one_thread_until[0]:
            self._events.append(
                f"ran on 1 thread instead of {self.threads}: a launch this short waits for "
                f"its slowest thread, and one lately took over {CONTENDED_SLOWDOWN:g}x its "
                "time (another process held a core)")
            self.threads = 1
            numba.set_num_threads(1)
        return seconds

    def events(self) -> list[str]:
        """Why the check ran on fewer threads than it could (a busy machine), if it did."""
        return list(self._events)

    def _compile(self) -> None:
        """Compile the cost here, and start the kernel's compile in the background.

        The cost is compiled first, on this thread, so that a cost numba cannot compile is
        a TypeError now (and the serial loop can run while the kernel compiles).
        """
        p = self.problem
        start = time.perf_counter()
        if self._cost is not p.cost:  # backend="numba" with a Python cost: njit it now
            try:
                self._cost(p.theta.copy(), *p.args)
            except NumbaError as exc:
                raise TypeError(
                    f"backend='numba': numba cannot compile cost with these args: "
                    f"{_short(exc)}") from None
            except Exception:
                pass  # the cost itself raised; evaluate() will say where
            self.evaluations += 1
        one = np.zeros(1, dtype=np.int64)
        kernel = self._cached if self._cached is not None else central_values
        self._pending = kernel_compile(kernel, self._kernel_args(one, p.theta[:1].copy(),
                                                                 p.theta[:1].copy()))
        self.compile_seconds = time.perf_counter() - start

    def _kernel_ready(self) -> bool:
        """True once the kernel is compiled (raising the compile's error, if any)."""
        job = self._pending
        if job is None:
            return True
        if job.is_alive():
            return False
        self._pending = None
        self.compile_seconds += job.seconds
        if isinstance(job.error, NumbaError):
            raise TypeError(f"backend='numba': numba cannot compile cost with these args: "
                            f"{_short(job.error)}") from None
        if job.error is not None:
            raise job.error
        return True

    def _serial(self, indices, x_plus, x_minus):
        """J+ and J- by a plain loop over the jitted cost on this thread."""
        p = self.problem
        if self._x is None:
            self._x = p.theta.copy()
        x, cost, args = self._x, self._cost, p.args
        start = time.perf_counter()
        out = serial_values(p, x, lambda: cost(x, *args), indices, x_plus, x_minus,
                            scalar_cost)
        if time.perf_counter() - start < SERIAL_SLICE_SECONDS / 2:
            self._slice *= 2
        return out

    def evaluate(self, indices, x_plus, x_minus):
        """J+ and J- of each component: serially until the kernel is ready, then in
        parallel."""
        n, done = indices.shape[0], 0
        parts = []
        while done < n and not self._kernel_ready():
            k = min(n - done, self._slice)
            parts.append(self._serial(indices[done:done + k], x_plus[done:done + k],
                                      x_minus[done:done + k]))
            self.evaluations += 2 * k
            done += k
        if done < n:
            parts.append(self._parallel(indices[done:], x_plus[done:], x_minus[done:]))
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([jp for jp, _ in parts]),
                np.concatenate([jm for _, jm in parts]))

    def _parallel(self, indices, x_plus, x_minus):
        """J+ and J- of each component, computed in parallel by the kernel."""
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
