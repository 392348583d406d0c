"""``fastcheck check``: check the user's own cost and gradient functions from the shell.

Loads ``MODULE:FUNCTION`` specs (a dotted module importable from the current directory,
or a path to a ``.py`` file), the params and extra arguments from ``.npz`` archives,
runs ``fc.check`` and prints the report. Every input problem is one line on stderr and
exit status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import sys
import traceback
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .common import (
    EXIT_FAIL,
    EXIT_PASS,
    EXIT_STATUS_TEXT,
    add_backend,
    eps,
    fail,
    integer,
    real,
    sample,
    sub_parser,
)

#: Name of the single 1-D array of an archive that holds a flat parameter vector.
FLAT_KEY = "theta"

_POSITIONAL = re.compile(r"arr_(\d+)")
_PACKAGE = Path(__file__).resolve().parent.parent  # fastcheck/

DESCRIPTION = """\
Check the gradient of your own functions: COST and GRAD are MODULE:FUNCTION, where
MODULE is a dotted module importable from the current directory (mypkg.net) or a path
to a .py file (examples/tiny_net.py); FUNCTION may be an attribute path (model.loss).
GRAD may also be the word true: COST then returns (loss, grads).

The functions are called as cost(params, *args) and grad(params, *args).

--params FILE.npz: each array of the archive is a block of params, named by its key
  (np.savez(f, W1=W1, b1=b1, ...)): params is a dict and the report names the blocks.
  An archive holding a single 1-D array named "theta" is a flat vector instead.
--args FILE.npz: the extra positional arguments, in this order: first the arrays saved
  without a name (np.savez(f, X, Y) stores arr_0, arr_1, ...), by their number; then the
  named arrays in the order they were saved (np.savez(f, X=X, Y=Y) gives X, Y; it is the
  order of the archive, which np.load keeps). A 0-d array (np.savez(f, lam=0.1)) is
  passed as a Python scalar.
"""

EPILOG = """\
examples:
  fastcheck check examples/tiny_net.py:cost examples/tiny_net.py:backward \\
      --params examples/tiny_net_params.npz --args examples/tiny_net_args.npz
  fastcheck check mynet:loss true --params params.npz --args data.npz --json
  fastcheck check mynet.py:cost mynet.py:grad --params p.npz --sample 0.1 --seed 0

