"""Where a warm check of the S network spends its time, phase by phase, in one process.

Wraps the phases of ``fc.check`` (preparation, plan, backend set-up, the kernel, the driver
around it, the report) with timers, runs warm checks of the built-in S network back to
back and prints the median of each. The wrappers add about a microsecond per phase.

Run from the repository root::

    PYTHONPATH=. python bench/small_split.py --calls 400
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time

import fastcheck as fc
from fastcheck import _driver, _plan
from fastcheck.backends import numba_backend
from fastcheck.models import make_mlp

check_module = sys.modules["fastcheck.check"]  # fc.check the function hides the module


def _timed(owner, name: str, label: str, seconds: dict) -> None:
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            seconds[label].append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    opts = parser.parse_args(argv)
    p = make_mlp("S")
    seconds: dict[str, list[float]] = collections.defaultdict(list)
    for owner, name, label in (
            (check_module, "prepare", "prepare (cost twice, grad once at theta)"),
            (_plan, "choose_components", "plan: components"),
            (check_module, "_targets", "plan: points and steps"),
            (check_module, "create_backend", "backend: create"),
            (numba_backend.NumbaBackend, "__enter__", "backend: enter"),
            (numba_backend.NumbaBackend, "close", "backend: close"),
            (numba_backend.NumbaBackend, "_kernel", "the kernel (one launch)"),
            (_driver, "run", "driver (kernel included)"),
            (check_module, "_build_report", "report")):
        _timed(owner, name, label, seconds)
    for _ in range(50):  # warm: caches, the kernel loaded
        fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout)
    seconds.clear()
    total = []
    for _ in range(opts.calls):
        start = time.perf_counter()
        fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout)
        total.append(time.perf_counter() - start)
    print(f"warm fc.check of S, {opts.calls} calls back to back, medians (microseconds):")
    print(f"  {'the whole call':45s} {statistics.median(total) * 1e6:8.1f}")
    for label, values in seconds.items():
        print(f"  {label:45s} {statistics.median(values) * 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
