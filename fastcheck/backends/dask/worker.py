"""The worker side of the dask backend: what the tasks run on a dask worker process.

Nothing here imports ``distributed``: the client (``client.py``) submits these functions,
and the workers import this module by name to run them. A task evaluates a contiguous
slice of a chunk with the numba kernel when the cost is ``@njit`` on a flat vector
(compiled once per worker process and cost, then reused by later tasks and checks), with
the serial loop otherwise; errors of the cost come back as values (``RemoteError``).
"""

from __future__ import annotations

import importlib
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import numba
import numpy as np
from numba.core.errors import NumbaError
from numba.extending import is_jitted

from ..._inputs import Problem
from ..._kernel_cache import importable_name
from ..._kernels import central_values
from ..._values import scalar_cost
from ...errors import CostEvaluationError, FastcheckError
from ...layout import Layout
from ..base import ensure_unmodified, locate_failure, serial_values, timed_compile

#: The central-difference kernel compiled without ``parallel``: on a worker, dask's
#: threads are the parallel lanes (several tasks may call it at once, which numba's
#: default ``workqueue`` threading layer does not allow for parallel kernels), and
#: ``nogil`` lets them run at the same time. Same source, so the same numbers. (Under
#: ``NUMBA_DISABLE_JIT=1`` the kernel is the plain function, without ``py_func``.)
_task_kernel = numba.njit(nogil=True)(getattr(central_values, "py_func", central_values))

#: On each worker process: the jitted costs already compiled into the kernel, keyed by
#: the dispatcher's uuid and the types of theta and ``args``. Holding the dispatcher
#: keeps it alive (a cost sent by value unpickles to the same object while it lives).
_COMPILED: OrderedDict[tuple, Callable] = OrderedDict()
_COMPILED_MAX = 16
_COMPILE_LOCK = threading.Lock()
#: Python costs run one at a time in a worker process, as on the serial backend: they
#: are often not thread-safe (state on a shared object), and a worker with several
#: threads would run several tasks at once. Workers with one thread each lose nothing.
_PYTHON_COST_LOCK = threading.Lock()


@dataclass(frozen=True)
class Shipment:
    """What each worker receives once per check: everything needed to evaluate the cost."""

    theta: np.ndarray
    cost: Callable
    args: tuple
    layout: Layout
    params_kind: str
    cost_returns_grad: bool
    j0: float

    @property
    def use_kernel(self) -> bool:
        """Whether the numba kernel applies (an ``@njit`` cost on a flat vector)."""
        return (is_jitted(self.cost) and self.params_kind == "flat"
                and not self.cost_returns_grad)

    def problem(self) -> Problem:
        """A Problem on the worker (no analytic gradient: it is not needed there)."""
        return Problem(theta=self.theta, analytic=np.empty(0), layout=self.layout,
                       cost=self.cost, args=self.args, params_kind=self.params_kind,
                       cost_returns_grad=self.cost_returns_grad, j0=self.j0)

    def __reduce__(self):
        return unpack_shipment, (self.theta, CostByName.of(self.cost), self.args,
                                  self.layout, self.params_kind, self.cost_returns_grad,
                                  self.j0)


@dataclass(frozen=True)
class CostByName:
    """An importable cost sent by name, so the worker uses its own module's function.

    numba pickles a dispatcher by value (code, then every jitted function it calls): the
    worker would compile all of them from scratch, without the cost's disk cache, in
    every process (~5 s for the built-in MLP instead of ~0.3 s).
    """

    module: str
    qualname: str

    @classmethod
    def of(cls, cost):
        """``cost`` by name when importing it by that name gives it back, else itself."""
        name = importable_name(cost)
        return cost if name is None else cls(*name)

    def resolve(self):
        obj = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        return obj


def writable(value):
    """``value``, or a writable copy of it when it is a read-only array.

    Arrays that arrive on a worker are read-only views of the received bytes; numba
    types them differently (``readonly array``), which would compile the cost and the
    kernel again instead of reusing the cost's disk cache and the warm-up's compilation.
    """
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return value.copy()
    return value


def unpack_shipment(theta, cost, args, *rest) -> Shipment:
    """Rebuild a shipment on a worker, with writable arrays (done once per worker)."""
    if isinstance(cost, CostByName):
        cost = cost.resolve()
    return Shipment(writable(theta), cost, tuple(writable(a) for a in args), *rest)