""" + EXIT_STATUS_TEXT


class InputError(Exception):
    """A problem with what was given on the command line (one line, exit 2)."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``check`` to the ``fastcheck`` parser's subparsers."""
    p = sub_parser(subparsers, "check", help="check your own cost and gradient functions",
                   description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("cost", metavar="MODULE:COST", help="the cost function")
    p.add_argument("grad", metavar="MODULE:GRAD",
                   help="the gradient function, or true when COST returns (loss, grads)")
    p.add_argument("--params", required=True, metavar="FILE.npz",
                   help="the parameters (keys = block names)")
    p.add_argument("--args", default=None, metavar="FILE.npz",
                   help="extra positional arguments of cost and grad (order: see above)")
    p.add_argument("--eps", type=eps, default="auto",
                   help='finite-difference step: "auto" (default) or a float such as 1e-7')
    p.add_argument("--sample", type=sample, default=None, metavar="N|FRACTION|auto",
                   help="check N components, or this fraction of them, or auto: sample "
                        "until a failure or the failure-rate bound is below --target-rate "
                        "(default: all)")
    p.add_argument("--seed", type=integer, default=None, help="seed of the sample")
    add_backend(p, "evaluation backend (default auto: numba for an @njit cost on a flat "
                   "vector, else serial)")
    p.add_argument("--threads", type=integer, default=None, metavar="K",
                   help="worker threads (default: all cores)")
    p.add_argument("--rtol", type=real, default=1e-5,
                   help="per-component relative tolerance (default 1e-5)")
    p.add_argument("--confidence", type=real, default=0.95,
                   help="level of the failure-rate bound of a sample (default 0.95)")
    p.add_argument("--target-rate", type=real, default=1e-3,
                   help="with --sample auto: the failure rate to bound (default 1e-3)")
    p.add_argument("--max-failures", type=integer, default=None, metavar="K",
                   help="stop once K failing components are confirmed (default: no limit)")
    p.add_argument("--method", default="central", choices=["central", "richardson", "complex"],
                   help="finite differences: central (default), richardson (O(h^4)), or the "
                        "complex step (exact, for a cost that accepts complex input)")
    p.add_argument("--mode", default="full", choices=["full", "directional"],
                   help="full (default): every (sampled) component; directional: a few "
                        "random directions, then group testing to localize bad components")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error instead of one line")
    return p


# -- loading the user's functions -----------------------------------------------------------
def _is_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def _import_file(path_text: str, cache: dict[str, ModuleType]) -> ModuleType:
    path = Path(path_text)
    if not path.is_file():
        raise InputError(f"no such file: {path_text}")
    key = str(path.resolve())
    if key in cache:
        return cache[key]
    known = sys.modules.get(path.stem)
    known_file = getattr(known, "__file__", None)
    if known is not None and known_file and str(Path(known_file).resolve()) == key:
        cache[key] = known
        return known
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # as `python file.py` does: its siblings are importable
        sys.path.insert(0, folder)
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules \
        else f"_fastcheck_user_{len(cache)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {path_text}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look the module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    cache[key] = module
    return module


def _import(module: str, cache: dict[str, ModuleType]) -> ModuleType:
    """The module ``module`` (dotted name or .py path); import errors as InputError."""
    try:
        if _is_path(module):
            return _import_file(module, cache)
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        importlib.invalidate_caches()  # a module written a moment ago
        return importlib.import_module(module)
    except InputError:
        raise
    except SystemExit as exc:
        raise InputError(f"cannot import {module}: it called sys.exit({exc.code!r}) while "
                         f"being imported; put script code under "
                         f"if __name__ == '__main__':") from exc
    except Exception as exc:
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and exc.name == module.split(".")[0]:
            hint = " (run fastcheck from the folder that contains it, or give the .py path)"
        raise InputError(f"cannot import {module}: {_one_line(exc)}{hint}") from exc


def load_function(spec: str, what: str, cache: dict[str, ModuleType]) -> Any:
    """The callable named by ``MODULE:FUNCTION`` (``what`` is COST or GRAD, for errors)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        alternative = " or true (COST returns (loss, grads))" if what == "GRAD" else ""
        raise InputError(f"{what} must be MODULE:FUNCTION (e.g. mynet.py:{what.lower()})"
                         f"{alternative}, got {spec!r}")
    module = _import(module_name, cache)
    obj: Any = module
    for k, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            where = module_name if k == 0 else f"{module_name}:{'.'.join(attr.split('.')[:k])}"
            names = sorted(n for n, v in vars(obj).items() if callable(v)
                           and not n.startswith("_")) if hasattr(obj, "__dict__") else []
            listed = f"; it has {', '.join(names[:15])}" if names else ""
            raise InputError(f"{where} has no {part!r}{listed}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"{spec} is not a function (it is a {type(obj).__name__})")
    return obj


# -- loading arrays -------------------------------------------------------------------------
def _load_npz(path_text: str, option: str) -> dict[str, Any]:
    """The arrays of an .npz archive, in archive order, read eagerly."""
    path = Path(path_text)
    if not path.is_file():
        raise InputError(f"{option}: no such file: {path_text}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):  # what np.load says of a file that is neither .npz nor .npy
            raise InputError(f"{option}: {path_text} is not an .npz archive (write one with "
                             f"np.savez)") from exc
        raise InputError(f"{option}: cannot read {path_text}: {_one_line(exc)}") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{option}: cannot read {path_text}: {_one_line(exc)}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError(f"{option}: {path_text} holds a single array (.npy), not an .npz "
                         f"archive; write one with np.savez(file, name=array)")
    try:
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except Exception as exc:  # a damaged member: bad CRC, truncated data, object arrays
        raise InputError(f"{option}: cannot read {path_text}: {_one_line(exc)}") from exc
    if not arrays:
        raise InputError(f"{option}: {path_text} holds no arrays")
    return arrays


def load_params(path_text: str) -> np.ndarray | dict[str, np.ndarray]:
    """``name -> array`` from the archive (or the flat vector of a lone 1-D ``theta``)."""
    arrays = _load_npz(path_text, "--params")
    if list(arrays) == [FLAT_KEY] and arrays[FLAT_KEY].ndim == 1:
        return arrays[FLAT_KEY]
    return arrays


def load_args(path_text: str) -> tuple:
    """The extra positional arguments: ``arr_0, arr_1, ...`` by number, then the named
    arrays in archive order; 0-d arrays as Python scalars."""
    arrays = _load_npz(path_text, "--args")
    positional = sorted((int(m.group(1)), key) for key in arrays
                        if (m := _POSITIONAL.fullmatch(key)))
    named = [key for key in arrays if not _POSITIONAL.fullmatch(key)]
    ordered = [arrays[key] for _, key in positional] + [arrays[key] for key in named]
    return tuple(a.item() if a.ndim == 0 else a for a in ordered)


# -- running --------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe_params(params: Any) -> str:
    if isinstance(params, dict):
        n = sum(int(np.size(a)) for a in params.values())
        return f"{len(params)} block(s) {', '.join(params)}; N = {n:,}"
    return f"flat theta; N = {params.size:,}"


def _check(ns: argparse.Namespace) -> int:
    import fastcheck as fc

    cache: dict[str, ModuleType] = {}
    cost = load_function(ns.cost, "COST", cache)
    grad: Any = True if ns.grad.lower() == "true" else load_function(ns.grad, "GRAD", cache)
    params = load_params(ns.params)
    args = load_args(ns.args) if ns.args is not None else ()
    progress = sys.stderr.isatty() if ns.progress is None else ns.progress
    report = fc.check(cost, grad, params, args, eps=ns.eps, sample=ns.sample, seed=ns.seed,
                      backend=ns.backend, threads=ns.threads, progress=progress,
                      rtol=ns.rtol, confidence=ns.confidence, target_rate=ns.target_rate,
                      max_failures=ns.max_failures, method=ns.method, mode=ns.mode)
    if ns.json:
        print(json.dumps(report.to_dict()))
    else:
        grad_text = "returned by cost" if grad is True else ns.grad
        print(f"cost {ns.cost}, grad {grad_text}, params {ns.params} "
              f"({_describe_params(params)})")
        print(report.summary())
    return EXIT_PASS if report.passed else EXIT_FAIL


def _innermost(exc: BaseException) -> tuple[str, int, str] | None:
    """File, line and function of the innermost frame of ``exc``'s traceback."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return code.co_filename, tb.tb_lineno, code.co_name


def _raised_by_fastcheck(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by fastcheck itself (not inside the user's code)."""
    where = _innermost(exc)
    return where is not None and Path(where[0]).resolve().is_relative_to(_PACKAGE)


def _user_error(exc: BaseException) -> str:
    """One line for an exception raised inside the user's code, with its place."""
    where = _innermost(exc)
    if where is None:
        return _one_line(exc)
    path = os.path.relpath(where[0])
    path = where[0] if path.startswith("..") else path
    return f"{_one_line(exc)} (in {where[2]}, {path}, line {where[1]})"


def _n_args(ns: argparse.Namespace) -> int:
    try:
        return len(load_args(ns.args)) if ns.args is not None else 0
    except InputError:
        return 0


def run(ns: argparse.Namespace) -> int:
    """``fastcheck check``: returns 0 pass, 1 failed check, 2 input error (one line)."""
    from ..errors import CostEvaluationError

    try:
        return _check(ns)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if ns.debug:
            traceback.print_exc()
        if isinstance(exc, InputError):
            message = str(exc)
        elif _raised_by_fastcheck(exc):  # fastcheck's messages name the argument
            message = " ".join(str(exc).split())
            if isinstance(exc, TypeError) and "positional argument" in message:
                message += (f" (cost and grad are called as f(params, *args), with "
                            f"{_n_args(ns)} argument(s) from --args)")
            if isinstance(exc, CostEvaluationError) and not ns.debug:
                message += "; --debug shows the traceback"
        else:  # raised inside the user's code
            message = _user_error(exc) + ("" if ns.debug else "; --debug shows the traceback")
        return fail("check", message)
