"""Soundness sweep of the float32 paths: no correct gradient fails, no bug passes.

Three costs on the small tanh network of ``tests/test_float32.py`` (75 parameters), each
with the correct gradient and two bugs (a factor-2 slip in ``W1``, the regularisation term
missing from ``W2``):

- ``f32``: float32 params, a cost returning a float32 value (noise measured up front);
- ``hidden``: float64 params, a cost computing in float32 inside and returning a Python
  float (noise measured after a first pass that failed or met "kinks");
- ``const``: ``f32`` plus a constant 1e3 (its noise hides even a factor 2: every check
  must read WARN, never PASS).

Prints the verdict counts and every false pass (a bug read as "pass") or false alarm (a
correct gradient not read as "pass", the ``const`` cost apart). Run from the repository
root::

    python bench/float32_soundness.py --mode full --seeds 0 200
    python bench/float32_soundness.py --mode directional --seeds 0 200

(200 seeds: ~20 s in full mode, ~10 s directional, on 2 cores.)
"""

from __future__ import annotations

import argparse
import collections
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastcheck as fc  # noqa: E402
from tests.test_float32 import grads, loss, make_mlp  # noqa: E402

VARIANTS = ("f32", "hidden", "const")
BUGS = (None, "x2", "reg")


def problem(seed: int, variant: str, bug: str | None):
    """``(cost, grad, params)`` of one case."""
    p, x, y = make_mlp(seed)
    if variant == "hidden":
        p = {k: v.astype(np.float64) for k, v in p.items()}

        def cost(q):
            return float(loss(q, x, y, np.float32))

        def grad(q):
            return {k: v.astype(np.float64) for k, v in grads(q, x, y, np.float32, bug).items()}
        return cost, grad, p
    offset = np.float32(1e3 if variant == "const" else 0.0)

    def cost32(q):
        return loss(q, x, y, np.float32) + offset

    return cost32, (lambda q: grads(q, x, y, np.float32, bug=bug)), p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("full", "directional"), default="full")
    parser.add_argument("--seeds", type=int, nargs=2, default=(0, 200), metavar=("FROM", "TO"))
    opts = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the float32 warning on every check
    counts: collections.Counter = collections.Counter()
    bad = 0
    for seed in range(*opts.seeds):
        for variant in VARIANTS:
            for bug in BUGS:
                cost, grad, params = problem(seed, variant, bug)
                report = fc.check(cost, grad, params, mode=opts.mode, seed=seed)
                counts[(variant, bug or "right", report.verdict)] += 1
                false_pass = bug is not None and report.verdict == "pass"
                false_alarm = bug is None and variant != "const" and report.verdict != "pass"
                wrong_const = variant == "const" and report.verdict == "pass"
                if false_pass or false_alarm or wrong_const:
                    bad += 1
                    print(f"seed {seed} {variant} {bug or 'right'}: "
                          f"{report.summary().splitlines()[0]}")
    print(f"mode={opts.mode}, seeds {opts.seeds[0]}..{opts.seeds[1] - 1}:")
    for (variant, bug, verdict), n in sorted(counts.items()):
        print(f"  {variant:7s} {bug:6s} {verdict:5s} {n}")
    print(f"false passes or false alarms: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
