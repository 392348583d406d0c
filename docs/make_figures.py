"""Write the pictures that README.md and docs/ show, from the code that draws them.

``docs/img/failing_report.png``: ``report.plot()`` of the check that
``fastcheck demo --bug one-element`` runs (the built-in S network with
``dW2[1, 3] += 1e-3``, seed 0), so the README shows what a user sees for a one-element bug.

Run from the repository root (needs the ``plot`` extra, i.e. matplotlib)::

    PYTHONPATH=. python docs/make_figures.py            # writes docs/img/*.png
    PYTHONPATH=. python docs/make_figures.py --out DIR  # somewhere else
"""

from __future__ import annotations

import argparse
from pathlib import Path

import fastcheck as fc
from fastcheck.models import make_mlp

HERE = Path(__file__).resolve().parent


def failing_report(size: str = "S", bug: str = "one-element", seed: int = 0) -> fc.Report:
    """The report of ``fastcheck demo --size SIZE --bug BUG --seed SEED`` (defaults otherwise)."""
    model = make_mlp(size, bug=bug, seed=seed)
    return fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                    seed=seed)


def write_failing_report(out: Path) -> Path:
    """Save ``report.plot()`` of the one-element bug to ``out / "failing_report.png"``."""
    report = failing_report()
    if report.passed:
        raise RuntimeError("the one-element bug was not detected; refusing to draw a PASS")
    fig = report.plot()
    path = out / "failing_report.png"
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path


def main(argv: list[str] | None = None) -> int:
    """Write every figure; print the paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "img",
                        help="directory of the PNG files (default docs/img)")
    ns = parser.parse_args(argv)
    ns.out.mkdir(parents=True, exist_ok=True)
    print(write_failing_report(ns.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