@dataclass(frozen=True)
class RemoteError:
    """A clean error raised on a worker, carried back as a value (not retried)."""

    kind: type[Exception]
    message: str
    flat_index: int = -1
    name: str = ""
    cause: BaseException | None = None

    @classmethod
    def of(cls, exc: Exception) -> RemoteError:
        cause = exc.__cause__
        try:
            pickle.dumps(cause)
        except Exception:  # an unpicklable cause travels as its text only
            cause = None
        return cls(type(exc), str(exc), getattr(exc, "flat_index", -1),
                   getattr(exc, "name", ""), cause)

    def reraise(self) -> NoReturn:
        """Raise the same error in the calling process."""
        if issubclass(self.kind, CostEvaluationError):
            err: Exception = self.kind(self.message, flat_index=self.flat_index,
                                       name=self.name)
        else:
            err = self.kind(self.message)
        raise err from self.cause


@dataclass(frozen=True)
class TaskResult:
    """J+ and J- of the components at positions ``start, start + 1, ...`` of a call."""

    start: int
    j_plus: np.ndarray | None = None
    j_minus: np.ndarray | None = None
    seconds: float = 0.0  # evaluation time, compilation excluded
    evaluations: int = 0
    compile_seconds: float = 0.0
    error: RemoteError | None = None


def _compile_once(ship: Shipment) -> float:
    """Compile the kernel for this cost in this process, once; returns the seconds spent."""
    key = (getattr(ship.cost, "_uuid", id(ship.cost)), numba.typeof(ship.args),
           numba.typeof(ship.theta))
    with _COMPILE_LOCK:
        if key in _COMPILED:
            _COMPILED.move_to_end(key)
            return 0.0
        one = np.zeros(1, dtype=np.int64)
        value = ship.theta[:1].copy()
        seconds = timed_compile(
            lambda: _task_kernel(ship.cost, ship.theta, one, value, value, 1, ship.args),
            "dask")
        _COMPILED[key] = ship.cost
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
        return seconds


def _evaluate_here(ship: Shipment, indices, x_plus, x_minus):
    """J+ and J- with the best backend of this process (kernel, or the serial loop)."""
    problem = ship.problem()
    x = ship.theta.copy()
    if ship.use_kernel:
        cost, args = ship.cost, ship.args
        failure: BaseException | None = None
        try:
            out = _task_kernel(cost, ship.theta, indices, x_plus, x_minus, 1, args)
        except NumbaError:
            raise
        except Exception as exc:
            failure = exc
        else:  # (j_plus, j_minus[, finished per chunk])
            if len(out) < 3 or np.all(out[2]):
                return out[0], out[1]
        locate_failure(problem, cost, indices, x_plus, x_minus, failure)
    with _PYTHON_COST_LOCK:
        out = serial_values(problem, x, problem.make_call(x), indices, x_plus, x_minus,
                            scalar_cost)
    ensure_unmodified(x, ship.theta)
    return out


def run_task(ship: Shipment, start: int, indices, x_plus, x_minus) -> TaskResult:
    """One task: compile if this process has not yet, then evaluate the slice."""
    try:
        compile_seconds = _compile_once(ship) if ship.use_kernel else 0.0
        t0 = time.perf_counter()
        j_plus, j_minus = _evaluate_here(ship, writable(indices), writable(x_plus),
                                         writable(x_minus))
        seconds = time.perf_counter() - t0
    except (FastcheckError, TypeError) as exc:
        return TaskResult(start, error=RemoteError.of(exc))
    return TaskResult(start, j_plus, j_minus, seconds, 2 * indices.shape[0],
                      compile_seconds)


def warm_up(ship: Shipment) -> TaskResult:
    """Compile on this worker and time a few evaluations at theta (for the task sizes)."""
    try:
        compile_seconds = _compile_once(ship) if ship.use_kernel else 0.0
        calls = 2 if compile_seconds else 0  # the compiling call evaluated J+ and J-
        k = 1
        while True:  # 2, 8, 32, 128 evaluations, until they take 10 ms
            idx = np.zeros(k, dtype=np.int64)
            value = np.full(k, ship.theta[0])
            t0 = time.perf_counter()
            _evaluate_here(ship, idx, value, value)
            seconds = time.perf_counter() - t0
            calls += 2 * k
            if seconds >= 0.01 or k >= 64:
                break
            k *= 4
    except (FastcheckError, TypeError) as exc:
        return TaskResult(0, error=RemoteError.of(exc))
    per_evaluation = seconds / (2 * k)
    return TaskResult(0, None, None, per_evaluation, calls, compile_seconds)


def suspicious_count(prefix: str, dask_scheduler=None) -> int:
    """On the scheduler: how often tasks of ``prefix`` were running on a worker that died."""
    tp = dask_scheduler.task_prefixes.get(prefix)
    return 0 if tp is None else int(tp.suspicious)
