"""The first check of a cost compiles its parallel kernel in a forked child process.

On a machine that never ran a check, numba compiles three things one after the other
under its global compiler lock: the cost (~2 s, with numba's one-time set-up), its
gradient (~1.3 s) and the parallel kernel (~2 s, mostly LLVM re-optimising the cost
linked into it). In one process they use one core. When the kernel can be cached on disk
(an importable ``@njit`` cost, see ``_kernel_cache``), ``fc.check`` forks a child before
its first call of the cost: the child compiles the kernel, which numba writes to its disk
cache, while the parent compiles the cost and the gradient and evaluates serially as
before. When the child is done, the parent's compile thread (``_kernel_cache.
KernelCompile``) loads the kernel from the disk cache (~0.15 s) and the check continues in
parallel; a check done first waits for the child at its end, so that no process outlives
``fc.check`` and the next process starts warm.

Only when it can pay and is safe: Linux (``fork``), the numba backend, an importable
``@njit`` cost with a flat params vector, numba's JIT on, the kernel neither compiled in
this process nor in numba's disk cache for these argument types, a core that looks idle
(``_spare_core``), and not a TBB threading layer already running (numba's TBB layer joins
its workers in a fork handler of the parent, and warns when the fork is not made from the
main thread: numba PR #6208). Each cost is considered once per process
(``_considered``), so a warm check costs one dict look-up here. ``FASTCHECK_KERNEL_FORK``
turns it off (``0``) or on whenever the check qualifies (``1``).

The child only compiles: it never launches a parallel region. After a check with another
cost, the parent may already run GNU OpenMP threads; libgomp is not fork-safe, and
numba's ``omp`` layer terminates a forked child that starts a parallel region (numba's
docs, "The Threading Layers", Extra notes; the check sits in ``parallel_for``, so a
child that never runs a parallel region is not affected: PteraSoftware PR #287; the
``workqueue`` layer hangs a forked child that runs one: numba issue #7872). Compiling is
safe: lowering the kernel only looks the layer up (already initialised in the parent, or
initialised in the child itself), and numba's cross-process lock around that set-up is
replaced by a private one in the child, so that killing the child can never leave it
held. The child ignores SIGINT (the parent decides), writes nothing (its stdio goes to
``/dev/null``), runs nothing of the parent's ``atexit``, never raises into the parent and
ends with ``os._exit``; a watchdog alarm ends it if it ever hangs. A child that fails or
dies only means that the parent compiles the kernel itself, as it did before.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import numpy as np

from ._values import as_args

#: A child still compiling after this many seconds is stuck (e.g. a lock held at fork
#: time by another thread of the user's): its alarm ends it and the parent compiles.
WATCHDOG_SECONDS = 180
#: Environment switch: "0"/"false"/"no" never forks, "1"/"true"/"yes" forks whenever the
#: check qualifies, unset (or "auto") forks only when a core looks idle (``_spare_core``).
ENV_SWITCH = "FASTCHECK_KERNEL_FORK"

_AVAILABLE = sys.platform.startswith("linux") and hasattr(os, "fork")
_considered: dict[int, object] = {}  # id(cost) -> cost: decided once per process
_children: list[Child] = []  # forked by the checks running now, until reaped


class Child:
    """A forked process compiling ``kernel`` for ``types`` into numba's disk cache."""

    def __init__(self, pid: int, kernel: Any, types: tuple):
        self.pid, self.kernel, self.types = pid, kernel, types
        self.exit_code: int | None = None  # once reaped
        self._lock = threading.Lock()

    def _reap(self, block: bool) -> bool:
        """Collect the child's exit status (with the lock held); True once it ended."""
        if self.exit_code is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped by someone else (SIGCHLD ignored)
                pid, status = self.pid, -1
            if pid:
                self.exit_code = (os.waitstatus_to_exitcode(status) if status >= 0
                                  else -1)
        return self.exit_code is not None

    def wait(self) -> bool:
        """Block until the child has ended; True when it compiled the kernel."""
        with self._lock:
            self._reap(block=True)
        return self.exit_code == 0

    def kill(self) -> None:
        """End the child now (if it still runs) and reap it."""
        with self._lock:
            if not self._reap(block=False):
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:  # pragma: no cover - ended meanwhile
                    pass
                self._reap(block=True)


def _setting() -> str:
    """``"off"``, ``"on"`` or ``"auto"`` (see ``ENV_SWITCH``)."""
    value = os.environ.get(ENV_SWITCH, "auto").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    return "on" if value in ("1", "true", "yes", "on") else "auto"


