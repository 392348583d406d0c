"""The course network (numpy, dict params) checked by the classic loop and by fastcheck.

Shared by ``bench/test_bench_course.py`` (pytest-benchmark groups) and by this module's
``main``, which prints the table of ``docs/processes.md``: for each size, medians over
interleaved rounds of the classic loop, ``fc.check`` on ``serial``, on ``processes`` and
with every default (``auto``), next to ``t_fwd`` (one cost evaluation, one BLAS thread)
and the multicore limit ``2 n t_fwd / cores``. A run during which other processes kept
``QUIET_CORES`` busy is repeated; the table says how many runs were quiet. The CPU
seconds of each method (this process and its workers) are printed too: unlike wall
time, they do not depend on how busy the machine is.

Run: ``PYTHONPATH=. python bench/course_bench.py [--sizes S,M,L] [--rounds 5]``;
``--warmup --sizes M`` measures instead what a forked worker's first slice costs, with
BLAS set to one thread as now and through threadpoolctl as before (Linux).
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
from fastcheck.cli.bench import OtherLoad  # cores other processes used meanwhile
from fastcheck.models import course

#: Other processes must use less than this many cores while a run is timed, or the run
#: is repeated (up to ``RETRIES`` times; medians of the noisy runs when none was quiet).
QUIET_CORES = 0.25
RETRIES = 3


def _own() -> float:
    t = os.times()  # the workers' time counts once they are reaped, at the pool's shutdown
    return t.user + t.system + t.children_user + t.children_system

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
    one BLAS thread (as in a worker); the fastest of five batches (the least disturbed
    by other processes: the limit must not be inflated by a busy machine)."""
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
    return min(batches)


