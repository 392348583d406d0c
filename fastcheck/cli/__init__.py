"""The ``fastcheck`` command line: one module per subcommand, shared parts in ``common``.

To add a subcommand: write ``fastcheck/cli/NAME.py`` with ``add_parser(subparsers)`` and
``run(namespace) -> int``, and list it in ``SUBCOMMANDS``.

Exit status: 0 the check passed, 1 the gradient check failed, 2 usage or input error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import bench, check, demo, taylor
from .common import (
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_STATUS_TEXT,
    EXIT_USAGE,
    Parser,
    UsageError,
    fail,
)

__all__ = ["COMMANDS", "EXIT_FAIL", "EXIT_INTERRUPTED", "EXIT_PASS", "EXIT_USAGE",
           "build_parser", "main"]

#: Subcommand name -> its module (``add_parser``, ``run``), in the order of ``--help``.
SUBCOMMANDS = {"demo": demo, "check": check, "bench": bench, "taylor": taylor}
#: Subcommand name -> the function that runs it.
COMMANDS = {name: module.run for name, module in SUBCOMMANDS.items()}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastcheck`` command."""
    parser = Parser(
        prog="fastcheck",
        description="Fast, explanatory gradient checks of hand-written backprop.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fastcheck demo\n  fastcheck demo --bug missing-regularization\n"
               "  fastcheck demo --size L --sample 2000 --seed 1\n"
               "  fastcheck check mynet.py:cost mynet.py:backward --params params.npz "
               "--args data.npz\n"
               "  fastcheck bench --size M\n  fastcheck taylor --bug sign-flip\n\n"
               + EXIT_STATUS_TEXT,
    )
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}",
                                parser_class=Parser)
    for module in SUBCOMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastcheck`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``fastcheck`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        ``EXIT_PASS`` (0), ``EXIT_FAIL`` (1), ``EXIT_USAGE`` (2) or ``EXIT_INTERRUPTED``
        (130). ``--help`` exits with 0 (``SystemExit``).
    """
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if ns.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(COMMANDS[ns.command](ns))
    except (ValueError, TypeError, ImportError) as exc:
        return fail(ns.command, str(exc))
    except KeyboardInterrupt:
        print("fastcheck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
