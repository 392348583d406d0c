"""The processes backend: each chunk split over worker processes, each with its own cost.

Every worker holds its own copy of the cost, ``args``, theta and the layout (the
"shipment"), received once per check, so a cost that keeps state on an object or reseeds
the global RNG behaves exactly as on ``serial``: nothing is shared. Each ``evaluate``
splits the driver's chunk into one contiguous slice per worker; a worker runs the serial
loop on its slice (same code, same order of operations, so the numbers are bitwise those
of ``serial``) with BLAS at one thread.

On Linux, where ``fork`` is safe, a fresh ``concurrent.futures`` pool is forked
per check: the workers inherit the shipment (closures, lambdas, ``__main__`` functions
and unpicklable objects need no pickling) and start in ~10 ms. Elsewhere the workers are
loky's reusable ones (spawned once per session) and the shipment is pickled with
cloudpickle into a file that each worker loads once per check; a cost that cannot be
pickled is a ``TypeError`` naming what could not be. ``docs/processes.md`` has the
measurements behind this choice (``bench/pool_startup.py``).

A cost that raises in a worker gives serial's ``CostEvaluationError``; a worker that dies
(segfault, ``os._exit``, killed for memory) is a ``FastcheckError`` naming the chunk.
In both cases, and on Ctrl-C, the other workers are terminated at once.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

import numpy as np

from .._blas import _blas_controller
from ..errors import FastcheckError
from .base import Backend
from .process_worker import _complex_slice, _evaluate_slice, _Failure, _init_forked, _pid

#: Start method: "fork" (a fresh pool per check, nothing pickled) on Linux; "loky"
#: (reusable spawned workers, shipment pickled with cloudpickle) elsewhere: macOS has
#: fork, but its system libraries (Accelerate, the Objective-C runtime) are not safe in
#: a forked child, which is why Python spawns there by default.
START_METHOD = "fork" if sys.platform.startswith("linux") else "loky"
#: Seconds to start and stop one worker (forks are made one after another by the
#: parent), used by ``backend="auto"`` before this process has measured it: 2 forked
#: workers started and stopped in 10 + 7 ms on the reference machine, 12 + 6 ms per
#: worker with 8 and 16 workers on a loaded one (docs/performance.md); the estimate has a
#: margin for a larger parent. Replaced by the last measurement afterwards.
STARTUP_ESTIMATE = {"fork": 0.025, "loky": 0.5}
#: Seconds a new worker loses on its first evaluations, in parallel with the others
#: (fork: ~140 copy-on-write faults on pages shared with the parent, cold caches: ~4 ms
#: of CPU per worker measured on the M network; docs/processes.md), for ``backend="auto"``.
WARMUP_SECONDS = {"fork": 0.005, "loky": 0.0}
#: Seconds each ``evaluate`` call costs beyond the evaluations (one task per worker,
#: pickling of the slices and results), for ``backend="auto"``.
PER_CALL_OVERHEAD = 0.002
#: Seconds to wait for a terminated worker before killing it.
TERMINATE_GRACE = 0.5

#: Seconds loky's reusable workers wait idle for the next check before they exit.
LOKY_IDLE_SECONDS = 300

_measured_startup: dict[str, float] = {}
_loky_pools: list = []


def shutdown_workers() -> None:
    """Stop loky's reusable workers now (they otherwise exit after ``LOKY_IDLE_SECONDS``
    idle); forked workers never outlive their check."""
    while _loky_pools:
        _loky_pools.pop().shutdown(wait=True, kill_workers=True)


def startup_seconds(workers: int, method: str | None = None) -> float:
    """Expected seconds to start and stop ``workers`` workers of ``method`` (default:
    this platform's): the last measurement in this process, else the estimate, per worker."""
    method = method or START_METHOD
    return workers * _measured_startup.get(method, STARTUP_ESTIMATE[method])


def default_workers() -> int:
    """Worker processes when ``threads`` is None: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _openmp_running() -> bool:
    """Whether numba's OpenMP threading layer has started in this process."""
    if "numba" not in sys.modules:
        return False
    import numba

    try:
        return numba.threading_layer() == "omp"
    except ValueError:  # no parallel code has run yet
        return False


def _processes_of(pool) -> list:
    """The pool's worker processes (private in both libraries, hence the care): empty
    when it has none or no longer knows them."""
    return list((getattr(pool, "_processes", None) or {}).values())


# -- the parent side -------------------------------------------------------------------------
def _unpicklable(problem, exc: BaseException) -> TypeError:
    """A TypeError naming which part of the shipment cloudpickle could not pickle."""
    import cloudpickle

    parts = [("cost", problem.cost)] + [(f"args[{k}]", a) for k, a in enumerate(problem.args)]
    what = "cost, args or theta"
    for label, value in parts:
        try:
            cloudpickle.dumps(value)
        except Exception as part_exc:
            what, exc = f"{label} ({type(value).__name__})", part_exc
            break
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return TypeError(
        f"backend='processes' must send {what} to worker processes started with spawn "
        f"(this platform cannot fork), but it cannot be pickled: {type(exc).__name__}: "
        f"{first}. Use backend='serial', or keep such objects (locks, open files, "
        "connections) out of the cost"
    )


class ProcessesBackend(Backend):
    """Evaluate one contiguous slice of each chunk on each of several worker processes.

    Parameters
    ----------
    problem : Problem
        The prepared check; its cost, args, theta and layout go to every worker once.
    threads : int or None
        Worker processes (None: the cores this process may use).

    Attributes
    ----------
    threads : int
        Worker processes.
    startup_seconds : float
        Measured time until every worker had answered (the pool's start-up).
    """

    name = "processes"
    supports = {"complex": True}

    def __init__(self, problem, threads: int | None = None):
        self.problem = problem
        self.threads = int(threads) if threads else default_workers()
        self.compile_seconds = 0.0
        self.evaluations = 0
        self.startup_seconds = math.nan
        self.method = START_METHOD
        self._key = uuid.uuid4().hex
        self._pool: Any = None
        self._path: str | None = None
        self._processes: list = []
        self._t_start = 0.0

    # -- start and stop ---------------------------------------------------------------------
    def __enter__(self) -> ProcessesBackend:
        # Found before the clock starts: the first time, finding the BLAS libraries
        # imports scipy.linalg (~0.15 s, once per process), which is not the workers'
        # start-up and, counted as such, made auto's next estimate ~10x too large.
        _blas_controller()
        self._t_start = time.perf_counter()
        try:
            if self.method == "fork":
                self._start_forked()
            else:
                self._start_loky()
        except BaseException:
            self._stop(kill=True)
            raise
        self.startup_seconds = time.perf_counter() - self._t_start
        return self

    def __exit__(self, *exc) -> None:
        t0 = time.perf_counter()
        clean = self._pool is not None and exc[0] is None  # not stopped by an error
        self._stop(kill=exc[0] is not None)
        if clean and not math.isnan(self.startup_seconds):  # a normal start and stop
            _measured_startup[self.method] = \
                (self.startup_seconds + time.perf_counter() - t0) / self.threads

    def _start_forked(self) -> None:
        if mp.current_process().daemon:
            raise FastcheckError(
                "backend='processes' cannot start worker processes from a daemonic process "
                "(a multiprocessing.Pool worker); use backend='serial' there")
        _blas_controller()  # found before the fork (in __enter__), inherited by the workers
        shipped = replace(self.problem, analytic=np.empty(0))
        self._pool = ProcessPoolExecutor(self.threads, mp_context=mp.get_context("fork"),
                                         initializer=_init_forked,
                                         initargs=(self._key, shipped))
        with warnings.catch_warnings():  # Python 3.12+ warns on fork with threads alive
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    message=".*fork.*")
            first = self._pool.submit(_pid)  # forks every worker now
        self._processes = _processes_of(self._pool)
        self._result(first, "starting the workers")

    def _start_loky(self) -> None:
        import cloudpickle
        import loky

        shipped = replace(self.problem, analytic=np.empty(0))
        try:
            data = cloudpickle.dumps(shipped)
        except Exception as exc:
            raise _unpicklable(self.problem, exc) from exc
        fd, self._path = tempfile.mkstemp(prefix="fastcheck-", suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        self._pool = loky.get_reusable_executor(self.threads, timeout=LOKY_IDLE_SECONDS)
        _loky_pools.append(self._pool)
        self._processes = _processes_of(self._pool)

    def _stop(self, kill: bool) -> None:
        """Shut the pool down; ``kill``: terminate the workers now (error, Ctrl-C)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            if kill:
                self._processes = _processes_of(pool) or self._processes
                for p in self._processes:
                    if p.is_alive():
                        p.terminate()
                for p in self._processes:
                    p.join(TERMINATE_GRACE)
                    if p.is_alive():  # pragma: no cover - SIGTERM ignored
                        p.kill()
                        p.join(TERMINATE_GRACE)
                if self.method == "loky":
                    pool.shutdown(wait=True, kill_workers=True)
                else:
                    pool.shutdown(wait=True, cancel_futures=True)
            elif self.method == "fork":
                pool.shutdown(wait=True)
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:  # pragma: no cover
                pass
            self._path = None

    # -- evaluation -------------------------------------------------------------------------
    def _slices(self, n: int) -> list[tuple[int, int]]:
        k = min(self.threads, n)
        bounds = [(n * w) // k for w in range(k + 1)]
        return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]

    def _result(self, future, what: str):
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise self._died(what) from exc

    def _died(self, what: str) -> FastcheckError:
        for p in self._processes:  # the pool terminates the others; their codes settle
            p.join(TERMINATE_GRACE)
        codes = [p.exitcode for p in self._processes
                 if p.exitcode not in (None, 0, -signal.SIGTERM)]
        how = ""
        if codes:
            code = codes[0]
            how = (f" (killed by signal {signal.Signals(-code).name})" if code < 0
                   else f" (exit code {code})")
        openmp = ("; this process runs numba's OpenMP threads, and GNU OpenMP aborts a "
                  "forked worker whose cost runs @njit(parallel=True) code ('fork() called "
                  "from a process already using GNU OpenMP'): set "
                  "NUMBA_THREADING_LAYER=workqueue before numba starts, or use "
                  "backend='serial'" if self.method == "fork" and _openmp_running() else "")
        return FastcheckError(
            f"backend='processes': a worker process died{how} while {what}; the other "
            "workers were stopped. A segfault in the cost, os._exit inside it, "
            "or the system killing the worker for memory (each worker holds its own copy "
            "of the cost and args) end a worker; backend='serial' runs the cost in this "
            f"process{openmp}"
        )

    def _describe(self, indices, lo: int, hi: int) -> str:
        label = self.problem.layout.label
        first, last = int(indices[lo]), int(indices[hi - 1])
        return (f"evaluating the chunk of {hi - lo:,} component(s) {label(first)} (flat "
                f"index {first}) to {label(last)} (flat index {last})")

    def _gather(self, fn, indices, *arrays):
        """Run ``fn`` on one slice per worker; results in order, errors as serial's."""
        n = indices.shape[0]
        parts = self._slices(n)
        futures = [self._pool.submit(fn, self._key, self._path, indices[lo:hi],
                                     *(a[lo:hi] for a in arrays)) for lo, hi in parts]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)  # a dead worker: at once
            out = []
            for future in futures:  # a dead worker fails every pending slice: name all
                value = self._result(future, self._describe(indices, 0, n))
                if isinstance(value, _Failure):
                    raise value.exception()
                out.append(value)
        except BaseException:
            for f in futures:
                f.cancel()
            self._stop(kill=True)  # the other workers stop now, not after their slices
            raise
        return out

    def evaluate(self, indices, x_plus, x_minus):
        """J+ and J- of each component, in order (bitwise those of ``serial``).

        Parameters
        ----------
        indices : int64 array
            Flat components to perturb.
        x_plus, x_minus : float64 arrays
            Their perturbed values.

        Returns
        -------
        (ndarray, ndarray)
            J+ and J- for each index.
        """
        if indices.shape[0] == 0:
            return np.empty(0), np.empty(0)
        self._ensure_running()
        parts = self._gather(_evaluate_slice, indices, x_plus, x_minus)
        self.evaluations += 2 * indices.shape[0]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def evaluate_complex(self, indices, steps):
        """Complex-step derivatives ``Im J(theta + i h e_k) / h``, one slice per worker."""
        if indices.shape[0] == 0:
            return np.empty(0)
        self._ensure_running()
        parts = self._gather(_complex_slice, indices, steps)
        self.evaluations += indices.shape[0]
        return np.concatenate(parts)

    def _ensure_running(self) -> None:
        if self._pool is None:
            raise FastcheckError("backend='processes': the workers were stopped (after an "
                                 "error or outside the backend's with block)")


