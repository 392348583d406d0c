"""False alarms of correct ReLU networks as their weights shrink, and bugs still caught.

Small weights put many pre-activations within a finite-difference step of a ReLU kink,
with slope changes as small as the curvature's: the hardest ground for "never cry wolf".
For each weight scale and batch size, the student MLP of ``tests/scenarios/_student.py``
(5-6-6-3, ReLU, softmax, L2) is checked with its correct gradient over many seeds, and
with three bugs (db1 four times too large, the regularisation term missing, one
entry of W1 off by 1e-5). Prints false failures (a correct
gradient failing) and false passes (a bug passing). Run from the repository root::

    python bench/relu_small_weights.py --seeds 100        # ~30 s on 2 cores

Bugs below the per-component tolerance pass by design and show in the last column: one
entry of W1 off by 1e-5 where that entry's gradient is above 0.5 (relative error under
rtol = 1e-5), and db1 four times too large where db1 itself is below the roundoff floor
(weights 1e-3). On 2026-11-28 the false failures at scale 1e-3 went from 1 + 10 (commit
bc0dc9d) to 0 + 2 with the settled-difference rule of ``_verdict.judge_level``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fastcheck as fc  # noqa: E402
from tests.scenarios import _student as S  # noqa: E402

SCALES = (1.0, 0.1, 1e-2, 1e-3)
BATCHES = (8, 64)
BUGS = ("four_over_m", "reg_missing", "one_element")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    opts = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    total = 0
    print("| weight scale | batch | false failures | bugs passed |")
    print("|---|---|---|---|")
    for scale in SCALES:
        for n in BATCHES:
            false_fail, false_pass = [], []
            for seed in range(opts.seeds):
                cost, grad, params, args = S.make_mlp(seed, n=n)
                params = {k: v * scale / 0.5 for k, v in params.items()}
                if not fc.check(cost, grad, params, args, backend="serial").passed:
                    false_fail.append(seed)
                for bug in BUGS:
                    cfg = dict(args[3], bug=bug)
                    wrong = fc.check(cost, grad, params, args[:3] + (cfg,), backend="serial")
                    if wrong.passed:
                        false_pass.append((seed, bug))
            total += len(false_fail) + len(false_pass)
            print(f"| {scale:g} | {n} | {len(false_fail)}/{opts.seeds} {false_fail[:6]} | "
                  f"{len(false_pass)}/{len(BUGS) * opts.seeds} {false_pass[:4]} |")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
