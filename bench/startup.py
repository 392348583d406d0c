"""Whole-process timings: start-up, the first run, and small checks (issue 15).

What a user waits for is a whole process, not the kernel alone. This script runs fresh
interpreters (``python -c``) and reports medians of several runs:

- ``fastcheck, warm``: a full check of the built-in M network, numba's and fastcheck's
  caches warm (one untimed run fills them first);
- ``fastcheck, first run``: the same with empty caches (a fresh ``NUMBA_CACHE_DIR`` per
  run, which also holds fastcheck's kernel cache; with it set numba neither reads nor
  writes the ``__pycache__`` index files of the package), as on a machine that never ran it;
- ``classic numpy loop``: the plainest course-style check of the same network, in plain
  NumPy: forward/backward written by hand, then the ``gradient_check_n`` loop over every
  component with a fixed step of 1e-7. fastcheck's ``models/course.py`` (engineer PROCS)
  was not on main when this was written, so the loop is written out below (``CLASSIC``);
- a warm ``fc.check`` of the S network inside one process against its limit
  (``2 N t_forward / threads``, the njit cost timed with one BLAS thread). Calls back to
  back are the target's measure: t_forward is timed that way, and so are pytest-benchmark's
  rounds of the peers (``bench/test_bench_check.py``). A single call right after 20 ms of
  other work is slower, for any code: the script runs the limit itself (an njit loop of
  2N / threads evaluations) both ways too, and prints the single call against that;
- the import-time split (``python -X importtime``) and the in-process split of a warm run.

Targets (issue 15): warm M <= 0.9x the classic loop's process; first run <= 4x; warm S
<= 1.5x its limit.

Run from the repository root::

    python bench/startup.py                 # 5 runs per case (~1-2 min on 2 cores)
    python bench/startup.py --runs 3 --json startup.json
    python bench/startup.py --root /path/to/other/checkout   # time another checkout

Timings on a shared machine vary: the script reads ``/proc/loadavg`` before and after and
prints it with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Targets of issue 15, as ratios.
TARGET_WARM = 0.9
TARGET_FIRST = 4.0
TARGET_SMALL = 1.5

FASTCHECK_M = """
import fastcheck as fc
from fastcheck.models import make_mlp

p = make_mlp("M")
report = fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout)
print(report.summary().splitlines()[0])
assert report.passed
"""

#: The classic loop, as a student would write it: NumPy only, dict params, the course's
#: helpers to go between the dict and a vector, a fixed step of 1e-7, every component.
CLASSIC = """
import numpy as np

sizes, m, lam = (64, 64, 32, 10), 64, 0.1
rng = np.random.default_rng(0)
params = {}
for l in range(1, len(sizes)):
    params["W" + str(l)] = rng.standard_normal((sizes[l - 1], sizes[l])) * np.sqrt(2 / sizes[l - 1])
    params["b" + str(l)] = 0.1 * rng.standard_normal(sizes[l])
X = rng.standard_normal((m, sizes[0]))
Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=m)]
L = len(sizes) - 1
keys = [k for l in range(1, L + 1) for k in ("W" + str(l), "b" + str(l))]


def forward_backward(params, X, Y):
    caches, A = [], X
    for l in range(1, L + 1):
        Z = A @ params["W" + str(l)] + params["b" + str(l)]
        caches.append((A, Z))
        A = np.maximum(Z, 0) if l < L else Z
    Z = A - A.max(axis=1, keepdims=True)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    cost = -np.sum(Y * np.log(P)) / m
    cost += lam / (2 * m) * sum(np.sum(params["W" + str(l)] ** 2) for l in range(1, L + 1))
    grads, dZ = {}, (P - Y) / m
    for l in range(L, 0, -1):
        A_prev, Z = caches[l - 1]
        grads["dW" + str(l)] = A_prev.T @ dZ + lam / m * params["W" + str(l)]
        grads["db" + str(l)] = dZ.sum(axis=0)
        if l > 1:
            dZ = (dZ @ params["W" + str(l)].T) * (caches[l - 2][1] > 0)
    return cost, grads


