"""Worker start-up of the process pools the ``processes`` backend could use.

For each candidate: the seconds from creating a pool of ``--workers`` workers until every
worker has returned a first task that imports fastcheck (what a worker of the backend
needs before its first evaluation), then the seconds to shut the pool down. The parent
has numpy and fastcheck imported, as a user's process has. Rounds are interleaved over
the candidates; medians are printed.

Run: ``PYTHONPATH=. python bench/pool_startup.py [--rounds 5] [--workers 2]``
(``docs/processes.md`` quotes one run).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import statistics
import time

import fastcheck  # noqa: F401  (the parent is a user's process: numpy, numba, fastcheck loaded)

#: Each task sleeps this long so that the tasks spread over the workers.
HOLD = 0.05


def _ready(hold: float) -> int:
    """A worker's first task: what the backend imports, then the pid."""
    import fastcheck.backends  # noqa: F401

    time.sleep(hold)
    return os.getpid()


def _time_pool(make, shutdown) -> tuple[float, float]:
    t0 = time.perf_counter()
    pool = make()
    pids: set[int] = set()
    for _ in range(100):  # pools that start workers on demand: until each has answered
        pids |= {f.result() for f in [pool.submit(_ready, HOLD) for _ in range(WORKERS)]}
        if len(pids) == WORKERS:
            break
    started = time.perf_counter() - t0 - HOLD
    if len(pids) != WORKERS:
        raise RuntimeError(f"expected {WORKERS} workers, got {len(pids)}")
    t1 = time.perf_counter()
    shutdown(pool)
    return started, time.perf_counter() - t1


def _cf(method):
    return (lambda: cf.ProcessPoolExecutor(WORKERS, mp_context=mp.get_context(method)),
            lambda pool: pool.shutdown(wait=True))


def _loky(context, reuse=False):
    import loky

    if reuse:
        return (lambda: loky.get_reusable_executor(WORKERS, context=context, timeout=300),
                lambda pool: None)
    from loky.backend import get_context

    return (lambda: loky.ProcessPoolExecutor(WORKERS, context=get_context(context)),
            lambda pool: pool.shutdown(wait=True, kill_workers=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    global WORKERS
    WORKERS = opts.workers
    candidates = {
        "concurrent.futures fork": _cf("fork"),
        "concurrent.futures forkserver": _cf("forkserver"),
        "concurrent.futures spawn": _cf("spawn"),
        "loky fork (new pool)": _loky("fork"),
        "loky 'loky' (new pool)": _loky("loky"),
        "loky reusable, reused": _loky("loky", reuse=True),
    }
    _time_pool(*candidates["loky reusable, reused"])  # its first (cold) start, not timed
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in candidates}
    for _ in range(opts.rounds):
        for name, (make, shutdown) in candidates.items():
            times[name].append(_time_pool(make, shutdown))
    print(f"{WORKERS} workers, {opts.rounds} rounds, medians (cores: {os.cpu_count()})")
    print(f"{'candidate':34s} {'start-up':>10s} {'shutdown':>10s}")
    for name, rows in times.items():
        up = statistics.median(r[0] for r in rows)
        down = statistics.median(r[1] for r in rows)
        print(f"{name:34s} {up * 1e3:8.1f}ms {down * 1e3:8.1f}ms")


WORKERS = 2

if __name__ == "__main__":
    main()
