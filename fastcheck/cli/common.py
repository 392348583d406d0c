"""What every subcommand shares: exit codes, the parser class, argument types, output.

A subcommand is a module of ``fastcheck/cli/`` with ``add_parser(subparsers)`` and
``run(namespace) -> int``, listed in ``cli.SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

#: Exit status: the check passed, the gradient check failed, usage or input error,
#: interrupted (Ctrl-C, as a shell reports SIGINT).
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_STATUS_TEXT = "exit status: 0 pass, 1 gradient check failed, 2 usage or input error"


class UsageError(Exception):
    """A command line argparse refused; ``main`` prints it as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one ``prog: error: ...`` line (exit 2)
    instead of printing the usage and exiting; ``--help`` still exits with 0."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def sub_parser(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand's parser, its help text laid out as written."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    return parser


# -- argument types ---------------------------------------------------------------------------
def sample(text: str) -> int | float | str:
    """``--sample``: a count (2000), a fraction (0.01) or ``auto``."""
    if text == "auto":
        return text
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a count (2000), a fraction (0.01) or auto, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def eps(text: str) -> float | str:
    """``--eps``: ``auto`` or a float (its range is checked by ``fc.check``)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected "auto" or a float, got {text!r}') from None


def real(text: str) -> float:
    """A float option."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a float, got {text!r}") from None


def integer(text: str) -> int:
    """An integer option (its range is checked where it is used)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer option that must be at least 1."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def choice(option: str, options: Iterable[str]) -> Callable[[str], str]:
    """A type that accepts one of ``options`` and names them all otherwise (used with
    ``choices=`` so that ``--help`` lists them too)."""
    allowed = tuple(options)

    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(
                f"{option} must be one of {', '.join(map(repr, allowed))}, got {text!r}")
        return text

    return parse


def add_backend(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--backend``, with every registered backend as a choice."""
    from ..backends import BACKEND_NAMES

    parser.add_argument("--backend", default="auto", choices=BACKEND_NAMES,
                        type=choice("backend", BACKEND_NAMES), help=help_text)


def add_bug(parser: argparse.ArgumentParser) -> None:
    """``--bug NAME``: one of the built-in model's injectable bugs."""
    from ..models import BUGS

    parser.add_argument("--bug", default=None, metavar="NAME", type=choice("bug", BUGS),
                        help="inject a classic backprop bug (see the list below)")


def bug_lines() -> str:
    """The injectable bugs, one per line, for a subcommand's epilog."""
    from ..models import BUGS

    return "\n".join(f"  {name:<24} {text}" for name, text in BUGS.items())


# -- output ---------------------------------------------------------------------------------
def show(ns: argparse.Namespace, model: Any, result: Any) -> None:
    """Print a result of the built-in model (text or ``--json``) and save ``--plot``."""
    if ns.json:
        print(json.dumps(result.to_dict()))
    else:
        bug = f", bug {ns.bug!r} injected" if ns.bug else ""
        print(f"model: {model.name} {list(model.sizes)}, N = {model.layout.size:,}{bug}")
        print(result.summary())
    if ns.plot:
        result.plot().savefig(ns.plot)
        if not ns.json:
            print(f"plot saved to {ns.plot}")


def fail(command: str, message: str) -> int:
    """Print ``fastcheck COMMAND: error: MESSAGE`` on stderr; returns ``EXIT_USAGE``."""
    print(f"fastcheck {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