def worker_warmup(size: str, rounds: int) -> None:
    """Print what a forked worker's first slice costs beyond its evaluations.

    Every slice a worker evaluates is timed inside the worker: the CPU of the whole worker
    process (all its threads) and of its main thread, which runs the cost, and the threads
    it has. Two ways to get BLAS at one thread in the workers, interleaved: what the
    backend does (``process_worker._one_blas_thread_after_fork``) and threadpoolctl's limit,
    what it did before (``openblas_set_num_threads`` in a forked child restarts OpenBLAS's
    thread pool).
    """
    import json
    import tempfile

    from fastcheck.backends import process_worker

    problem = course.make_course(size)
    original_values, original_install = process_worker.serial_values, process_worker._install
    log = tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False)  # noqa: SIM115

    def timed_values(*a, **k):  # runs in the worker: it is inherited by the fork
        p0, t0 = time.process_time(), time.thread_time()
        out = original_values(*a, **k)
        p1, t1 = time.process_time(), time.thread_time()
        with open(log.name, "a") as fh:
            fh.write(json.dumps([os.getpid(), int(a[3].shape[0]), p1 - p0, t1 - t0,
                                 len(os.listdir("/proc/self/task"))]) + "\n")
        return out

    modes = {"blas_cpu_number set (now)": original_install,
             "threadpoolctl limit (before)":
                 lambda key, prob, forked=False: original_install(key, prob)}
    rows: dict[str, list] = {m: [] for m in modes}
    process_worker.serial_values = timed_values
    try:
        for _ in range(rounds):
            for mode, install in modes.items():
                process_worker._install = install
                open(log.name, "w").close()
                t0 = time.perf_counter()
                fc.check(course.cost, course.backward, problem.params, problem.args,
                         seed=0, backend="processes")
                wall = time.perf_counter() - t0
                with open(log.name) as fh:
                    slices = [json.loads(line) for line in fh]
                first: dict[int, tuple] = {}
                steady = []
                for pid, n, proc, main, threads in slices:
                    if pid in first:
                        steady.append((proc, n))
                    else:
                        first[pid] = (n, proc, main, threads)
                per_eval = sum(p for p, _ in steady) / max(1, 2 * sum(n for _, n in steady))
                extra = [proc - 2 * n * per_eval for n, proc, _m, _t in first.values()]
                others = [proc - main for _n, proc, main, _t in first.values()]
                rows[mode].append((wall, statistics.median(extra),
                                   statistics.median(others),
                                   max(t for *_x, t in first.values()),
                                   sum(p for _i, _n, p, _m, _t in slices)))
    finally:
        process_worker.serial_values, process_worker._install = original_values, original_install
        os.unlink(log.name)
    print(f"{size}: a forked worker's first slice, medians of {rounds} interleaved checks "
          "(backend='processes', 2 workers)")
    print("| BLAS at one thread in the workers | check | first slice: CPU beyond its "
          "evaluations | of which in other threads | threads per worker | workers' CPU |")
    print("|---|---|---|---|---|---|")
    for mode, values in rows.items():
        wall, extra, others, threads, cpu = (statistics.median(v) for v in zip(*values))
        print(f"| {mode} | {wall:.3f} s | {extra * 1e3:.1f} ms | {max(others, 0.0) * 1e3:.1f} ms | "
              f"{threads:.0f} | {cpu:.3f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S,M,L")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", action="store_true",
                        help="measure the forked workers' warm-up instead (first size)")
    opts = parser.parse_args()
    if opts.warmup:
        worker_warmup(opts.sizes.split(",")[0], opts.rounds)
        return
    cores = default_workers()
    print(f"cores: {cores}, rounds: {opts.rounds} (interleaved), medians")
    print("| size | N | checked | t_fwd | limit 2n.t_fwd/cores | classic loop | serial | "
          "processes | auto (backend) | auto vs classic | auto % of limit | rounds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in opts.sizes.split(","):
        problem = course.make_course(size)
        indices = indices_of(problem)
        n = problem.n_params if indices is None else indices.shape[0]
        for _attempt in range(1 + RETRIES):
            with OtherLoad() as load:
                t_fwd = forward_seconds(problem)
            if load.cores is None or load.cores < QUIET_CORES:
                break
        limit = 2 * n * t_fwd / cores
        times: dict[str, list[float]] = {m: [] for m in METHODS}
        cpu: dict[str, list[float]] = {m: [] for m in METHODS}
        noisy: dict[str, list[float]] = {m: [] for m in METHODS}
        others: list[float] = []
        backend = ""
        for _ in range(opts.rounds):
            for method in METHODS:
                for _attempt in range(1 + RETRIES):  # a noisy run is repeated
                    with OtherLoad() as load:
                        t0, c0 = time.perf_counter(), _own()
                        out = run(method, problem, indices)
                        took = time.perf_counter() - t0
                    cpu[method].append(_own() - c0)
                    others.append(load.cores if load.cores is not None else 0.0)
                    if load.cores is None or load.cores < QUIET_CORES:
                        times[method].append(took)
                        break
                    noisy[method].append(took)
                if method == "auto":
                    backend = out.backend
        quiet = min(len(v) for v in times.values())
        med = {m: statistics.median(times[m] if quiet else noisy[m]) for m in METHODS}
        print(f"| {size} | {problem.n_params:,} | {n:,} | {t_fwd * 1e6:.0f} us | "
              f"{limit:.3g} s | {med['classic-loop']:.3g} s | {med['serial']:.3g} s | "
              f"{med['processes']:.3g} s | {med['auto']:.3g} s ({backend}) | "
              f"{med['classic-loop'] / med['auto']:.2f}x | {limit / med['auto']:.0%} |"
              f" {'quiet' if quiet else 'NOISY'}: {min(len(v) for v in times.values())} "
              f"quiet runs per method, other load median {statistics.median(others):.2f} "
              "cores", flush=True)
        print("    CPU seconds (this process and its workers), medians: " + ", ".join(
            f"{m} {statistics.median(cpu[m]):.3g}" for m in METHODS), flush=True)
    print(f"(load average at the end: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
