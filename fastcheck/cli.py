"""The ``fastcheck`` command line: ``demo`` (and the subcommands later issues add).

Exit status: 0 the check passed, 1 the gradient check failed, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

from ._user_check import add_check_parser, run_check

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits with status 2 and one line on a usage error."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _sample(text: str) -> int | float:
    """``--sample`` value: an int count or a float fraction."""
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a count (e.g. 2000) or a fraction (e.g. 0.01), got {text!r}"
            ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _bug_lines() -> str:
    from .models import BUGS

    return "\n".join(f"  {name:<24} {text}" for name, text in BUGS.items())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fastcheck`` command."""
    parser = _Parser(
        prog="fastcheck",
        description="Fast, explanatory gradient checks of hand-written backprop.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fastcheck demo\n  fastcheck demo --bug missing-regularization\n"
               "  fastcheck demo --size L --sample 2000 --seed 1\n"
               "  fastcheck check mynet.py:cost mynet.py:backward --params params.npz "
               "--args data.npz\n"
               "  fastcheck bench --size M\n\n"
               "exit status: 0 pass, 1 gradient check failed, 2 usage or input error",
    )
    sub = parser.add_subparsers(dest="command", metavar="{demo,check,bench,taylor}",
                                parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        help="check the built-in MLP (optionally with an injected bug)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check the gradient of the built-in multilayer perceptron (numba, "
                    "ReLU, softmax cross-entropy + L2) and print the report.",
        epilog="bugs (--bug NAME):\n" + _bug_lines() + "\n\nexamples:\n  fastcheck demo\n"
               "  fastcheck demo --size M --bug sign-flip\n"
               "  fastcheck demo --size L --sample 0.02 --threads 2",
    )
    demo.add_argument("--model", choices=["mlp"], default="mlp", help="built-in model")
    demo.add_argument("--size", default="S", choices=["S", "M", "L", "SQ"],
                      help="network size: S [20,16,8,3], M [64,64,32,10], "
                           "L [784,128,64,10], SQ [16,16,16,4] (default S)")
    demo.add_argument("--bug", default=None, metavar="NAME",
                      help="inject a classic backprop bug (see the list below)")
    demo.add_argument("--sample", type=_sample, default=None, metavar="N|FRACTION",
                      help="check N components, or this fraction of them")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data and the sample")
    demo.add_argument("--threads", type=_positive_int, default=None, metavar="K",
                      help="worker threads (default: all cores)")
    demo.add_argument("--backend", default="auto",
                      choices=["auto", "numba", "threads", "serial", "dask"],
                      help="evaluation backend (default auto: numba for the njit model)")
    demo.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="with --backend dask: the scheduler, e.g. tcp://scheduler-host:8786 "
                           "(default: a local cluster of 2 worker processes for this run)")
    demo.add_argument("--eps", default="auto",
                      help='finite-difference step: "auto" or a float such as 1e-7')
    demo.add_argument("--json", action="store_true", help="print the report as JSON")
    demo.add_argument("--method", default="central",
                      choices=["central", "richardson", "complex"],
                      help="finite differences: central (default), richardson (O(h^4)), or "
                           "complex step (exact; runs the model's complex-safe numpy cost)")
    demo.add_argument("--mode", default="full", choices=["full", "directional"],
                      help="full: every (sampled) component; directional: a few random "
                           "directions, then group testing to localize bad components")
    demo.add_argument("--plot", default=None, metavar="FILE.png",
                      help="save report.plot() (error histograms and scatter per block) to "
                           "FILE (needs matplotlib: pip install 'fastcheck[plot]')")
    demo.add_argument("--progress", action="store_true", default=None,
                      help="show a progress bar (default: when stderr is a terminal)")
    bench = sub.add_parser(
        "bench",
        help="measure fastcheck on the built-in MLP against the physical limit",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time fastcheck on the built-in MLP on this machine: evaluations/s, "
                    "fraction of the physical limit (bare njit forward x 2n / threads), "
                    "speed-up over the classic loop, parallel efficiency, compile time.",
        epilog="examples:\n  fastcheck bench\n  fastcheck bench --size L\n"
               "  fastcheck bench --size L --sample all --rounds 1 --json",
    )
    bench.add_argument("--size", default="M", choices=["S", "M", "L"],
                       help="network size (default M)")
    bench.add_argument("--sample", default="default", metavar="N|all",
                       type=lambda t: t if t in ("all", "default") else _positive_int(t),
                       help="components to check (default: all for S and M, 4000 for L)")
    bench.add_argument("--rounds", type=_positive_int, default=3,
                       help="interleaved repetitions, medians reported (default 3)")
    bench.add_argument("--threads", type=_positive_int, default=None, metavar="K",
                       help="threads of the parallel runs (default: all cores)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    taylor = sub.add_parser(
        "taylor",
        help="the step-free Taylor test on the built-in MLP",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Taylor test: the remainder |J(theta + h d) - J(theta) - h g.d| must "
                    "fall like h^2 when the gradient is right (rate 2) and like h when "
                    "it is wrong (rate 1).",
        epilog="bugs (--bug NAME):\n" + _bug_lines() + "\n\nexamples:\n"
               "  fastcheck taylor\n  fastcheck taylor --size L --bug one-element",
    )
    taylor.add_argument("--size", default="S", choices=["S", "M", "L", "SQ"],
                        help="network size (default S)")
    taylor.add_argument("--bug", default=None, metavar="NAME",
                        help="inject a classic backprop bug (see the list below)")
    taylor.add_argument("--seed", type=int, default=0,
                        help="seed of the data and the direction")
    taylor.add_argument("--json", action="store_true", help="print the result as JSON")
    taylor.add_argument("--plot", default=None, metavar="FILE.png",
                        help="save the log-log plot of the remainders to FILE")
    add_check_parser(sub)
    return parser


