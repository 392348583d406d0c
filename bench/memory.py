"""Peak memory of a full check of the L network against a check of a few components.

Each case runs in a fresh interpreter (``python -c``) that builds the built-in L network
(N = 109,386), runs one ``fc.check`` and prints its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The difference between the full check
(218,772+ evaluations) and a 60-component one is what fastcheck's O(N) result arrays
cost; nothing in the kernel allocates per component (``tests/test_perf_kernel.py``).

Run from the repository root (the full check takes a minute or more on 2 cores)::

    PYTHONPATH=. python bench/memory.py
    PYTHONPATH=. python bench/memory.py --size M      # a quicker look
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

CASE = """
import resource
import fastcheck as fc
from fastcheck.models import make_mlp

p = make_mlp({size!r})
report = fc.check(p.cost, p.grad, p.theta, p.args, layout=p.layout, sample={sample!r}, seed=0)
assert report.passed, report.summary()
print(report.evaluations, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak(size: str, sample: int | None) -> tuple[int, float, float]:
    """(evaluations, peak RSS in MB, wall seconds) of one fresh process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CASE.format(size=size, sample=sample)],
                         capture_output=True, text=True, check=True, env=os.environ.copy())
    evaluations, kb = out.stdout.split()[-2:]
    return int(evaluations), int(kb) / 1024, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Print the peak RSS of a 60-component check and of a full check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="L", choices=["S", "M", "L"])
    ns = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = [("60 components", *peak(ns.size, 60)), ("full check", *peak(ns.size, None))]
    print(f"peak RSS, network {ns.size}, fresh processes (load average {load:.2f} -> "
          f"{os.getloadavg()[0]:.2f})")
    for name, evaluations, mb, wall in rows:
        print(f"  {name:<14} {evaluations:>9,} evaluations  {mb:7.1f} MB  ({wall:.1f} s)")
    print(f"  difference     {rows[1][2] - rows[0][2]:7.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
