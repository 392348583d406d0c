"""The threads backend: a thread pool for Python costs that release the GIL (numpy).

Python costs are often not thread-safe (parameters kept on a shared object, a global RNG
reseeded inside). This backend is only used when asked for, and every chunk re-evaluates
some of its components serially: if the values differ, ``ThreadSafetyError`` is raised
instead of returning wrong numbers.

A race can change a verdict in two ways. It can make a component look wrong (it then
becomes a suspect, and the driver re-verifies every suspect), or it can make J+ and J-
read the same state, so that the numeric derivative is exactly 0 and an all-zero (wrong)
analytic value agrees with it. So every component whose J+ == J- is re-verified too,
besides two random ones per chunk. Exactly-zero differences are rare in a correct cost
away from dead units; where a block is dead, its components are evaluated a second time,
serially: soundness first.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .._values import scalar_cost
from ..errors import ThreadSafetyError
from .base import Backend, Cancelled, complex_step_values, serial_values
from .serial import ensure_unmodified

#: The pool never has more threads than this many per core.
MAX_THREADS_PER_CORE = 2
#: Components of each chunk re-evaluated serially to detect a thread-unsafe cost.
RECHECKS_PER_CHUNK = 2


class ThreadsBackend(Backend):
    """Evaluate contiguous slices of each chunk on a pool of threads."""

    name = "threads"
    supports = {"complex": True}

    def __init__(self, problem, threads: int | None = None):
        self.problem = problem
        cores = os.cpu_count() or 1
        # more threads than a few per core only multiplies copies of theta
        self.threads = min(int(threads), MAX_THREADS_PER_CORE * cores) if threads else cores
        self.compile_seconds = 0.0
        self.evaluations = 0
        self._workers = [problem.theta.copy() for _ in range(self.threads)]
        self._calls = [problem.make_call(x) for x in self._workers]
        self._pool: ThreadPoolExecutor | None = None
        self._rng = np.random.default_rng(0)
        self._cancel = threading.Event()

    def __enter__(self) -> ThreadsBackend:
        self._pool = ThreadPoolExecutor(max_workers=self.threads,
                                        thread_name_prefix="fastcheck")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _run_slice(self, w, indices, x_plus, x_minus, cancel=None):
        return serial_values(self.problem, self._workers[w], self._calls[w], indices,
                             x_plus, x_minus, scalar_cost, cancel)

    def evaluate(self, indices, x_plus, x_minus):
        """J+ and J- of each component; raises ThreadSafetyError on disagreement."""
        n = indices.shape[0]
        bounds = [(n * w) // self.threads for w in range(self.threads + 1)]
        self._cancel.clear()
        futures = [
            self._pool.submit(self._run_slice, w, indices[lo:hi], x_plus[lo:hi],
                              x_minus[lo:hi], self._cancel)
            for w, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])) if hi > lo
        ]
        try:
            parts = [f.result() for f in futures]
        except BaseException:
            self._cancel.set()  # the other workers stop at their next component
            wait(futures)
            errors = [f.exception() for f in futures if not f.cancelled()]
            first = next((e for e in errors if e is not None and not isinstance(e, Cancelled)),
                         None)
            if first is not None:
                raise first from first.__cause__
            raise
        for x in self._workers:
            ensure_unmodified(x, self.problem.theta)
        self.evaluations += 2 * n
        j_plus = np.concatenate([p[0] for p in parts])
        j_minus = np.concatenate([p[1] for p in parts])
        n_picks = min(RECHECKS_PER_CHUNK, n)
        picks = self._rng.choice(n, size=n_picks, replace=False)
        flat = np.flatnonzero(j_plus == j_minus)  # numeric exactly 0: a race can do that
        self.verify(indices, x_plus, x_minus, j_plus, j_minus, np.union1d(picks, flat))
        return j_plus, j_minus

    def verify(self, indices, x_plus, x_minus, j_plus, j_minus, picks=None) -> None:
        """Re-evaluate components (all, or positions ``picks``) in one thread and raise
        ``ThreadSafetyError`` if any value differs from the threaded one.

        The driver calls this for every suspect (a race that makes a component look
        wrong); ``evaluate`` calls it for every component with J+ == J- (a race that
        makes both read the same state) and for a few random ones.
        """
        if picks is None:
            picks = np.arange(indices.shape[0])
        if picks.size == 0:
            return
        again_p, again_m = self._run_slice(0, indices[picks], x_plus[picks], x_minus[picks])
        same_p = np.isclose(again_p, j_plus[picks], rtol=1e-13, atol=0, equal_nan=True)
        same_m = np.isclose(again_m, j_minus[picks], rtol=1e-13, atol=0, equal_nan=True)
        same = same_p & same_m
        self.evaluations += 2 * picks.size
        if not np.all(same):
            bad = int(np.argmin(same))
            k = int(picks[bad])
            label = self.problem.layout.label(int(indices[k]))
            # name the side that differed, with both values as plain floats
            side, again, before = (("J(theta + h)", again_p[bad], j_plus[k]) if not same_p[bad]
                                   else ("J(theta - h)", again_m[bad], j_minus[k]))
            raise ThreadSafetyError(
                f"backend='threads' is not safe for this cost: re-evaluating {side} at {label} "
                f"in one thread gave {float(again):.17g} instead of {float(before):.17g}. "
                "The cost probably "
                "shares state between calls (parameters stored on a model object, a global "
                "RNG reseeded inside); use backend='serial'."
            )

    def evaluate_complex(self, indices, steps):
        """Complex-step derivatives, evaluated in one thread (method='complex' is about
        accuracy; its one evaluation per component is already half the cost)."""
        x = self.problem.theta.astype(np.complex128)
        out = complex_step_values(self.problem, x, self.problem.make_call(x), indices, steps)
        self.evaluations += indices.shape[0]
        return out