def dictionary_to_vector(d, names):
    return np.concatenate([d[k].reshape(-1) for k in names])


def vector_to_dictionary(theta):
    out, i = {}, 0
    for k in keys:
        n = params[k].size
        out[k] = theta[i:i + n].reshape(params[k].shape)
        i += n
    return out


def gradient_check_n(params, grads, X, Y, epsilon=1e-7):
    theta = dictionary_to_vector(params, keys)
    grad = dictionary_to_vector(grads, ["d" + k for k in keys])
    n = theta.shape[0]
    gradapprox = np.zeros(n)
    for i in range(n):
        theta_plus = np.copy(theta)
        theta_plus[i] += epsilon
        j_plus, _ = forward_backward(vector_to_dictionary(theta_plus), X, Y)
        theta_minus = np.copy(theta)
        theta_minus[i] -= epsilon
        j_minus, _ = forward_backward(vector_to_dictionary(theta_minus), X, Y)
        gradapprox[i] = (j_plus - j_minus) / (2 * epsilon)
    numerator = np.linalg.norm(grad - gradapprox)
    return numerator / (np.linalg.norm(grad) + np.linalg.norm(gradapprox))


cost, grads = forward_backward(params, X, Y)
difference = gradient_check_n(params, grads, X, Y)
print("difference", difference)
"""

SMALL_CHECK = """
import json, time
import numpy as np
import fastcheck as fc
try:
    from fastcheck.cli.bench import forward_seconds, repeat_cost
except ImportError:  # before the cli package (fastcheck._bench)
    from fastcheck._bench import forward_seconds, repeat_cost
from fastcheck._blas import single_threaded_blas
from fastcheck.backends.numba_backend import max_threads
from fastcheck.models import make_mlp

p = make_mlp("S")
threads = max_threads()
repeat, x = repeat_cost(), p.theta.copy()
per_thread = 2 * p.theta.size // threads

def check():
    return fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout)

def limit_loop():  # the limit, run: 2N evaluations / threads in an njit loop, one thread
    with single_threaded_blas():
        repeat(p.cost, x, p.args, per_thread)

def other_work():  # 20 ms on the main thread: timing the forward pass
    return forward_seconds(p.cost, p.theta, p.args, target=0.02)

from numba import njit, prange

@njit(parallel=True)
def _on_threads(cost, x, args, n, threads):  # every thread: n evaluations, as the kernel
    total = np.zeros(threads)
    for t in prange(threads):
        y = x.copy()
        for _ in range(n):
            total[t] += cost(y, *args)
    return total.sum()

def parallel_limit():  # the limit, run on the kernel's threads (a busy host slows them)
    with single_threaded_blas():
        _on_threads(p.cost, x, p.args, per_thread, threads)

for _ in range(10):
    check(); limit_loop(); parallel_limit()
timed = {"check": [], "limit_loop": [], "parallel_limit": [], "check_after": [],
         "limit_loop_after": [], "parallel_limit_after": []}
forwards = []
for _ in range(ROUNDS):  # interleaved, so that a busy spell hits every case alike
    for name, fn in (("check", check), ("limit_loop", limit_loop),
                     ("parallel_limit", parallel_limit)):
        for i in range(25):  # back to back, as pytest-benchmark's rounds: the last 20
            start = time.perf_counter()
            fn()
            if i >= 5:
                timed[name].append(time.perf_counter() - start)
        forwards.append(other_work())  # after other work: a single call
        start = time.perf_counter()
        fn()
        timed[name + "_after"].append(time.perf_counter() - start)
t_forward = float(np.median(forwards))
out = {k: float(np.median(v)) for k, v in timed.items()}
out.update(t_forward=t_forward, threads=threads,
           limit=2 * p.theta.size * t_forward / threads)
