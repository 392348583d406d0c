"""A small check on a busy machine: what the threads of one kernel launch cost when
another process holds a core.

All threads of a numba launch wait for the slowest; a thread that loses its core to
another process for a scheduler time slice stalls the launch. The numba backend therefore
runs launches expected under ``CONTENDED_LAUNCH_SECONDS`` on one thread for a second after
one took ``CONTENDED_SLOWDOWN`` times its expected time (``backends/numba_backend.py``).
This script
times a warm ``fc.check`` of the built-in S network with ``threads=1``, ``threads=2`` and
the default, first on a quiet machine, then with one busy-looping process per core but
one (started here), calls back to back, interleaved.

Run from the repository root::

    PYTHONPATH=. python bench/contended.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import fastcheck as fc
from fastcheck.backends.numba_backend import max_threads
from fastcheck.models import make_mlp


def _spin(stop) -> None:
    while not stop.is_set():
        for _ in range(10_000):
            pass


def _times(model, rounds: int) -> dict[str, float]:
    cases = {"threads=1": 1, f"threads={max_threads()}": max_threads(), "default": None}
    out: dict[str, list[float]] = {k: [] for k in cases}
    used: dict[str, list[int]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, threads in cases.items():
            start = time.perf_counter()
            report = fc.check(model.cost, model.grad, model.theta, model.args,
                              layout=model.layout, threads=threads)
            out[name].append(time.perf_counter() - start)
            used[name].append(report.threads)
    return {f"{k} ({statistics.mode(used[k])} thread(s) used)": statistics.median(v)
            for k, v in out.items()}


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args(argv).rounds
    model = make_mlp("S")
    _times(model, 3)  # warm: compile or load the kernel
    print(f"warm fc.check of S, median of {rounds} back-to-back calls per case")
    print("load average before:", _loadavg())
    print("as it is:", {k: f"{v * 1e3:.2f} ms" for k, v in _times(model, rounds).items()})
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    stop = ctx.Event()
    hogs = [ctx.Process(target=_spin, args=(stop,), daemon=True)
            for _ in range(max(1, max_threads() - 1))]
    for hog in hogs:
        hog.start()
    try:
        time.sleep(0.2)
        print(f"{len(hogs)} busy process(es):",
              {k: f"{v * 1e3:.2f} ms" for k, v in _times(model, rounds).items()})
    finally:
        stop.set()
        for hog in hogs:
            hog.join()


if __name__ == "__main__":
    main()
