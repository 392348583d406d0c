"""The client side of the dask backend: each chunk split into ~1 s tasks on a cluster.

The cost, ``args``, theta and the layout (the "shipment") are scattered once per check,
and a warm-up task on every worker pulls a copy from its peers, so each worker receives
them once. (Not ``scatter(broadcast=True)``: when a worker dies during the broadcast,
the scheduler's ``replicate`` loops forever, dask/distributed#5704; a peer-to-peer pull
survives a dying worker.) Each task evaluates a contiguous slice of the chunk on its worker:
with the numba kernel when the cost is ``@njit`` on a flat vector (compiled once per
worker process and cost, then reused by later tasks and checks), with the serial loop
otherwise. Results are written back by position, and every position must be written
exactly once. A worker that dies takes its tasks with it; the scheduler runs them again
elsewhere, and ``retries`` / ``lost_workers`` record what happened.

This module imports ``distributed``: it is loaded only when ``backend="dask"`` is used.
What runs on the workers is in ``worker.py``.
"""

from __future__ import annotations

import math
import pickle
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import distributed
import numpy as np

from ...errors import FastcheckError
from ..base import Backend, short_error
from .worker import Shipment, TaskResult, run_task, suspicious_count, warm_up

#: Wanted running time of one task: long enough that the scheduler's overhead per task
#: (about 1 ms) is negligible, short enough to balance the load and to lose little work
#: when a worker dies.
TARGET_TASK_SECONDS = 1.0
#: At most this many tasks per ``evaluate`` call.
MAX_TASKS = 256
#: Retries of a task that raised an unexpected exception (errors of the cost itself are
#: returned as values and never retried; a dead worker's tasks are rescheduled by the
#: scheduler, up to ``distributed.scheduler.allowed-failures`` times).
RETRIES = 2
#: How often to look at the cluster while waiting for results, and how long to wait
#: with no worker at all before giving up.
POLL_SECONDS = 2.0
NO_WORKERS_TIMEOUT = 60.0
#: Times the shipment is scattered again when it was lost (its workers all died, or
#: one died while receiving it).
RESHIPMENTS = 3


def _resolve_client(client):
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError("client must be a dask.distributed.Client, got "
                            f"{type(client).__name__}")
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise ValueError(
            "backend='dask' needs a dask.distributed Client: pass client=Client(...) to "
            "fc.check, or create one first (Client('tcp://scheduler:8786'), or "
            "Client(LocalCluster()) on this machine, becomes the default client)"
        ) from None


@dataclass(frozen=True)
class _Task:
    """A task to submit: ``fn(shipment, *args)``, optionally placed on ``workers``."""

    key: str
    fn: Callable
    args: tuple
    workers: tuple[str, ...] | None = None


