"""The worker side of ``backend="processes"``: what runs inside each worker process.

A worker holds one check at a time (``_STATE``): its own copy of theta and the bound
cost, installed by the fork initializer (``_init_forked``) or loaded once from the
pickled shipment (``_state_for``), with BLAS at one thread. It evaluates slices with the
serial loop (so its numbers are bitwise those of ``serial``) and returns a cost's error
as a value (``_Failure``) for the parent to raise. The parent side is ``processes.py``.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._blas import _blas_controller
from .._values import scalar_cost
from ..errors import CostEvaluationError, FastcheckError
from .base import complex_step_values, ensure_unmodified, serial_values


@dataclass
class _WorkerState:
    """One worker's copy of the check: its own theta buffer and bound cost."""

    key: str
    problem: Any
    x: np.ndarray
    call: Any
    blas: Any  # the threadpoolctl limit to restore; None in a forked worker


_STATE: _WorkerState | None = None


def _install(key: str, problem, forked: bool = False) -> None:
    """Make ``problem`` this worker's check (BLAS at one thread while it holds it).

    ``forked``: this worker was forked for this check and ends with it, so nothing is
    restored, and BLAS is set to one thread without restarting OpenBLAS's thread pool
    (``_one_blas_thread_after_fork``).
    """
    global _STATE
    if _STATE is not None and _STATE.blas is not None:
        _STATE.blas.restore_original_limits()
    x = problem.theta.copy()
    if forked:
        _one_blas_thread_after_fork()
        blas = None
    else:
        blas = _blas_controller().limit(limits=1)
    _STATE = _WorkerState(key, problem, x, problem.make_call(x), blas)


def _one_blas_thread_after_fork() -> None:
    """One BLAS thread in a forked worker, without starting threads.

    ``openblas_set_num_threads`` (what threadpoolctl calls) first restarts OpenBLAS's
    thread pool when a fork has shut it down, which it always has in a forked child: one
    thread per core and per OpenBLAS library loaded (numpy's and scipy's are two), which
    then spin ~25 ms each before sleeping. That was ~50 ms of CPU per worker per check,
    taken from the evaluations on a 2-core machine, and cores - 1 threads per library in
    each of the workers on a large one (``bench/course_bench.py --warmup``). For OpenBLAS
    built with pthreads, the thread count used by every BLAS call is the library's
    exported ``blas_cpu_number``, which that function sets last: set it directly. Any
    other library, or an OpenBLAS without that symbol, goes through threadpoolctl.
    """
    import ctypes

    for lib in _blas_controller().lib_controllers:
        if lib.get_num_threads() in (None, 1):
            continue
        if lib.internal_api == "openblas" and \
                getattr(lib, "threading_layer", None) == "pthreads":
            try:
                ctypes.c_int.in_dll(lib.dynlib, "blas_cpu_number").value = 1
            except (AttributeError, ValueError):  # pragma: no cover - symbol not exported
                pass
        if lib.get_num_threads() != 1:  # pragma: no cover - not OpenBLAS with pthreads
            lib.set_num_threads(1)


def _init_forked(key: str, problem) -> None:
    """Initializer of a forked worker: Ctrl-C is the parent's business; die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:  # PR_SET_PDEATHSIG: a worker never outlives a parent killed by SIGKILL
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass
    _install(key, problem, forked=True)


def _state_for(key: str, path: str | None) -> _WorkerState:
    """This worker's state for the check ``key``, loaded from ``path`` the first time."""
    if _STATE is None or _STATE.key != key:
        if path is None:  # pragma: no cover - a forked worker always has its state
            raise FastcheckError("backend='processes': worker has no shipment")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with open(path, "rb") as f:
            _install(key, pickle.load(f))
    assert _STATE is not None  # _install set it
    return _STATE


@dataclass(frozen=True)
class _Failure:
    """An error raised in a worker, carried back as a value and raised again in the parent."""

    kind: Any
    message: str
    flat_index: int
    name: str
    cause: BaseException | None

    @classmethod
    def of(cls, exc: Exception) -> _Failure:
        cause = exc.__cause__
        try:
            pickle.loads(pickle.dumps(cause))
        except Exception:  # an unpicklable cause travels as its text, in the message
            cause = None
        return cls(type(exc), str(exc), getattr(exc, "flat_index", -1),
                   getattr(exc, "name", ""), cause)

    def exception(self) -> Exception:
        if issubclass(self.kind, CostEvaluationError):
            err: Exception = self.kind(self.message, flat_index=self.flat_index,
                                       name=self.name)
        else:
            try:
                err = self.kind(self.message)
            except Exception:  # pragma: no cover - an exotic constructor
                err = FastcheckError(self.message)
        err.__cause__ = self.cause
        return err


def _evaluate_slice(key: str, path: str | None, indices, x_plus, x_minus):
    """J+ and J- of a slice, on this worker (errors of the cost returned as values)."""
    state = _state_for(key, path)
    try:
        out = serial_values(state.problem, state.x, state.call, indices, x_plus, x_minus,
                            scalar_cost)
        ensure_unmodified(state.x, state.problem.theta)
    except Exception as exc:
        return _Failure.of(exc)
    return out


def _complex_slice(key: str, path: str | None, indices, steps):
    """Complex-step derivatives of a slice, on this worker."""
    state = _state_for(key, path)
    try:
        x = state.problem.theta.astype(np.complex128)
        return complex_step_values(state.problem, x, state.problem.make_call(x), indices,
                                   steps)
    except Exception as exc:
        return _Failure.of(exc)


def _pid() -> int:
    return os.getpid()