print(json.dumps(out))
"""

SPLIT = """
import json, time
t0 = time.perf_counter()
import fastcheck as fc
t1 = time.perf_counter()
import numba
t2 = time.perf_counter()
from fastcheck.models import make_mlp
p = make_mlp("M")
p.cost(p.theta, *p.args)
p.grad(p.theta, *p.args)
t3 = time.perf_counter()
report = fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout)
t4 = time.perf_counter()
report.summary()
t5 = time.perf_counter()
print(json.dumps({"import fastcheck": t1 - t0, "import numba": t2 - t1,
                  "first calls of cost and grad (load or compile)": t3 - t2,
                  "fc.check (M, full)": t4 - t3,
                  "of which the kernel's compile or load": report.compile_seconds,
                  "report.summary()": t5 - t4}))
"""


def _env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a child timing ``root``; children also run in ``root``, since
    ``python -c`` puts the working directory ahead of ``PYTHONPATH``."""
    env = dict(os.environ, PYTHONPATH=str(root), **extra)
    env.pop("FASTCHECK_CACHE_DIR", None)  # the kernel cache follows NUMBA_CACHE_DIR
    return env


#: CPU seconds (user + system) of each timed child, by case: less sensitive than wall time
#: to other processes on a shared machine, though a parallel check counts every thread.
CPU: dict[str, list[float]] = {"classic": [], "warm": [], "first": []}