def run_taylor(ns: argparse.Namespace) -> int:
    """``fastcheck taylor``: the Taylor test on the built-in network."""
    import fastcheck as fc

    from .models import BUGS, make_mlp

    if ns.bug is not None and ns.bug not in BUGS:
        print(f"fastcheck taylor: error: unknown --bug {ns.bug!r}; choose one of "
              f"{', '.join(BUGS)}", file=sys.stderr)
        return EXIT_USAGE
    model = make_mlp(ns.size, bug=ns.bug, seed=ns.seed)
    result = fc.taylor_test(model.cost, model.grad, model.theta, model.args,
                            layout=model.layout, seed=ns.seed)
    _show(ns, model, result)
    return EXIT_PASS if result.passed else EXIT_FAIL


def _show(ns: argparse.Namespace, model, result) -> None:
    """Print a demo or taylor result (text or ``--json``) and save ``--plot``."""
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


def run_bench(ns: argparse.Namespace) -> int:
    """``fastcheck bench``: time the built-in network and print the table."""
    from ._bench import run_bench as bench

    sample = None if ns.sample == "all" else ns.sample
    result = bench(ns.size, sample=sample, rounds=ns.rounds, threads=ns.threads)
    print(json.dumps(result.to_dict()) if ns.json else result.summary())
    return EXIT_PASS


def _eps(text: str) -> float | str:
    if text == "auto":
        return text
    return float(text)


@contextlib.contextmanager
def _dask_client(backend: str, scheduler: str | None):
    """The client of ``--backend dask`` (None for other backends): connected to
    ``scheduler``, or to a local cluster of 2 worker processes closed after the run."""
    if backend != "dask":
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("--backend dask needs dask.distributed, which is not installed: "
                          'pip install "fastcheck[dask]"') from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=10)
        except OSError as exc:
            raise ValueError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def run_demo(ns: argparse.Namespace) -> int:
    """``fastcheck demo``: check the built-in network and print the report."""
    import fastcheck as fc

    from .models import BUGS, make_mlp

    if ns.bug is not None and ns.bug not in BUGS:
        print(f"fastcheck demo: error: unknown --bug {ns.bug!r}; choose one of "
              f"{', '.join(BUGS)}", file=sys.stderr)
        return EXIT_USAGE
    if ns.scheduler is not None and ns.backend != "dask":
        print("fastcheck demo: error: --scheduler needs --backend dask", file=sys.stderr)
        return EXIT_USAGE
    model = make_mlp(ns.size, bug=ns.bug, seed=ns.seed)
    progress = sys.stderr.isatty() if ns.progress is None else ns.progress
    cost = model.cost
    if ns.method == "complex" and ns.backend in ("auto", "serial", "threads"):
        from .models import cost_python

        cost = cost_python  # the njit model preallocates float64 buffers: not complex-safe
    with _dask_client(ns.backend, ns.scheduler) as client:
        report = fc.check(cost, model.grad, model.theta, model.args, method=ns.method,
                          layout=model.layout, eps=_eps(ns.eps), sample=ns.sample,
                          seed=ns.seed, backend=ns.backend, threads=ns.threads,
                          progress=progress, client=client, mode=ns.mode)
    _show(ns, model, report)
    return EXIT_PASS if report.passed else EXIT_FAIL


COMMANDS = {"demo": run_demo, "check": run_check, "bench": run_bench, "taylor": run_taylor}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastcheck`` command; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[ns.command](ns)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"fastcheck {ns.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastcheck: interrupted", file=sys.stderr)
        return 130
