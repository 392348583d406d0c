"""The course network (numpy, dict params) checked by the classic loop and by fastcheck.

Shared by ``bench/test_bench_course.py`` (pytest-benchmark groups) and by this module's
``main``, which prints the table of ``docs/processes.md``: for each size, medians over
interleaved rounds of the classic loop, ``fc.check`` on ``serial``, on ``processes`` and
with every default (``auto``), next to ``t_fwd`` (one cost evaluation, one BLAS thread)
and the multicore limit ``2 n t_fwd / cores``.

Run: ``PYTHONPATH=. python bench/course_bench.py [--sizes S,M,L] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import fastcheck as fc
from fastcheck import _plan
from fastcheck._blas import single_threaded_blas
from fastcheck.backends.processes import default_workers
from fastcheck.models import course

#: Components checked per size (None: all); L is sampled, as ``fastcheck bench`` does.
SAMPLE = {"S": None, "M": None, "L": 4000}
#: Methods, in the order of the table.
METHODS = ("classic-loop", "serial", "processes", "auto")


def indices_of(problem: course.CourseProblem) -> np.ndarray | None:
    """The flat components checked at this size (None: every one)."""
    sample = SAMPLE[problem.size]
    if sample is None:
        return None
    layout = fc.Layout({k: v.shape for k, v in problem.params.items()})
    return _plan.choose_components(layout, sample, 0).indices


def run(method: str, problem: course.CourseProblem, indices):
    """One check of ``problem`` by ``method`` (the result, to be asserted on)."""
    if method == "classic-loop":
        return course.classic_loop(course.cost, problem.params, problem.args, indices)
    sample = None if indices is None else indices.shape[0]
    return fc.check(course.cost, course.backward, problem.params, problem.args,
                    sample=sample, seed=0, backend=method)


def forward_seconds(problem: course.CourseProblem, target: float = 0.2) -> float:
    """Seconds of one cost evaluation as fastcheck makes it (a dict of views of theta),
    one BLAS thread (as in a worker); the median of five batches."""
    layout = fc.Layout({k: v.shape for k, v in problem.params.items()})
    views = layout.unflatten(layout.flatten(problem.params))
    with single_threaded_blas():
        n, took = 1, 0.0
        while took < target / 5:
            n *= 2
            t0 = time.perf_counter()
            for _ in range(n):
                course.cost(dict(views), *problem.args)
            took = time.perf_counter() - t0
        batches = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                course.cost(dict(views), *problem.args)
            batches.append((time.perf_counter() - t0) / n)
    return statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S,M,L")
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    cores = default_workers()
    print(f"cores: {cores}, rounds: {opts.rounds} (interleaved), medians")
    print("| size | N | checked | t_fwd | limit 2n.t_fwd/cores | classic loop | serial | "
          "processes | auto (backend) | auto vs classic | auto % of limit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in opts.sizes.split(","):
        problem = course.make_course(size)
        indices = indices_of(problem)
        n = problem.n_params if indices is None else indices.shape[0]
        t_fwd = forward_seconds(problem)
        limit = 2 * n * t_fwd / cores
        times: dict[str, list[float]] = {m: [] for m in METHODS}
        backend = ""
        for _ in range(opts.rounds):
            for method in METHODS:
                t0 = time.perf_counter()
                out = run(method, problem, indices)
                times[method].append(time.perf_counter() - t0)
                if method == "auto":
                    backend = out.backend
        med = {m: statistics.median(v) for m, v in times.items()}
        print(f"| {size} | {problem.n_params:,} | {n:,} | {t_fwd * 1e6:.0f} us | "
              f"{limit:.3g} s | {med['classic-loop']:.3g} s | {med['serial']:.3g} s | "
              f"{med['processes']:.3g} s | {med['auto']:.3g} s ({backend}) | "
              f"{med['classic-loop'] / med['auto']:.2f}x | {limit / med['auto']:.0%} |",
              flush=True)
    print(f"(load average at the end: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