def _run(code: str, env: dict[str, str], case: str | None = None) -> float:
    """Wall seconds of ``python -c code`` (a failure stops the benchmark)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=env.get("PYTHONPATH"),
                         capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"bench/startup.py: a child failed:\n{out.stderr[-3000:]}")
    if case is not None:
        CPU[case].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took


def _json_child(code: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=env.get("PYTHONPATH"),
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:  # pragma: no cover - not Linux
        return "?"


def import_times(root: Path, runs: int) -> dict[str, float]:
    """Median cumulative import seconds of the heavy top-level modules under fastcheck."""
    wanted = ("fastcheck", "numpy", "numba", "scipy", "scipy.linalg", "scipy.special",
              "scipy.stats", "matplotlib", "threadpoolctl")
    samples: dict[str, list[float]] = {name: [] for name in wanted}
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import fastcheck"],
                             env=_env(root), cwd=root, capture_output=True, text=True,
                             check=True)
        seen: dict[str, float] = {}
        for line in out.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
            if match and match.group(3) in wanted:
                seen[match.group(3)] = int(match.group(1)) / 1e6
        for name in wanted:
            samples[name].append(seen.get(name, 0.0))
    return {name: statistics.median(v) for name, v in samples.items()}


def measure(root: Path, runs: int) -> dict:
    """All the timings; see the module docstring."""
    load_before = _loadavg()
    # The warm cases use a cache of their own, filled by one untimed run: the numbers do
    # not depend on what earlier sessions left, and nothing is written into the checkout.
    warm_cache = tempfile.mkdtemp(prefix="fastcheck-warm-")
    try:
        return _measure(root, runs, load_before, _env(root, NUMBA_CACHE_DIR=warm_cache))
    finally:
        shutil.rmtree(warm_cache, ignore_errors=True)


def _measure(root: Path, runs: int, load_before: str, warm_env: dict[str, str]) -> dict:
    _run(FASTCHECK_M, warm_env)  # fill numba's and fastcheck's caches
    warm, first, classic = [], [], []
    for _ in range(runs):  # interleaved, so that a busy spell hits every case alike
        classic.append(_run(CLASSIC, dict(os.environ), "classic"))
        warm.append(_run(FASTCHECK_M, warm_env, "warm"))
        cache = tempfile.mkdtemp(prefix="fastcheck-first-run-")
        try:
            first.append(_run(FASTCHECK_M, _env(root, NUMBA_CACHE_DIR=cache), "first"))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    small = _json_child(SMALL_CHECK.replace("ROUNDS", str(max(20, 5 * runs))), warm_env)
    splits = [_json_child(SPLIT, warm_env) for _ in range(runs)]
    split = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    cold = []
    for _ in range(runs):
        cache = tempfile.mkdtemp(prefix="fastcheck-first-run-")
        try:
            cold.append(_json_child(SPLIT, _env(root, NUMBA_CACHE_DIR=cache)))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    first_split = {k: statistics.median(s[k] for s in cold)
                   for k in cold[0]}
    return {
        "root": str(root), "runs": runs, "python": sys.version.split()[0],
        "loadavg": [load_before, _loadavg()],
        "warm": statistics.median(warm), "first": statistics.median(first),
        "classic": statistics.median(classic),
        "warm_all": warm, "first_all": first, "classic_all": classic,
        "cpu": {case: statistics.median(v) for case, v in CPU.items() if v},
        "small": small, "split": split, "first_split": first_split,
        "imports": import_times(root, runs),
    }


def table(r: dict) -> str:
    """The human-readable result."""
    def row(label, case, ratio=None, target=None):
        text = f"| {label} | {r[case]:.2f} s | {r['cpu'][case]:.2f} s |"
        if ratio is None:
            return text + " — | — |"
        ok = "met" if ratio <= target else "NOT met"
        return text + f" {ratio:.2f}x | <= {target}x: {ok} |"

    small = r["small"]
    s_ratio = small["check"] / small["limit"]
    lines = [
        f"Whole processes, median of {r['runs']} (python {r['python']}, load average "
        f"{r['loadavg'][0]} -> {r['loadavg'][1]}), checkout {r['root']}",
        "",
        "| process | wall | cpu | wall vs classic | target |",
        "|---|---|---|---|---|",
        row("classic numpy loop, full check of M", "classic"),
        row("fastcheck, full check of M, caches warm", "warm", r["warm"] / r["classic"],
            TARGET_WARM),
        row("fastcheck, first run (empty caches)", "first", r["first"] / r["classic"],
            TARGET_FIRST),
        "",
        f"Warm `fc.check` of S in one process, calls back to back (as the limit's t_forward, "
        f"pytest-benchmark and the peers are timed): {small['check'] * 1e3:.2f} ms; limit "
        f"{small['limit'] * 1e3:.2f} ms (t_forward {small['t_forward'] * 1e6:.2f} us, "
        f"{small['threads']} threads): {s_ratio:.2f}x the limit (target <= {TARGET_SMALL}x: "
        f"{'met' if s_ratio <= TARGET_SMALL else 'NOT met'}); the limit run as an njit loop "
        f"the same way: {small['limit_loop'] * 1e3:.2f} ms"
        + (f"; on {small['threads']} threads (an njit prange loop, as the kernel runs): "
           f"{small['parallel_limit'] * 1e3:.2f} ms, the check "
           f"{small['check'] / small['parallel_limit']:.2f}x that"
           if "parallel_limit" in small else ""),
        f"A single call right after 20 ms of other work (a cold CPU: caches and predictors "
        f"hold the other work): check {small['check_after'] * 1e3:.2f} ms, the limit's njit "
        f"loop {small['limit_loop_after'] * 1e3:.2f} ms: "
        f"{small['check_after'] / small['limit_loop_after']:.2f}x",
        "",
        "In-process split of a warm M run (medians):",
    ]
    lines += [f"  {k:40s} {v:.3f} s" for k, v in r["split"].items()]
    lines += ["", "The same split of a first run (empty caches; medians):"]
    lines += [f"  {k:40s} {v:.3f} s" for k, v in r["first_split"].items()]
    lines += ["", "`python -X importtime -c 'import fastcheck'`, cumulative (0: not imported):"]
    lines += [f"  {k:40s} {v:.3f} s" for k, v in r["imports"].items()]
    lines += ["", "Rerun: python bench/startup.py [--runs N] [--json FILE] [--root CHECKOUT]"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (median)")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="the checkout to time (default: this one)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    result = measure(args.root.resolve(), args.runs)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
