"""``fastcheck demo``: check the built-in network (optionally with an injected bug)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from .common import (
    EXIT_FAIL,
    EXIT_PASS,
    add_backend,
    add_bug,
    bug_lines,
    eps,
    fail,
    integer,
    positive_int,
    sample,
    show,
    sub_parser,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``demo`` to the ``fastcheck`` parser's subparsers."""
    demo = sub_parser(
        subparsers, "demo",
        help="check the built-in MLP (optionally with an injected bug)",
        description="Check the gradient of the built-in multilayer perceptron (numba, "
                    "ReLU, softmax cross-entropy + L2) and print the report.",
        epilog="bugs (--bug NAME):\n" + bug_lines() + "\n\nexamples:\n  fastcheck demo\n"
               "  fastcheck demo --size M --bug sign-flip\n"
               "  fastcheck demo --size L --sample 0.02 --threads 2",
    )
    demo.add_argument("--model", choices=["mlp"], default="mlp", help="built-in model")
    demo.add_argument("--size", default="S", choices=["S", "M", "L", "SQ"],
                      help="network size: S [20,16,8,3], M [64,64,32,10], "
                           "L [784,128,64,10], SQ [16,16,16,4] (default S)")
    add_bug(demo)
    demo.add_argument("--sample", type=sample, default=None, metavar="N|FRACTION|auto",
                      help="check N components, or this fraction of them, or auto: sample "
                           "until a failure or a small failure-rate bound")
    demo.add_argument("--seed", type=integer, default=0, help="seed of the data and the sample")
    demo.add_argument("--threads", type=positive_int, default=None, metavar="K",
                      help="worker threads (default: all cores)")
    add_backend(demo, "evaluation backend (default auto: numba for the njit model)")
    demo.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="with --backend dask: the scheduler, e.g. tcp://scheduler-host:8786 "
                           "(default: a local cluster of 2 worker processes for this run)")
    demo.add_argument("--eps", type=eps, default="auto",
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
    return demo


@contextlib.contextmanager
def dask_client(backend: str, scheduler: str | None) -> Iterator[Any]:
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


def run(ns: argparse.Namespace) -> int:
    """``fastcheck demo``: check the built-in network and print the report."""
    import fastcheck as fc

    from ..models import make_mlp

    if ns.scheduler is not None and ns.backend != "dask":
        return fail("demo", "--scheduler needs --backend dask")
    model = make_mlp(ns.size, bug=ns.bug, seed=ns.seed)
    progress = sys.stderr.isatty() if ns.progress is None else ns.progress
    cost = model.cost
    if ns.method == "complex" and ns.backend in ("auto", "serial", "threads"):
        from ..models import cost_python

        cost = cost_python  # the njit model preallocates float64 buffers: not complex-safe
    with dask_client(ns.backend, ns.scheduler) as client:
        report = fc.check(cost, model.grad, model.theta, model.args, method=ns.method,
                          layout=model.layout, eps=ns.eps, sample=ns.sample,
                          seed=ns.seed, backend=ns.backend, threads=ns.threads,
                          progress=progress, client=client, mode=ns.mode)
    show(ns, model, report)
    return EXIT_PASS if report.passed else EXIT_FAIL