class DaskBackend(Backend):
    """Evaluate each chunk as tasks of about a second on a dask.distributed cluster.

    Parameters
    ----------
    problem : Problem
        The prepared check; its cost, args, theta and layout are shipped to the workers.
    threads : int or None
        Ignored: the cluster's worker threads set the parallelism (``threads`` reports
        their total).
    client : distributed.Client or None
        The cluster to use; None means the current default client.

    Attributes
    ----------
    threads : int
        Total worker threads when the check started.
    compile_seconds : float
        Longest kernel compilation on a worker (workers compile at the same time).
    evaluations : int
        Cost calls of the tasks that returned (work lost with a dead worker is not counted).
    retries : int or None
        Tasks that ran again: the scheduler's count of this check's tasks that were
        running on a worker that died, plus the tasks submitted again because the
        shipment itself was lost (a worker died during the scatter). None when the
        scheduler could not be asked.
    lost_workers : int
        Workers that left the cluster during the check.
    seconds_per_evaluation : float
        Measured on the workers; sets the task sizes.
    """

    name = "dask"
    supports = {"complex": False}

    def __init__(self, problem, threads: int | None = None, client=None):
        self.problem = problem
        self.client = _resolve_client(client)
        if self.client.status not in ("running", "connecting", "newly-created"):
            raise ValueError(f"the dask client is {self.client.status}, not running")
        self.compile_seconds = 0.0
        self.evaluations = 0
        self.retries: int | None = 0
        self.lost_workers = 0
        self.seconds_per_evaluation = math.nan
        self.threads = sum(self.client.nthreads().values())
        self._ship = Shipment(problem.theta, problem.cost, problem.args, problem.layout,
                               problem.params_kind, problem.cost_returns_grad, problem.j0)
        self._prefix = f"fastcheck_{uuid.uuid4().hex[:12]}"
        self._ship_future: Any = None  # a distributed.Future once shipped
        self._workers: set[str] = set()
        self._live_threads = self.threads
        self._calls = 0
        self._resubmitted = 0
        self._busy = 0.0  # task seconds and evaluations, for seconds_per_evaluation
        self._busy_evals = 0

    # -- context manager: ship once, warm up every worker, clean up -----------------------
    def __enter__(self) -> DaskBackend:
        try:
            self._start()
        except BaseException:
            self._release()
            raise
        return self

    def close(self) -> None:
        """Count what happened on the cluster, then release the shipment."""
        try:
            self._watch_workers()
            self._count_retries()
        except Exception:  # bookkeeping must not hide how the check itself ended
            self.retries = None
        finally:
            self._release()

    def _start(self) -> None:
        workers = self.client.nthreads()
        if not workers:  # e.g. an adaptive cluster scaled to zero: give it a minute
            try:
                self.client.wait_for_workers(1, timeout=NO_WORKERS_TIMEOUT)
            except (TimeoutError, distributed.TimeoutError):
                raise FastcheckError(f"backend='dask': the dask cluster has no workers "
                                     f"(waited {NO_WORKERS_TIMEOUT:.0f} s)") from None
            workers = self.client.nthreads()
        self._workers = set(workers)
        self.threads = self._live_threads = sum(workers.values())
        self._scatter()
        warm = [_Task(self._key(0, k), warm_up, (), (w,))
                for k, w in enumerate(sorted(workers))]
        try:
            results = self._run(warm)
        except (FastcheckError, TypeError):
            raise  # clean errors, as raised locally
        except Exception as exc:  # the first task on each worker: unpickling failed
            raise _unloadable(exc) from exc
        self.compile_seconds = max(r.compile_seconds for r in results)
        self.evaluations += sum(r.evaluations for r in results)
        self.seconds_per_evaluation = float(np.median([r.seconds for r in results]))

    def _scatter(self) -> None:
        """Send the shipment to one worker (again, after it was lost); the tasks that
        need it on other workers fetch it from there, once per worker."""
        self._release()
        for attempt in range(1 + RESHIPMENTS):
            try:
                self._ship_future = self.client.scatter(self._ship, hash=False)
                return
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                root: BaseException = exc
                while root.__cause__ is not None:  # dask's message repeats the data
                    root = root.__cause__
                raise TypeError(
                    "backend='dask' sends cost, args and theta to the workers, but they "
                    f"cannot be pickled ({type(root).__name__}: {short_error(root)}); define "
                    "cost at the top level of an importable module"
                ) from exc
            except OSError:  # a worker died while receiving it: try the others
                if attempt == RESHIPMENTS:
                    raise
                time.sleep(0.5)
            except Exception as exc:  # the receiving worker could not unpickle it
                raise _unloadable(exc) from exc

    def _release(self) -> None:
        if self._ship_future is not None:
            self._ship_future.release()
            self._ship_future = None

    def _key(self, call: int, start: int) -> str:
        # one key prefix per check ("fastcheck_<hex>"): the scheduler counts per prefix
        return f"{self._prefix}-{call}-{start}"

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, indices, x_plus, x_minus):
        """J+ and J- of each component, computed by tasks on the cluster.

        Parameters
        ----------
        indices : int64 array
            Flat components to perturb.
        x_plus, x_minus : float64 arrays
            Their perturbed values.

        Returns
        -------
        (ndarray, ndarray)
            J+ and J- for each index, in the order of ``indices``.
        """
        n = indices.shape[0]
        if n == 0:
            return np.empty(0), np.empty(0)
        self._calls += 1
        bounds = self._task_bounds(n)
        tasks = [_Task(self._key(self._calls, lo), run_task,
                       (lo, indices[lo:hi], x_plus[lo:hi], x_minus[lo:hi]))
                 for lo, hi in zip(bounds[:-1], bounds[1:])]
        results = self._run(tasks)
        j_plus, j_minus = _assemble(n, results)
        self.evaluations += 2 * n
        self._busy += sum(r.seconds for r in results)
        self._busy_evals += 2 * n
        self.seconds_per_evaluation = self._busy / self._busy_evals
        self.compile_seconds = max([self.compile_seconds,
                                    *(r.compile_seconds for r in results)])
        self._watch_workers()
        return j_plus, j_minus

    def _task_bounds(self, n: int) -> list[int]:
        """Slice bounds: tasks of ~TARGET_TASK_SECONDS, whole waves of the worker threads."""
        threads = max(1, self._live_threads)
        per_eval = self.seconds_per_evaluation
        if not math.isfinite(per_eval):
            per_eval = 0.0
        n_tasks = max(math.ceil(2 * n * per_eval / TARGET_TASK_SECONDS), threads)
        n_tasks = math.ceil(n_tasks / threads) * threads
        n_tasks = min(n_tasks, n, MAX_TASKS)
        return [(n * k) // n_tasks for k in range(n_tasks + 1)]

    def _run(self, tasks: list[_Task]) -> list[TaskResult]:
        """Results of the tasks, in order; on clean errors, the error of the first task.

        When the shipment is lost (every worker holding it died), it is scattered again
        and the tasks that could not run are submitted again.
        """
        results: list[TaskResult | None] = [None] * len(tasks)
        todo = list(range(len(tasks)))
        for attempt in range(1 + RESHIPMENTS):
            if attempt:
                self._resubmitted += len(todo)
                self._scatter()
            lost = self._run_once(tasks, todo, results, attempt)
            errors = [r.error for r in results if r is not None and r.error is not None]
            first = next((k for k, r in enumerate(results) if r is not None and r.error), None)
            if errors and first is not None:
                lost = [k for k in lost if k < first]
                if not lost:
                    errors[0].reraise()
            if not lost:
                return [r for r in results if r is not None]
            todo = lost
        raise FastcheckError(f"backend='dask': the data shipped to the workers was lost "
                             f"{RESHIPMENTS + 1} times; is the cluster stable?")

    def _run_once(self, tasks, todo, results, attempt: int) -> list[int]:
        """Submit ``tasks[todo]`` and fill ``results``; returns the tasks that lost the
        shipment. Each result is fetched and released as soon as it is ready, so a
        worker dying later does not make the scheduler compute it again."""
        futures = {}
        for k in todo:
            t = tasks[k]
            place = {"workers": list(t.workers), "allow_other_workers": True} \
                if t.workers else {}
            f = self.client.submit(t.fn, self._ship_future, *t.args, key=f"{t.key}-{attempt}",
                                   retries=RETRIES, **place)
            futures[f] = k
        pending, lost = set(futures), []
        try:
            while pending:
                done = [f for f in self._wait_some(pending) if f in pending]
                pending.difference_update(done)
                for f in done:
                    if f.cancelled():
                        if not self._shipment_lost():
                            raise FastcheckError(f"backend='dask': task {f.key} was "
                                                 "cancelled on the cluster")
                        lost.append(futures[f])
                    elif f.status == "error":
                        self._result(f)  # raises: the task failed on every try
                finished = [f for f in done if f.status == "finished"]
                for f, result in zip(finished, self.client.gather(finished)):
                    results[futures[f]] = result  # one round trip for all of them
                    f.release()
                errors = [futures[f] for f in finished if results[futures[f]].error]
                if errors:  # the tasks after the first error need not run
                    later = [g for g in pending if futures[g] > min(errors) and not g.done()]
                    self.client.cancel(later)
                    pending.difference_update(later)
        finally:
            if pending:
                self.client.cancel(list(pending))
        return sorted(lost)

    def _shipment_lost(self) -> bool:
        """Whether no worker holds the shipment any more."""
        key = self._ship_future.key
        return not self.client.who_has(self._ship_future).get(key)

    def _wait_some(self, pending) -> set:
        """Futures that are done, waiting as long as some worker is there to run them."""
        alone_since = None
        while True:
            try:
                with self.client.as_current():  # wait() looks for the current client
                    distributed.wait(pending, timeout=POLL_SECONDS,
                                     return_when="FIRST_COMPLETED")
            except distributed.TimeoutError:
                if self.client.nthreads():
                    alone_since = None
                    continue
                alone_since = alone_since or time.monotonic()
                if time.monotonic() - alone_since > NO_WORKERS_TIMEOUT:
                    raise FastcheckError(
                        f"backend='dask': no worker left in the cluster for "
                        f"{NO_WORKERS_TIMEOUT:.0f} s; the check cannot finish"
                    ) from None
                continue
            except distributed.CancelledError:
                pass  # a cancelled future is done too: the caller looks at each
            return {f for f in pending if f.done()}

    def _result(self, future) -> TaskResult:
        try:
            return future.result()
        except distributed.KilledWorker as exc:
            raise FastcheckError(
                f"backend='dask': the workers running task {future.key} died too often "
                f"({exc}); the cost may crash its process (segfault, out of memory)"
            ) from exc

    # -- bookkeeping ----------------------------------------------------------------------
    def events(self) -> list[str]:
        """What the check survived on the cluster (lost workers, tasks run again)."""
        if not (self.lost_workers or self.retries):
            return []
        return [f"{self.lost_workers} worker(s) left the cluster during the check and "
                f"{self.retries} task(s) were run again; every component was evaluated "
                "exactly once in the result"]

    def _watch_workers(self) -> None:
        """Count workers that have left since the last look; note the threads alive."""
        now = self.client.nthreads()
        self.lost_workers += len(self._workers - now.keys())
        self._workers = set(now)
        self._live_threads = sum(now.values())

    def _count_retries(self) -> None:
        """Ask the scheduler how often this check's tasks lost their worker."""
        try:
            rerun = self.client.run_on_scheduler(suspicious_count, self._prefix)
        except Exception:  # e.g. a scheduler that refuses to run functions
            self.retries = None
            return
        self.retries = int(rerun) + self._resubmitted


def _unloadable(exc: Exception) -> FastcheckError:
    return FastcheckError(
        f"the dask workers could not load the cost ({short_error(exc)}); its module must be "
        "importable on every worker: install it there, or client.upload_file(...) it"
    )


def _assemble(n: int, results: list[TaskResult]) -> tuple[np.ndarray, np.ndarray]:
    """Put the task results in place; every position must be written exactly once."""
    j_plus = np.empty(n, dtype=np.float64)
    j_minus = np.empty(n, dtype=np.float64)
    written = np.zeros(n, dtype=np.int64)
    for r in results:
        if r.j_plus is None or r.j_minus is None:
            raise FastcheckError("backend='dask': internal error, a task returned no values")
        s = slice(r.start, r.start + r.j_plus.shape[0])
        j_plus[s] = r.j_plus
        j_minus[s] = r.j_minus
        written[s] += 1
    if not np.all(written == 1):
        missing = int(np.count_nonzero(written == 0))
        doubled = int(np.count_nonzero(written > 1))
        raise FastcheckError(
            f"backend='dask': internal error, {missing} component(s) missing and "
            f"{doubled} duplicated in the results of the tasks"
        )
    return j_plus, j_minus