# -- backend="auto" --------------------------------------------------------------------------
#: Cost evaluations per checked component of each method (for ``backend="auto"``).
EVALUATIONS_PER_COMPONENT = {"central": 2, "richardson": 4, "complex": 1}
#: ``auto`` picks processes only when its estimate beats serial's by this factor, and
#: never for a check estimated shorter than ``MIN_SERIAL_SECONDS`` serially (nobody waits
#: for it, and one timed call on a busy machine is too noisy to bet the start-up on).
MARGIN = 1.1
MIN_SERIAL_SECONDS = 0.2


def auto_choice(problem, n_components: int, method: str = "central",
                threads: int | None = None) -> tuple[str, str | None]:
    """``"processes"`` or ``"serial"`` for a Python cost, and why (a note for the report;
    None for a check estimated under ``MIN_SERIAL_SECONDS``, where serial goes unsaid).

    Serial takes ``evaluations x cost_seconds`` (the cost timed at theta by ``prepare``);
    processes take that divided over the workers, plus their start-up (per worker: forks
    are sequential), their warm-up and a small overhead per chunk. Processes are chosen when that is
    ``MARGIN`` times faster and serial would take ``MIN_SERIAL_SECONDS`` or more.
    """
    from .._driver import chunk_schedule

    per_eval = float(getattr(problem, "cost_seconds", math.nan))
    evaluations = EVALUATIONS_PER_COMPONENT.get(method, 2) * n_components
    workers = int(threads) if threads else default_workers()
    if mp.current_process().daemon:  # e.g. inside a multiprocessing.Pool worker
        return "serial", ("backend='auto' chose serial: this is a daemonic process, which "
                          "cannot start worker processes")
    if not math.isfinite(per_eval) or workers < 2:
        if workers < 2:  # nothing to gain, nothing to explain
            return "serial", None
        return "serial", "backend='auto' chose serial (the cost was not timed)"
    serial = evaluations * per_eval
    calls = sum(1 for _ in chunk_schedule(n_components))
    start = startup_seconds(workers) + WARMUP_SECONDS[START_METHOD]
    parallel = start + serial / workers + PER_CALL_OVERHEAD * calls
    estimate = (f"{evaluations:,} evaluations x {per_eval * 1e6:,.0f} us = ~{serial:.2g} s "
                f"serially, ~{parallel:.2g} s on {workers} worker processes (start-up and "
                f"warm-up ~{start * 1e3:.0f} ms)")
    if parallel * MARGIN < serial and serial >= MIN_SERIAL_SECONDS:
        return "processes", f"backend='auto' chose processes: {estimate}"
    if serial < MIN_SERIAL_SECONDS:  # serial is what anyone expects: no note
        return "serial", None
    return "serial", (f"backend='auto' chose serial: {estimate}; too short to pay for "
                      "starting worker processes")
