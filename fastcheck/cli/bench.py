"""``fastcheck bench``: how fast fastcheck checks the built-in network on this machine.

Everything is measured in one process, interleaved over several rounds, and summarised
by medians (machines are noisy; ratios within one run are what to compare):

- the physical limit: the bare ``@njit`` cost called 2n times in an ``@njit`` loop (one
  BLAS thread), divided by the number of threads — no checker can beat it;
- ``fc.check`` on the numba backend with one thread and with all threads (warm: the
  kernel was compiled or loaded by an earlier check, whose time is reported apart);
- the baseline: the same network as a course student writes it (``fastcheck.models.course``:
  dict params, numpy forward, hand backward) checked by the course's ``gradient_check_n``
  loop (``course.classic_loop``: dict to vector, perturb one component, vector back to a
  dict, step 1e-7), and fastcheck's serial and threads backends on that same numpy cost.
  The printed speed-up is over this loop. On a large network these are timed on a random
  subset of components and scaled to the whole check (marked "extrapolated").
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .common import EXIT_PASS, positive_int, sub_parser

#: Components timed for the slow (Python) methods before extrapolating.
SLOW_SUBSET = 400
#: What ``fastcheck bench``'s classic loop runs: this module's ``classic_loop`` over the
#: network of that module (``fastcheck.models.course``, the plainest numpy code).
BASELINE = "fastcheck.models.course"
#: Default ``sample`` per size (None: every component).
DEFAULT_SAMPLE = {"S": None, "M": None, "L": 4000}


def classic_loop(cost: Callable[..., float], theta: np.ndarray, args: tuple = (),
                 indices: Sequence[int] | None = None, eps: float = 1e-7) -> np.ndarray:
    """A ``gradient_check_n``-style loop on a flat-vector cost, one component at a time.

    Kept for ``bench/peers.py`` (the pytest-benchmark groups on the built-in flat model).
    ``fastcheck bench`` itself times ``fastcheck.models.course.classic_loop`` on the
    course's dict-parameter numpy network (see ``BASELINE``).

    Parameters
    ----------
    cost : callable
        ``cost(theta, *args) -> float``.
    theta : numpy.ndarray
        Flat parameters (not modified).
    args : tuple
        Extra arguments of ``cost``.
    indices : sequence of int, optional
        Components to differentiate (default: all).
    eps : float
        The fixed step of the course (1e-7).

    Returns
    -------
    numpy.ndarray
        The numeric gradient at ``indices``.
    """
    idx = range(theta.shape[0]) if indices is None else indices
    out = np.zeros(len(idx))
    for k, i in enumerate(idx):
        theta_plus = np.copy(theta)
        theta_plus[i] += eps
        j_plus = cost(theta_plus, *args)
        theta_minus = np.copy(theta)
        theta_minus[i] -= eps
        j_minus = cost(theta_minus, *args)
        out[k] = (j_plus - j_minus) / (2 * eps)
    return out


@functools.cache
def repeat_cost():
    """An ``@njit`` loop calling ``cost`` n times at one point (compiled on first use)."""
    from numba import njit

    @njit
    def repeat(cost, x, args, n):
        total = 0.0
        for _ in range(n):
            total += cost(x, *args)
        return total

    return repeat


def forward_seconds(cost, theta: np.ndarray, args: tuple, *, target: float = 0.05) -> float:
    """Seconds of one evaluation of the jitted ``cost``, with one BLAS thread (one round)."""
    from .._blas import single_threaded_blas

    repeat = repeat_cost()
    x = theta.copy()
    with single_threaded_blas():
        repeat(cost, x, args, 1)
        n = 1
        while True:
            start = time.perf_counter()
            repeat(cost, x, args, n)
            took = time.perf_counter() - start
            if took >= target or n >= 1 << 20:
                return took / n
            n = max(2 * n, int(n * target / max(took, 1e-9)) + 1)


@dataclass
class BenchResult:
    """Medians of one ``fastcheck bench`` run (seconds unless said otherwise)."""

    size: str
    n_params: int
    n_checked: int
    threads: int
    rounds: int
    noisy_rounds: int
    other_cores: float
    evaluations: int
    t_forward: float
    limit: float
    numba_all: float
    numba_one: float
    classic: float
    serial: float
    threads_backend: float
    slow_extrapolated: bool
    first_check: float
    compile_seconds: float
    kernel: str
    baseline: str = BASELINE
    samples: dict = field(default_factory=dict)

    def _ratio(self, num: str, den: str, factor: float = 1.0) -> float:
        """Median over rounds of ``num / den`` (each round's pair ran back to back)."""
        a, b = self.samples.get(num), self.samples.get(den)
        if not a or not b:
            return factor * getattr(self, num) / getattr(self, den)
        return float(np.median(factor * np.asarray(a) / np.asarray(b)))

    @property
    def fraction_of_limit(self) -> float:
        """limit / fastcheck time with all threads (1.0 = at the limit)."""
        return self._ratio("t_forward", "numba_all", 2 * self.n_checked / self.threads)

    @property
    def parallel_efficiency(self) -> float:
        """threads=1 time / all-threads time (ideal: the number of threads)."""
        return self._ratio("numba_one", "numba_all")

    @property
    def speedup_over_classic(self) -> float:
        """Classic loop time / fastcheck time with all threads."""
        return self._ratio("classic", "numba_all")

    def to_dict(self) -> dict:
        """A JSON-serialisable dict, derived ratios included."""
        out = asdict(self)
        out.update(fraction_of_limit=self.fraction_of_limit,
                   parallel_efficiency=self.parallel_efficiency,
                   speedup_over_classic=self.speedup_over_classic,
                   evaluations_per_second=self.evaluations / self.numba_all)
        return out

    def summary(self) -> str:
        """The human-readable table."""
        ev = self.evaluations
        what = "all" if self.n_checked == self.n_params else f"a sample of {self.n_checked:,}"
        ext = " (extrapolated)" if self.slow_extrapolated else ""
        rows = [
            ("physical limit (njit forward x 2n / threads)", self.limit),
            (f"fastcheck numba, {self.threads} threads", self.numba_all),
            ("fastcheck numba, 1 thread", self.numba_one),
            (f"fastcheck threads backend, course numpy net{ext}", self.threads_backend),
            (f"fastcheck serial backend, course numpy net{ext}", self.serial),
            (f"classic course loop, numpy, eps 1e-7{ext}", self.classic),
        ]
        lines = [
            f"fastcheck bench: MLP {self.size}, N = {self.n_params:,}, checking {what} "
            f"components ({ev:,} cost evaluations), medians of {self.rounds} rounds",
            self._noise_line(),
            f"t_forward = {self.t_forward * 1e6:.1f} us (one BLAS thread); "
            f"baseline: {self.baseline} (dict params, numpy, hand backward)",
            "",
            f"  {'method':<60} {'seconds':>9} {'evals/s':>11} {'vs limit':>9}",
        ]
        for name, sec in rows:
            lines.append(f"  {name:<60} {sec:9.3f} {ev / sec:11,.0f} {self.limit / sec:8.1%}")
        lines += [
            "",
            f"fraction of the physical limit: {self.fraction_of_limit:.1%}",
            f"speed-up over the classic loop: {self.speedup_over_classic:.1f}x",
            f"parallel efficiency ({self.threads} threads vs 1): "
            f"{self.parallel_efficiency:.2f}x",
            f"compile: {self.compile_seconds:.2f} s (kernel {self.kernel}); first check in "
            f"this process {self.first_check:.2f} s in total",
        ]
        return "\n".join(lines)

    def _noise_line(self) -> str:
        if self.rounds == 0 or self.noisy_rounds and self.rounds == self.noisy_rounds:
            return (f"WARNING: other processes kept ~{self.other_cores:.1f} cores busy in every "
                    "round; these numbers are not the machine's")
        extra = f", {self.noisy_rounds} busy round(s) discarded" if self.noisy_rounds else ""
        return f"quiet rounds only (other processes < {QUIET_CORES} cores{extra})"


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class OtherLoad:
    """CPU time that *other* processes used while a block ran, in cores (Linux only).

    From /proc/stat (all busy time) minus this process's own CPU time and that of its
    reaped children (worker processes count once a pool has shut down); None elsewhere.
    A round of a benchmark on a shared machine is only trusted when this stays small.
    """

    def __enter__(self):
        self._start = (self._busy(), _own_cpu(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy, own, wall = self._busy(), _own_cpu(), time.perf_counter()
        self.cores = None
        if busy is not None and self._start[0] is not None:
            others = (busy - self._start[0]) - (own - self._start[1])
            self.cores = max(0.0, others / max(wall - self._start[2], 1e-9))

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / _CLOCK_TICKS


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


_CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
#: A round is "quiet" when other processes used less than this many cores meanwhile.
QUIET_CORES = 0.25


def run_bench(size: str = "M", *, sample: int | None | str = "default", rounds: int = 3,
              threads: int | None = None, seed: int = 0) -> BenchResult:
    """Measure fastcheck on the built-in MLP ``size`` (see the module docstring).

    Rounds are interleaved (limit, all threads, one thread, the Python methods); a round
    during which other processes kept more than ``QUIET_CORES`` cores busy is repeated,
    up to three extra attempts per round, and the medians are taken over the quiet rounds
    (over all rounds, and said so, if none was quiet).

    Parameters
    ----------
    size : {"S", "M", "L"}
        The network.
    sample : int, None or "default"
        Components to check (None: all; "default": ``DEFAULT_SAMPLE[size]``).
    rounds : int
        Quiet rounds wanted; medians are reported.
    threads : int or None
        Threads of the parallel runs (None: all numba threads).
    seed : int
        Seed of the network and of the sample.

    Returns
    -------
    BenchResult
    """
    import fastcheck as fc

    from .._kernel_cache import cached_kernel
    from ..backends.numba_backend import max_threads
    from ..models import course, make_mlp

    if sample == "default":
        sample = DEFAULT_SAMPLE.get(size)
    model = make_mlp(size, seed=seed)
    plain = course.make_course(size, seed=seed)  # the same network, as a course writes it
    nthreads = min(threads or max_threads(), max_threads())

    def check(n_threads):
        return fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                        sample=sample, seed=seed, backend="numba", threads=n_threads)

    start = time.perf_counter()
    first = check(nthreads)
    first_total = time.perf_counter() - start
    indices = first.indices
    n = int(indices.shape[0])
    kernel = cached_kernel(model.cost)
    if kernel is None:
        how = "compiled in this process: the disk cache is off or the cost is not importable"
    elif sum(kernel.stats.cache_hits.values()):
        how = "loaded from the disk cache"
    else:
        how = "compiled and saved to the disk cache"

    slow_idx = indices
    if n > SLOW_SUBSET:
        rng = np.random.default_rng(seed)
        slow_idx = np.sort(rng.choice(indices, size=SLOW_SUBSET, replace=False))
    scale = n / slow_idx.shape[0]
    slow_sample = None if slow_idx.shape[0] == model.theta.shape[0] else int(slow_idx.shape[0])

    def check_plain(backend):
        return fc.check(course.cost, course.backward, plain.params, plain.args,
                        sample=slow_sample, seed=seed, backend=backend, threads=nthreads)

    check_plain("serial")  # warm caches

    keys = ("t_forward", "numba_all", "numba_one", "classic", "serial", "threads_backend",
            "other_cores")
    quiet: dict[str, list[float]] = {k: [] for k in keys}
    noisy: dict[str, list[float]] = {k: [] for k in keys}
    wanted = max(1, rounds)
    for _ in range(4 * wanted):
        if len(quiet["numba_all"]) >= wanted:
            break
        row = {}
        with OtherLoad() as load:
            row["t_forward"] = forward_seconds(model.cost, model.theta, model.args)
            row["numba_all"] = _seconds(lambda: check(nthreads))
            row["numba_one"] = _seconds(lambda: check(1))
            row["t_forward"] = min(row["t_forward"], forward_seconds(
                model.cost, model.theta, model.args))
        row["classic"] = scale * _seconds(
            lambda: course.classic_loop(course.cost, plain.params, plain.args, slow_idx))
        for key, backend in (("serial", "serial"), ("threads_backend", "threads")):
            row[key] = scale * _seconds(functools.partial(check_plain, backend))
        row["other_cores"] = load.cores if load.cores is not None else 0.0
        target = quiet if row["other_cores"] < QUIET_CORES else noisy
        for k in keys:
            target[k].append(row[k])
    samples = quiet if quiet["numba_all"] else noisy
    med = {k: float(np.median(v)) for k, v in samples.items()}
    t_forward = med["t_forward"]
    return BenchResult(
        size=size, n_params=int(model.theta.shape[0]), n_checked=n, threads=nthreads,
        rounds=len(samples["numba_all"]), noisy_rounds=len(noisy["numba_all"]),
        other_cores=med["other_cores"], evaluations=2 * n, t_forward=t_forward,
        limit=2 * n * t_forward / nthreads, numba_all=med["numba_all"],
        numba_one=med["numba_one"], classic=med["classic"], serial=med["serial"],
        threads_backend=med["threads_backend"], slow_extrapolated=scale > 1,
        first_check=first_total, compile_seconds=float(first.compile_seconds),
        kernel=how, samples=samples,
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``fastcheck`` parser's subparsers."""
    bench = sub_parser(
        subparsers, "bench",
        help="measure fastcheck on the built-in MLP against the physical limit",
        description="Time fastcheck on the built-in MLP on this machine: evaluations/s, "
                    "fraction of the physical limit (bare njit forward x 2n / threads), "
                    "speed-up over the classic course loop (the same network in plain numpy, "
                    "fastcheck.models.course), parallel efficiency, compile time.",
        epilog="examples:\n  fastcheck bench\n  fastcheck bench --size L\n"
               "  fastcheck bench --size L --sample all --rounds 1 --json",
    )
    bench.add_argument("--size", default="M", choices=["S", "M", "L"],
                       help="network size (default M)")
    bench.add_argument("--sample", default="default", metavar="N|all",
                       type=lambda t: t if t in ("all", "default") else positive_int(t),
                       help="components to check (default: all for S and M, 4000 for L)")
    bench.add_argument("--rounds", type=positive_int, default=3,
                       help="interleaved repetitions, medians reported (default 3)")
    bench.add_argument("--threads", type=positive_int, default=None, metavar="K",
                       help="threads of the parallel runs (default: all cores)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    return bench


def run(ns: argparse.Namespace) -> int:
    """``fastcheck bench``: time the built-in network and print the table."""
    sample = None if ns.sample == "all" else ns.sample
    result = run_bench(ns.size, sample=sample, rounds=ns.rounds, threads=ns.threads)
    print(json.dumps(result.to_dict()) if ns.json else result.summary())
    return EXIT_PASS