def _spare_core() -> bool:
    """Does a core look idle for the child? The child's work only overlaps the parent's
    on a core of its own: it also compiles the cost again (and numba's set-up), ~2 s of
    CPU more than compiling in process, so on a busy machine it made the first run
    slower (12.2 s instead of 8.3 s at a load average of 2.8 on 2 cores).

    Nothing else runnable right now besides this thread (``/proc/loadavg``'s running
    tasks) and a 1-minute load average below ``cpus - 0.5``.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
        with open("/proc/loadavg") as fh:
            fields = fh.read().split()
        load, running = float(fields[0]), int(fields[3].split("/")[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return False
    return running - 1 <= cpus - 2 and load <= cpus - 0.5


def _call_types(params: np.ndarray, args: Any) -> tuple:
    """numba types of the kernel's call ``(theta, indices, x_plus, x_minus, n_chunks,
    args)`` as the numba backend will make it (see ``NumbaBackend._kernel_args``)."""
    import numba

    args = as_args(args)
    vector = numba.typeof(np.zeros(1))  # theta is always a private float64 C copy
    return (vector, numba.typeof(np.zeros(1, dtype=np.int64)), vector, vector,
            numba.typeof(1), numba.typeof(args))


def _in_disk_cache(kernel: Any, types: tuple) -> bool:
    """Is the kernel in numba's disk cache for ``types``? When numba's cache internals
    cannot tell, True (do not fork: the compile thread finds out as before)."""
    from ._kernel_cache import on_disk

    return on_disk(kernel, types, unknown=True)


def _tbb_running() -> bool:
    from numba.np.ufunc import parallel

    return bool(getattr(parallel, "_is_initialized", False)) \
        and getattr(parallel, "_threading_layer", None) == "tbb"


def start(cost: Any, grad: Any, params: Any, args: Any, backend: str,
          mode: str) -> Child | None:
    """Fork a child compiling the kernel of this check when that pays (see the module
    docstring); None otherwise. Called by ``fc.check`` before the first call of the cost.
    """
    if not _AVAILABLE or _considered.get(id(cost)) is cost:  # warm: decided already
        return None
    if backend not in ("auto", "numba") or mode != "full" or grad is True \
            or not isinstance(params, np.ndarray) or params.ndim != 1 \
            or "numba" not in sys.modules:  # (no numba loaded: nothing can be jitted)
        return None
    from numba.core.registry import CPUDispatcher

    if not isinstance(cost, CPUDispatcher):
        return None
    if len(_considered) < 10_000:  # whatever is decided below holds for this process
        _considered[id(cost)] = cost
    setting = _setting()
    if setting == "off":
        return None
    from ._kernel_cache import cached_kernel

    kernel = cached_kernel(cost)
    if kernel is None or not hasattr(kernel, "overloads"):
        return None
    try:
        types = _call_types(params, args)
    except Exception:  # an argument numba cannot type: the check will say so
        return None
    if types in kernel.overloads or _in_disk_cache(kernel, types) or _tbb_running() \
            or (setting == "auto" and not _spare_core()):
        return None
    return _fork(kernel, types)


def _fork(kernel: Any, types: tuple) -> Child | None:
    """Fork the child, holding numba's compiler lock so that no other thread of this
    process is inside numba's compiler (the child could never take the lock again)."""
    import warnings

    from numba.core.compiler_lock import global_compiler_lock

    global_compiler_lock.acquire()
    try:
        with warnings.catch_warnings():  # Python 3.12 warns of fork with threads running
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
            _child(kernel, types, global_compiler_lock)
    except OSError:  # no fork today (process limit): compile in process as before
        return None
    finally:
        global_compiler_lock.release()
    child = Child(pid, kernel, types)
    _children.append(child)
    return child


def _child(kernel: Any, types: tuple, lock: Any) -> None:  # pragma: no cover - child
    """The child's whole life: compile the kernel (numba caches it on disk), then exit."""
    code = 1
    try:
        lock.release()  # held by this very thread, forked with it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(WATCHDOG_SECONDS)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        # numba guards its threading layer's set-up with a lock shared by forked
        # processes; the parent could hang on it if this child were killed holding it.
        from numba.np.ufunc import parallel

        if hasattr(parallel, "_backend_init_process_lock"):
            parallel._backend_init_process_lock = threading.RLock()
        kernel.compile(types)
        code = 0
    except BaseException:  # nothing of the child may reach the parent
        pass
    finally:
        os._exit(code)


def claim(kernel: Any, types: tuple) -> Child | None:
    """The child compiling ``kernel`` for ``types``, for the compile thread to wait on.

    A child compiling the kernel for other types (a wrong prediction) is of no use to
    this check: it is ended here.
    """
    for child in _children:
        if child.kernel is kernel:
            _children.remove(child)
            if child.types == types:
                return child
            child.kill()
    return None


def reap(failed: bool) -> None:
    """End of ``fc.check``: no child outlives it. Wait for a child no backend claimed
    (so that the next process finds the kernel), or kill it when the check failed."""
    while _children:
        child = _children.pop()
        if failed:
            child.kill()
        else:
            child.wait()


class reaping:
    """``with reaping(cost, grad, params, args, backend, mode):`` around the work of
    ``fc.check``: forks a child when that pays (``start``), and at the end reaps it
    (waits for it, or kills it when the check raised): no child outlives ``fc.check``."""

    def __init__(self, cost: Any, grad: Any, params: Any, args: Any, backend: str,
                 mode: str):
        self.forked = start(cost, grad, params, args, backend, mode) is not None

    def __enter__(self) -> reaping:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.forked:
            reap(failed=exc_type is not None)
