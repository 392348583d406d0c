"""The dask backend against the numba backend on one machine: 1 and 2 workers.

Checks a sampled MLP (default ``[256, 64, 32, 10]``, batch 1,024, ``sample=3000``: about
1 ms per evaluation, so each task is about a second of work) on the numba backend with 1
and 2 threads and on ``LocalCluster``s of 1 and 2 worker processes (one thread each,
127.0.0.1). Every case gets one untimed warm-up (the workers compile the kernel), then
``--runs`` interleaved timed runs; prints the median and best wall time and, for dask, the
time the workers spent in tasks over the wall time (from ``distributed``'s task stream:
how busy the backend kept them), and the warm-up's time (fresh workers: imports and the
kernel's compilation). Every dask report must equal numba's, bitwise.

Run from the repository root (about 1-2 minutes on 2 cores; needs the ``dask`` extra)::

    PYTHONPATH=. python bench/dask_scaling.py
    PYTHONPATH=. python bench/dask_scaling.py --runs 3 --sample 8192
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

import numpy as np

import fastcheck as fc
from fastcheck.models import make_mlp


def main(argv: list[str] | None = None) -> int:
    """Time the four cases and print the table."""
    import distributed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,64,32,10", help="layer sizes of the MLP")
    parser.add_argument("--batch", type=int, default=1024, help="rows of X")
    parser.add_argument("--sample", type=int, default=3000, help="components checked")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per case")
    ns = parser.parse_args(argv)
    model = make_mlp(tuple(int(v) for v in ns.sizes.split(",")), batch=ns.batch)
    load0 = os.getloadavg()[0]

    def check(**kw):
        return fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                        sample=ns.sample, seed=0, **kw)

    clusters, clients = [], {}
    for workers in (1, 2):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, host="127.0.0.1",
                                           dashboard_address=None,
                                           silence_logs=logging.ERROR)
        clusters.append(cluster)
        clients[workers] = distributed.Client(cluster, set_as_default=False)
    cases = {
        "numba, 1 thread": lambda: check(backend="numba", threads=1),
        "numba, 2 threads": lambda: check(backend="numba", threads=2),
        "dask, 1 worker": lambda: check(backend="dask", client=clients[1]),
        "dask, 2 workers": lambda: check(backend="dask", client=clients[2]),
    }
    walls: dict[str, list[float]] = {name: [] for name in cases}
    busy: dict[str, list[float]] = {name: [] for name in cases}
    try:
        reference = cases["numba, 1 thread"]()
        first = {}
        for name, run in cases.items():  # warm-up: compile, ship, start the pools
            start = time.perf_counter()
            run()
            first[name] = time.perf_counter() - start
        for _ in range(ns.runs):
            for name, run in cases.items():
                client = clients.get(2 if "2 workers" in name else 1) if "dask" in name \
                    else None
                start = time.perf_counter()
                if client is None:
                    report = run()
                    task_seconds = None
                else:
                    with distributed.get_task_stream(client) as stream:
                        report = run()
                    task_seconds = sum(
                        part["stop"] - part["start"] for task in stream.data
                        for part in task["startstops"] if part["action"] == "compute")
                wall = time.perf_counter() - start
                if not np.array_equal(report.numeric, reference.numeric):
                    raise AssertionError(f"{name}: numbers differ from numba's")
                walls[name].append(wall)
                if task_seconds is not None:
                    busy[name].append(task_seconds / wall)
    finally:
        for client in clients.values():
            client.close()
        for cluster in clusters:
            cluster.close()
    print(f"MLP {ns.sizes}, batch {ns.batch}, N = {model.theta.shape[0]:,}, sample "
          f"{ns.sample}: {reference.evaluations:,} evaluations; {ns.runs} runs per case "
          f"after a warm-up; load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")
    print("| backend | first run (warm-up) | median | best | task time / wall time |\n"
          "|---|---|---|---|---|")
    for name in cases:
        frac = f"{statistics.median(busy[name]):.2f}" if busy[name] else "—"
        print(f"| {name} | {first[name]:.2f} s | {statistics.median(walls[name]):.2f} s "
              f"| {min(walls[name]):.2f} s "
              f"| {frac} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
