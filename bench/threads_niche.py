"""Where the threads backend can win: costs that release the GIL for most of their time.

Three costs, each checked on ``serial``, ``threads`` and ``processes`` (2 workers), the
same components, medians over interleaved rounds (a run while other processes kept the
cores busy is repeated, up to 3 times; the table counts the quiet ones):

- ``course-M``: the course network (many small numpy calls; the GIL is held between them);
- ``big-blas``: one large matrix product per evaluation (BLAS releases the GIL), BLAS at
  one thread so that the backends, not BLAS, provide the parallelism;
- ``njit-nogil``: an ``@njit(nogil=True)`` function called from a Python cost.

Run: ``PYTHONPATH=. python bench/threads_niche.py [--rounds 3]`` (``docs/processes.md``
quotes one run).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

import fastcheck as fc
from bench.course_bench import QUIET_CORES, RETRIES, OtherLoad
from fastcheck._blas import single_threaded_blas
from fastcheck.models import course

BACKENDS = ("serial", "threads", "processes")


def _course_case():
    p = course.make_course("M")
    return course.cost, course.backward, p.params, p.args, None  # all 6,570: ~0.7 s


def _blas_case(n: int = 300):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    B = rng.standard_normal((n, n)) / np.sqrt(n)

    def cost(theta):
        w = theta[:n]
        M = (A * w) @ B  # one n x n x n product: the GIL is released inside BLAS
        return float(np.sum(M * M))

    def grad(theta):
        w = theta[:n]
        M = (A * w) @ B
        return np.sum(A * (2 * M @ B.T), axis=0)

    return cost, grad, rng.standard_normal(n), (), None  # all 300: ~0.7 s


@numba.njit(nogil=True, cache=True)
def _heavy(x, repeat):
    s = 0.0
    for r in range(1, repeat):
        for i in range(x.shape[0]):
            s += x[i] * x[i] / (r * r)
    return s


def _nogil_case(repeat: int = 3000):
    c = sum(1.0 / (r * r) for r in range(1, repeat))

    def cost(theta):
        return float(_heavy(theta, repeat))

    def grad(theta):
        return 2 * c * theta

    return cost, grad, np.linspace(-1, 1, 300), (), None  # all 300: ~0.5 s


CASES = {"course-M": _course_case, "big-blas": _blas_case, "njit-nogil": _nogil_case}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    print("| cost | components | serial | threads | processes | threads vs serial | "
          "processes vs serial | quiet runs |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make in CASES.items():
        cost, grad, params, args, sample = make()
        times: dict[str, list[float]] = {b: [] for b in BACKENDS}
        quiet = 0
        with single_threaded_blas():
            fc.check(cost, grad, params, args, sample=10, seed=0)  # compile, warm up
            for _ in range(opts.rounds):
                for backend in BACKENDS:
                    for _attempt in range(1 + RETRIES):  # a noisy run is repeated
                        with OtherLoad() as load:
                            t0 = time.perf_counter()
                            report = fc.check(cost, grad, params, args, sample=sample,
                                              seed=0, backend=backend, threads=2)
                            took = time.perf_counter() - t0
                        if load.cores is None or load.cores < QUIET_CORES:
                            break
                    times[backend].append(took)
                    quiet += load.cores is None or load.cores < QUIET_CORES
                    assert report.passed, (name, backend, report.summary())
        med = {b: statistics.median(v) for b, v in times.items()}
        n = sample or sum(np.size(v) for v in (params.values() if isinstance(params, dict)
                                               else [params]))
        print(f"| {name} | {n:,} | {med['serial']:.3g} s | {med['threads']:.3g} s | "
              f"{med['processes']:.3g} s | {med['serial'] / med['threads']:.2f}x | "
              f"{med['serial'] / med['processes']:.2f}x | {quiet}/{len(BACKENDS) * opts.rounds} |",
              flush=True)


if __name__ == "__main__":
    main()
