"""``fastcheck taylor``: the step-free Taylor test on the built-in network."""

from __future__ import annotations

import argparse
from typing import Any

from .common import EXIT_FAIL, EXIT_PASS, add_bug, bug_lines, integer, show, sub_parser


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``taylor`` to the ``fastcheck`` parser's subparsers."""
    taylor = sub_parser(
        subparsers, "taylor",
        help="the step-free Taylor test on the built-in MLP",
        description="Taylor test: the remainder |J(theta + h d) - J(theta) - h g.d| must "
                    "fall like h^2 when the gradient is right (rate 2) and like h when "
                    "it is wrong (rate 1).",
        epilog="bugs (--bug NAME):\n" + bug_lines() + "\n\nexamples:\n"
               "  fastcheck taylor\n  fastcheck taylor --size L --bug one-element",
    )
    taylor.add_argument("--size", default="S", choices=["S", "M", "L", "SQ"],
                        help="network size (default S)")
    add_bug(taylor)
    taylor.add_argument("--seed", type=integer, default=0,
                        help="seed of the data and the direction")
    taylor.add_argument("--json", action="store_true", help="print the result as JSON")
    taylor.add_argument("--plot", default=None, metavar="FILE.png",
                        help="save the log-log plot of the remainders to FILE")
    return taylor


def run(ns: argparse.Namespace) -> int:
    """``fastcheck taylor``: the Taylor test on the built-in network."""
    import fastcheck as fc

    from ..models import make_mlp

    model = make_mlp(ns.size, bug=ns.bug, seed=ns.seed)
    result = fc.taylor_test(model.cost, model.grad, model.theta, model.args,
                            layout=model.layout, seed=ns.seed)
    show(ns, model, result)
    return EXIT_PASS if result.passed else EXIT_FAIL
