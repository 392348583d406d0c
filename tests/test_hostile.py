"""Hostile input and faults (issue 8): a clear error or an honest report, whatever comes in.

A gradient checker is used on broken code. The property-based tests below feed ``fc.check``,
``fc.Layout`` and the ``fastcheck`` command generated bad input -- wrong dtypes (int, bool,
float32, complex, object, strings), 0-d and empty blocks, Fortran-ordered, strided and
read-only arrays (valid float64 input that must work), NaN and inf in params or grad,
mismatched keys and shapes, costs that return arrays, None, NaN, inf or strings or raise
after k calls -- on the serial, threads and numba backends, and sort every outcome into one
of the documented ones:

- ``ValueError``, ``TypeError`` or a ``fc.FastcheckError`` raised by fastcheck itself (not
  from inside numba or numpy) whose message names the offending argument;
- the user's own exception, unchanged, when the user's cost or grad raised it at theta;
- ``KeyboardInterrupt`` only where the cost raised it, with ``exc.partial_report``;
- a Report, which never passes a wrong gradient or a non-finite value.

In every case the caller's arrays (params, grad, args) are bitwise unchanged (and keep
their flags), numba's thread count is restored, no fastcheck thread is left running, and a
watchdog turns a hang into a failure (it dumps every thread's stack to
``/tmp/fastcheck_hostile_hang.txt`` and ends the run).

Counts of the generated inputs per category and outcome are printed when the module ends
(visible with ``pytest -s``) and written to ``$FASTCHECK_FUZZ_SUMMARY`` (default
``/tmp/fastcheck_hostile_summary.txt``). ``make test`` runs bounded, derandomized example
counts; ``FASTCHECK_FUZZ_EXAMPLES=N`` (``make fuzz``) runs N random examples per category.

Outcomes marked ``KNOWN BUG`` are bugs outside the input boundary that are reported on
issue 8 and pinned by the ``xfail(strict=True)`` tests at the end of the module; the fuzz
tests count them instead of failing, and every other outcome must be a documented one.

Also here: non-finite evaluations on every backend, exceptions inside the numba kernel and
the thread pool, SIGINT during a long check (in a subprocess) and the memory of a sampled
check of 50M parameters.
"""

from __future__ import annotations

import contextlib
import decimal
import faulthandler
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba.core.errors import NumbaError
from threadpoolctl import threadpool_info

import fastcheck as fc
from fastcheck import cli

# -- configuration ----------------------------------------------------------------------------
#: Examples per category in ``make fuzz`` (0: the bounded defaults of ``make test``).
FUZZ = int(os.environ.get("FASTCHECK_FUZZ_EXAMPLES", "0") or 0)
SUMMARY_PATH = Path(os.environ.get("FASTCHECK_FUZZ_SUMMARY",
                                   "/tmp/fastcheck_hostile_summary.txt"))
HANG_PATH = Path("/tmp/fastcheck_hostile_hang.txt")
#: A single generated case taking longer than this is a hang.
CASE_TIMEOUT = 120.0

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "fastcheck"
HAS_CHECK_COMMAND = (PACKAGE / "_user_check.py").exists() and "check" in cli.COMMANDS
DOCUMENTED = (ValueError, TypeError, fc.FastcheckError)
JIT = not numba.config.DISABLE_JIT


def fuzz(default: int, *, slow: bool = False) -> settings:
    """Hypothesis settings: ``default`` examples, or ``FUZZ`` (a tenth for slow categories)."""
    n = default if not FUZZ else max(default, FUZZ // 10 if slow else FUZZ)
    return settings(max_examples=n, deadline=None, derandomize=not FUZZ, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


# -- the tally printed at the end -------------------------------------------------------------
TALLY: dict[str, Counter] = defaultdict(Counter)
#: Warnings that fastcheck's own modules emitted (not the user's cost), per category.
LEAKED_WARNINGS: dict[str, Counter] = defaultdict(Counter)


def record(category: str, outcome: str) -> str:
    """Count one generated input of ``category`` that ended in ``outcome``."""
    TALLY[category][outcome] += 1
    return outcome


def summary_table() -> str:
    """The counts per category and outcome as a text table."""
    lines = [f"fastcheck hostile-input suite: generated inputs per category and outcome "
             f"({'FASTCHECK_FUZZ_EXAMPLES=' + str(FUZZ) if FUZZ else 'bounded make-test run'})",
             "", f"{'category':<12} {'tried':>6}  outcomes"]
    total = Counter()
    for category in sorted(TALLY):
        counts = TALLY[category]
        total.update(counts)
        parts = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        lines.append(f"{category:<12} {sum(counts.values()):>6}  {parts}")
    undocumented = sum(v for k, v in total.items() if k.startswith("UNDOCUMENTED"))
    known = sum(v for k, v in total.items() if k.startswith("KNOWN BUG"))
    lines += ["", f"total {sum(total.values())} inputs: {undocumented} undocumented outcomes, "
                  f"{known} known-bug outcomes (pinned by xfail tests)"]
    for category in sorted(LEAKED_WARNINGS):
        parts = ", ".join(f"{k} x{v}" for k, v in LEAKED_WARNINGS[category].most_common())
        lines.append(f"warnings raised inside fastcheck ({category}): {parts}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module", autouse=True)
def _print_summary():
    """Write and print the tally when the module is done."""
    yield
    if TALLY:
        text = summary_table()
        with contextlib.suppress(OSError):
            SUMMARY_PATH.write_text(text)
        print("\n" + text)


# -- invariants shared by every case ----------------------------------------------------------
class UserBug(Exception):
    """What the hostile costs raise: an exception of the user's own."""


@contextlib.contextmanager
def watchdog(seconds: float = CASE_TIMEOUT):
    """End the run with every thread's stack if the block hangs."""
    with open(HANG_PATH, "w") as fh:
        faulthandler.dump_traceback_later(seconds, exit=True, file=fh)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()


def freeze(obj: Any) -> tuple:
    """A record of ``obj`` (arrays by value, flags and strides) for :func:`changes`."""
    if isinstance(obj, np.ndarray):
        return ("array", obj, obj.copy(), obj.dtype, obj.shape, obj.strides,
                obj.flags.writeable, obj.flags.f_contiguous)
    if isinstance(obj, Mapping):
        return ("mapping", obj, list(obj.keys()), [freeze(v) for v in obj.values()])
    if isinstance(obj, (list, tuple)):
        return ("seq", obj, len(obj), [freeze(v) for v in obj])
    return ("other", obj)


def changes(rec: tuple, path: str = "input") -> list[str]:
    """What changed in the object recorded by :func:`freeze` (empty: nothing)."""
    kind, obj = rec[0], rec[1]
    if kind == "array":
        _, _, copy, dtype, shape, strides, writeable, fortran = rec
        if (obj.dtype, obj.shape, obj.strides, obj.flags.writeable,
                obj.flags.f_contiguous) != (dtype, shape, strides, writeable, fortran):
            return [f"{path}: dtype, shape, strides or flags changed"]
        if dtype.kind == "O":
            same = all(a is b for a, b in zip(obj.flat, copy.flat))
        else:
            same = obj.tobytes() == copy.tobytes()
        return [] if same else [f"{path}: values changed"]
    if kind == "mapping":
        if list(obj.keys()) != rec[2]:
            return [f"{path}: keys changed"]
        return [c for k, r in zip(rec[2], rec[3]) for c in changes(r, f"{path}[{k!r}]")]
    if kind == "seq":
        if len(obj) != rec[2]:
            return [f"{path}: length changed"]
        return [c for i, r in enumerate(rec[3]) for c in changes(r, f"{path}[{i}]")]
    return []


def fastcheck_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("fastcheck")]


def blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def innermost_file(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename


def raised_by_fastcheck(exc: BaseException) -> bool:
    return Path(innermost_file(exc)).resolve().is_relative_to(PACKAGE)


@dataclass
class Outcome:
    """How one call ended: a Report (or other return value) or an exception."""

    report: fc.Report | None
    error: BaseException | None

    @property
    def label(self) -> str:
        return "report" if self.error is None else type(self.error).__name__


def attempt(category: str, call: Callable[[], Any], inputs: list, *,
            numba_case: bool = False) -> Outcome:
    """Run ``call`` under the watchdog and check the invariants every case shares:
    the inputs unchanged, numba's (and BLAS's) thread count restored, no thread left."""
    frozen = [freeze(x) for x in inputs]
    nb_threads = numba.get_num_threads()
    blas = blas_threads() if numba_case else None
    report = error = None
    with warnings.catch_warnings(record=True) as caught, watchdog():
        warnings.simplefilter("always")
        try:
            report = call()
        except BaseException as exc:  # sorted by the caller
            error = exc
    for w in caught:
        if Path(w.filename).resolve().is_relative_to(PACKAGE):
            LEAKED_WARNINGS[category][f"{w.category.__name__} '{str(w.message)[:40]}' "
                                      f"({Path(w.filename).name}:{w.lineno})"] += 1
    changed = [c for i, rec in enumerate(frozen) for c in changes(rec, f"input {i}")]
    assert not changed, f"fastcheck changed the caller's data: {changed}"
    assert numba.get_num_threads() == nb_threads, "numba's thread count was not restored"
    if blas is not None:
        assert blas_threads() == blas, "the BLAS thread limit was not restored"
    assert not fastcheck_threads(), f"threads left running: {fastcheck_threads()}"
    return Outcome(report, error)


def fail_undocumented(category: str, out: Outcome, why: str) -> None:
    record(category, f"UNDOCUMENTED {out.label}")
    raise AssertionError(f"{category}: {why}: {out.label}: {out.error!r}") from out.error


def expect_documented(category: str, out: Outcome, names: tuple[str, ...]) -> str:
    """Record and return the label of a documented error whose message names one of
    ``names``; anything else fails the test."""
    exc = out.error
    if exc is None:
        fail_undocumented(category, out, f"expected an error naming one of {names}")
    if isinstance(exc, NumbaError) or not isinstance(exc, DOCUMENTED):
        fail_undocumented(category, out, "not a documented exception")
    if not raised_by_fastcheck(exc):
        fail_undocumented(category, out, f"raised outside fastcheck ({innermost_file(exc)})")
    text = str(exc).lower()
    if not any(n.lower() in text for n in names):
        fail_undocumented(category, out, f"the message names none of {names}")
    return record(category, type(exc).__name__)


NONFINITE_PASS = "KNOWN BUG: non-finite value passed as ok"


def expect_honest(category: str, out: Outcome, *, wrong: np.ndarray | None = None,
                  correct: bool = False) -> str:
    """Record a Report after checking that it is honest.

    ``wrong``: flat indices whose analytic value is known to be wrong (each checked one
    must fail). ``correct``: the gradient is right and the cost smooth and finite, so the
    check must pass. A component called "ok" with a non-finite analytic or numeric value
    is the known verdict bug (see ``test_infinite_analytic_gradient_is_never_ok``).
    """
    rep = out.report
    if rep is None:
        fail_undocumented(category, out, "expected a report")
    failing = np.isin(rep.kinds, ("fail", "nonfinite"))
    assert rep.passed == (not failing.any()), "passed disagrees with the kinds"
    assert set(np.unique(rep.kinds)) <= {"ok", "kink", "fail", "nonfinite"}
    bad_values = ~(np.isfinite(rep.analytic) & np.isfinite(rep.numeric))
    lying = bad_values & np.isin(rep.kinds, ("ok", "kink"))
    if lying.any():
        return record(category, NONFINITE_PASS)
    if wrong is not None and wrong.size:
        hit = np.isin(rep.indices, wrong)
        if not np.all(failing[hit]):
            record(category, "UNDOCUMENTED silent pass of a wrong gradient")
            raise AssertionError(f"{category}: wrong components {rep.indices[hit & ~failing]} "
                                 f"passed:\n{rep.summary()}")
    if correct and not rep.passed:
        record(category, "UNDOCUMENTED false alarm")
        raise AssertionError(f"{category}: a correct gradient failed:\n{rep.summary()}")
    return record(category, "report: " + ("pass" if rep.passed else "fail"))


# -- a smooth cost on any params structure ----------------------------------------------------
def _coef(k: int) -> float:
    return 1.0 + 0.5 * k


def quad_cost(p, *args) -> float:
    """sum_k c_k * (sum x^2 + sum x) over the blocks (a flat vector is block 0)."""
    blocks = p.values() if isinstance(p, Mapping) else [p]
    return float(sum(_coef(k) * (np.sum(v * v) + np.sum(v)) for k, v in enumerate(blocks)))


def quad_grad_blocks(values: list[np.ndarray]) -> list[np.ndarray]:
    return [np.array(_coef(k) * (2.0 * v + 1.0), dtype=np.float64)
            for k, v in enumerate(values)]


def quad_grad(p, *args):
    if isinstance(p, Mapping):
        return dict(zip(p.keys(), quad_grad_blocks(list(p.values()))))
    return quad_grad_blocks([p])[0]


# -- category "params": hostile parameter arrays ----------------------------------------------
DTYPES = ["float64"] * 8 + [">f8", "float32", "float16", "int64", "int8", "bool",
                            "complex128", "object", "<U4"]
MEMORY = ["C"] * 3 + ["F", "strided", "readonly", "list", "scalar"]
POISON = [None] * 7 + ["nan", "inf", "-inf"]
NAMES = ["W1", "b1", "W2", "b2", "gamma", "", "ü", "d"]


@dataclass
class Block:
    """A generated block: the object handed to fastcheck and its float64 values."""

    name: Any
    obj: Any
    values: np.ndarray  # float64, as fastcheck should see it (NaN where poisoned)
    valid: bool  # float64 data (or a list/scalar of real numbers)


def make_block(draw, name) -> Block:
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = draw(st.sampled_from(DTYPES))
    memory = draw(st.sampled_from(MEMORY))
    poison = draw(st.sampled_from(POISON))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.array(np.round(rng.uniform(-3, 3, shape), 3), dtype=np.float64)
    if poison and values.size:
        values.flat[rng.integers(values.size)] = float(poison)
    if dtype in ("int64", "int8", "bool"):
        values = np.array(np.nan_to_num(np.round(values), posinf=3, neginf=-3))
    data = np.array(values, dtype=dtype)
    if dtype not in ("object", "complex128", "<U4"):
        values = np.array(data, dtype=np.float64)
    if memory == "F":
        data = np.asfortranarray(data)
    elif memory == "strided" and data.ndim:
        data = np.repeat(data, 2, axis=-1)[..., ::2]
    elif memory == "readonly":
        data = data.copy()
        data.flags.writeable = False
    elif memory == "list" or (memory == "scalar" and data.ndim == 0):
        data = data.tolist()
    if isinstance(data, np.ndarray):
        valid = data.dtype in (np.float64, np.dtype(">f8"), np.float32)  # float32: API.md
    elif isinstance(data, list):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind = np.asarray(data).dtype
        valid = kind.kind in "iu" or kind == np.float64
    else:  # a Python scalar from a 0-d array
        valid = isinstance(data, (int, float)) and not isinstance(data, bool)
    if valid:  # as fastcheck sees it (a nested list of an empty shape loses dimensions)
        values = np.array(data, dtype=np.float64)
    return Block(name, data, values, bool(valid))


@given(data=st.data())
@fuzz(150)
def test_fuzz_params(data):
    """Hostile params (dtype, shape, memory layout, NaN/inf, keys, layout=) on serial and
    threads: a TypeError/ValueError naming params (or layout), or an honest report."""
    draw = data.draw
    form = draw(st.sampled_from(["mapping", "mapping", "flat", "flat", "flat-nd", "other"]))
    backend = draw(st.sampled_from(["serial", "threads"]))
    threads = draw(st.integers(1, 3))
    layout: Any = None
    names = ("params",)
    if form == "mapping":
        keys = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
        if keys and draw(st.booleans()) and draw(st.booleans()):
            keys[draw(st.integers(0, len(keys) - 1))] = draw(st.sampled_from([1, None, (2,)]))
        blocks = [make_block(draw, k) for k in keys]
        params = {b.name: b.obj for b in blocks}
        valid = (bool(blocks) and all(b.valid for b in blocks)
                 and all(isinstance(b.name, str) for b in blocks)
                 and sum(b.values.size for b in blocks) > 0)
        if draw(st.integers(0, 9)) == 0:
            layout, names, valid = fc.Layout({"x": (1,)}), ("params", "layout"), False
    elif form in ("flat", "flat-nd"):
        block = make_block(draw, "theta")
        if form == "flat" and isinstance(block.obj, np.ndarray) and block.obj.ndim != 1:
            block.obj = block.obj.reshape(-1) if block.obj.flags.c_contiguous else block.obj
            block.values = block.values.reshape(-1) if block.obj.ndim == 1 else block.values
        blocks = [block]
        params = block.obj
        valid = (isinstance(params, np.ndarray) and block.valid and params.ndim == 1
                 and params.size > 0)
        choice = draw(st.sampled_from(["none"] * 4 + ["match", "size", "dict"]))
        if choice != "none" and isinstance(params, np.ndarray) and params.ndim == 1:
            n = params.size
            cut = draw(st.integers(0, n))
            if choice == "match":
                layout = fc.Layout({"head": (cut,), "tail": (1, n - cut)})
            elif choice == "size":
                layout, names, valid = fc.Layout({"x": (n + 1,)}), ("params", "layout"), False
            else:
                layout, names, valid = {"x": (n,)}, ("params", "layout"), False
    else:
        params = draw(st.sampled_from([None, "theta", 3.0, [1.0, 2.0], (1.0,), {1, 2}]))
        blocks, valid = [], False
    values = [b.values for b in blocks]
    finite = all(np.all(np.isfinite(v)) for v in values)
    wrong_at = None
    if valid and finite:  # the true gradient, maybe with one wrong component
        grads = quad_grad_blocks(values) if form == "mapping" else [
            quad_grad_blocks([values[0].reshape(-1)])[0]]
        if draw(st.booleans()):
            flat = np.concatenate([g.reshape(-1) for g in grads])
            wrong_at = np.array([draw(st.integers(0, flat.size - 1))])
            offsets = np.cumsum([0] + [g.size for g in grads])
            b = int(np.searchsorted(offsets, wrong_at[0], side="right") - 1)
            grads[b].reshape(-1)[wrong_at[0] - offsets[b]] += 0.5
        if form == "mapping":
            prefix = draw(st.sampled_from(["", "d"]))
            grad = {prefix + b.name: g for b, g in zip(blocks, grads)}
        else:
            grad = grads[0]
    else:
        grad = np.zeros(3)
    out = attempt("params", lambda: fc.check(quad_cost, grad, params, layout=layout,
                                             backend=backend, threads=threads),
                  [params, grad])
    if not valid:
        expect_documented("params", out, names)
    elif not finite:
        expect_documented("params", out, ("params",))
        assert "finite" in str(out.error)
    else:
        expect_honest("params", out, wrong=wrong_at, correct=wrong_at is None)


# -- category "grad": hostile analytic gradients ----------------------------------------------
GRAD_MODES = ["right", "right", "wrong", "extra-keys", "missing-key", "transposed",
              "flattened-block", "wrong-shape", "dtype", "list", "nan", "inf", "none",
              "string", "scalar", "false", "flat-for-mapping", "both-keys"]


def valid_params(draw) -> tuple[Any, list[np.ndarray], list[str] | None]:
    """Moderate float64 params (mapping or flat, any memory layout) and their values."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    memory = draw(st.sampled_from(["C", "F", "strided", "readonly"]))

    def shaped(shape):
        a = np.array(np.round(rng.uniform(-3, 3, shape), 3), dtype=np.float64)
        if memory == "F":
            a = np.asfortranarray(a)
        elif memory == "strided" and a.ndim:
            a = np.repeat(a, 2, axis=-1)[..., ::2]
        elif memory == "readonly":
            a.flags.writeable = False
        return a

    if draw(st.booleans()):
        n = draw(st.integers(1, 12))
        theta = shaped((n,))
        return theta, [np.array(theta)], None
    names = draw(st.lists(st.sampled_from(["W1", "b1", "W2", "s"]), min_size=1, max_size=3,
                          unique=True))
    shapes = {"W1": (2, 3), "b1": (3,), "W2": (3, 1), "s": ()}
    params = {k: shaped(shapes[k]) for k in names}
    return params, [np.array(v) for v in params.values()], names


def hostile_grad_value(draw, mode: str, grads: list[np.ndarray], names):
    """The gradient in hostile ``mode``; returns (grad, expected, wrong flat indices)."""
    flat = np.concatenate([g.reshape(-1) for g in grads])
    key = (lambda n: n) if draw(st.booleans()) else (lambda n: "d" + n)
    pick = draw(st.integers(0, flat.size - 1))
    if names is None:  # flat params
        value = flat.copy()
        if mode == "wrong":
            value[pick] += 0.5
            return value, "report", np.array([pick])
        if mode in ("nan", "inf"):
            value[pick] = np.nan if mode == "nan" else -np.inf
            return value, "nonfinite", np.array([pick])
        if mode == "wrong-shape":
            return np.append(value, 1.0), "error", None
        if mode == "dtype":
            return value.astype(draw(st.sampled_from(["float32", "complex128", "object"]))), \
                "error", None
        if mode == "list":
            return value.tolist(), "report", None
        if mode in ("extra-keys", "flat-for-mapping", "both-keys"):
            return {key("theta"): value, "dZ1": np.ones(2)}, "report", None
        if mode == "missing-key":
            return {"dW1": value}, "error", None
        if mode in ("transposed", "flattened-block"):
            return value.reshape(1, -1), "error", None
        return {"none": None, "string": "2*theta", "scalar": 1.0, "false": False}.get(
            mode, value), ("report" if mode == "right" else "error"), None
    blocks = dict(zip(names, grads))
    value = {key(n): g.copy() for n, g in blocks.items()}
    first = names[0]
    if mode == "wrong":
        offsets = np.cumsum([0] + [g.size for g in grads])
        b = int(np.searchsorted(offsets, pick, side="right") - 1)
        value[key(names[b])].reshape(-1)[pick - offsets[b]] += 0.5
        return value, "report", np.array([pick])
    if mode in ("nan", "inf"):
        g = value[key(first)]
        if g.ndim == 0:
            value[key(first)] = np.array(np.nan if mode == "nan" else np.inf)
        else:
            g.reshape(-1)[0] = np.nan if mode == "nan" else np.inf
        return value, "nonfinite", np.array([0])
    if mode == "extra-keys":
        value.update({"dZ1": np.ones(5), "cache": "anything", 7: None})
        return value, "report", None
    if mode == "missing-key":
        del value[key(first)]
        return value, "error", None
    if mode == "transposed":
        w = blocks.get("W1")
        if w is None:
            return value, "report", None
        value[key("W1")] = w.T.copy()
        return value, "error", None
    if mode == "flattened-block":
        value[key(first)] = np.atleast_1d(blocks[first]).reshape(-1).copy()
        return value, "report", None
    if mode == "wrong-shape":
        value[key(first)] = np.zeros(blocks[first].shape + (2,))
        return value, "error", None
    if mode == "dtype":
        dtype = draw(st.sampled_from(["float32", "int64", "complex128", "bool", "object"]))
        value[key(first)] = blocks[first].astype(dtype)
        return value, "error", None
    if mode == "list":
        value[key(first)] = blocks[first].tolist()
        return value, "report", None
    if mode == "flat-for-mapping":
        return flat.copy(), "report", None
    if mode == "both-keys":  # the plain name wins over the d-prefixed one
        value = {n: g.copy() for n, g in blocks.items()}
        value.update({"d" + n: np.zeros_like(g) for n, g in blocks.items()})
        return value, "report", None
    return {"none": None, "string": "dW1", "scalar": 1.0, "false": False,
            "right": value}[mode], ("report" if mode == "right" else "error"), None


@given(data=st.data())
@fuzz(150)
def test_fuzz_grad(data):
    """Hostile gradients (keys, shapes, dtypes, NaN/inf, None, strings), given as an array,
    as a callable or returned by the cost (grad=True): an error naming grad, or an honest
    report that fails every wrong or non-finite component."""
    draw = data.draw
    params, values, names = valid_params(draw)
    grads = quad_grad_blocks(values) if names else [quad_grad_blocks(values)[0]]
    mode = draw(st.sampled_from(GRAD_MODES))
    value, expected, wrong = hostile_grad_value(draw, mode, grads, names)
    how = draw(st.sampled_from(["value", "callable", "cost-returns", "callable-raises"]))
    cost: Callable = quad_cost
    grad: Any = value
    if how == "callable":
        def grad(p, *args):
            return value
    elif how == "callable-raises":
        def grad(p, *args):
            raise UserBug("grad is broken")
    elif how == "cost-returns":
        def cost(p, *args):
            return quad_cost(p), value
        grad = True
    backend = draw(st.sampled_from(["serial", "threads"]))
    out = attempt("grad", lambda: fc.check(cost, grad, params, backend=backend, threads=2),
                  [params, value])
    if how == "callable-raises":
        if not isinstance(out.error, UserBug):
            fail_undocumented("grad", out, "expected the user's own exception from grad")
        record("grad", "user's exception (grad at theta)")
    elif how == "cost-returns" and mode == "false":
        expect_documented("grad", out, ("grad",))
    elif expected == "error":
        expect_documented("grad", out, ("grad",))
    elif expected == "nonfinite":
        label = expect_honest("grad", out)
        if label != NONFINITE_PASS:
            rep = out.report
            assert not rep.passed
            assert rep.kinds[np.searchsorted(rep.indices, wrong[0])] == "nonfinite"
    else:
        expect_honest("grad", out, wrong=wrong, correct=wrong is None)


# -- category "cost": costs that return the wrong thing or raise after k calls ----------------
COST_BEHAVIOURS = ["array2", "array0", "array1", "none", "nan", "inf", "-inf", "string",
                   "complex", "bool", "float32", "bigint", "decimal", "tuple", "raise",
                   "value-error", "keyboard", "mutate", "drift"]


def hostile_cost(behaviour: str, after: int, base: Callable) -> Callable:
    """``base`` for the first ``after`` calls, then ``behaviour``."""
    lock = threading.Lock()
    calls = [0]

    def cost(p, *args):
        with lock:
            calls[0] += 1
            k = calls[0]
        value = base(p)
        if k <= after:
            return value
        if behaviour == "raise":
            raise UserBug(f"cost is broken (call {k})")
        if behaviour == "value-error":
            raise ValueError("math domain error")
        if behaviour == "keyboard":
            raise KeyboardInterrupt
        if behaviour == "mutate":
            (next(iter(p.values())) if isinstance(p, Mapping) else p)[...] *= 1.5
            return value
        if behaviour == "drift":
            return value + 1e-3 * k
        return {"array2": np.array([value, value]), "array0": np.array([]),
                "array1": np.array([value]), "none": None, "nan": float("nan"),
                "inf": float("inf"), "-inf": float("-inf"), "string": "1.0",
                "complex": complex(value, 1.0), "bool": True, "float32": np.float32(value),
                "bigint": 10**400, "decimal": decimal.Decimal(1), "tuple": (value,)}[behaviour]

    cost.calls = calls  # type: ignore[attr-defined]
    return cost


def mutated(cat: str, out: Outcome) -> None:
    """A cost that wrote into its theta: caught ("modified"), or -- when it only changed
    the component being perturbed, which the backend restores anyway -- harmless."""
    if out.error is None:
        expect_honest(cat, out)
    else:
        expect_documented(cat, out, ("modified",))


@given(data=st.data())
@fuzz(150)
def test_fuzz_cost(data):
    """Costs that misbehave from call k on (wrong return types, NaN/inf, raising, Ctrl-C,
    writing into theta, drifting): at theta an error naming cost (or the user's own
    exception), later a CostEvaluationError naming the component, a KeyboardInterrupt with
    a partial report, or an honest report that never passes a non-finite value."""
    draw = data.draw
    params, values, names = valid_params(draw)
    behaviour = draw(st.sampled_from(COST_BEHAVIOURS))
    after = draw(st.sampled_from([0, 1, 2, 3, 4, 7, 12, 30]))
    backend = draw(st.sampled_from(["serial", "threads"]))
    returns_grad = draw(st.integers(0, 4)) == 0
    cost = hostile_cost(behaviour, after, quad_cost)
    calls = cost.calls
    grad: Any = quad_grad
    if returns_grad:
        inner = cost

        def cost(p, *args):
            return inner(p), quad_grad(p)
        grad = True
    out = attempt("cost", lambda: fc.check(cost, grad, params, backend=backend, threads=2),
                  [params])
    exc, cat = out.error, "cost"
    bad_type = behaviour in ("array2", "array0", "none", "string", "complex", "bool",
                             "float32", "decimal", "tuple")
    nonfinite = behaviour in ("nan", "inf", "-inf", "bigint")
    if after == 0:  # at theta, first evaluation
        if behaviour in ("raise", "value-error", "keyboard"):
            if not isinstance(exc, (UserBug, ValueError, KeyboardInterrupt)) \
                    or raised_by_fastcheck(exc):
                fail_undocumented(cat, out, "expected the user's own exception at theta")
            record(cat, f"user's {type(exc).__name__} (cost at theta)")
        elif (bad_type and behaviour != "float32") or nonfinite or behaviour == "drift":
            expect_documented(cat, out, ("cost",))  # a float32 cost is checked (API.md)
        elif behaviour == "mutate":  # harmless on fastcheck's copies at theta, then caught
            mutated(cat, out)
        else:
            expect_honest(cat, out, correct=True)
        return
    if after == 1:  # the second evaluation at theta
        if behaviour in ("raise", "value-error", "keyboard"):
            if not isinstance(exc, (UserBug, ValueError, KeyboardInterrupt)) \
                    or raised_by_fastcheck(exc):
                fail_undocumented(cat, out, "expected the user's own exception at theta")
            record(cat, f"user's {type(exc).__name__} (cost at theta)")
        elif bad_type or nonfinite or behaviour == "drift":
            expect_documented(cat, out, ("cost",))
        elif behaviour == "mutate":
            mutated(cat, out)
        else:
            expect_honest(cat, out, correct=True)
        return
    # from the perturbed points on (the check may also finish before call `after`)
    if exc is None:
        label = expect_honest(cat, out, correct=behaviour in ("array1",))
        if nonfinite and label != NONFINITE_PASS and calls[0] > after:
            assert not out.report.passed, "a non-finite evaluation passed"
        return
    if isinstance(exc, KeyboardInterrupt):
        if behaviour != "keyboard":
            fail_undocumented(cat, out, "KeyboardInterrupt that nobody raised")
        rep = getattr(exc, "partial_report", None)
        assert isinstance(rep, fc.Report), "no partial report on the KeyboardInterrupt"
        assert "KeyboardInterrupt" in rep.stop_reason
        record(cat, "KeyboardInterrupt + partial report")
        return
    if backend == "threads" and isinstance(exc, fc.ThreadSafetyError):
        record(cat, "ThreadSafetyError")  # the cost changed between calls: honest
        return
    if isinstance(exc, fc.CostEvaluationError):
        assert exc.name and exc.name in str(exc) and exc.flat_index >= 0
        assert isinstance(exc.partial_report, fc.Report)
        if behaviour in ("raise", "value-error"):
            assert isinstance(exc.__cause__, (UserBug, ValueError))
        record(cat, "CostEvaluationError")  # names the component
        return
    if behaviour == "mutate":
        mutated(cat, out)
        return
    fail_undocumented(cat, out, "unexpected error at a perturbed point")


# -- category "options": hostile keyword options ----------------------------------------------
OPTION_VALUES = {
    "eps": ["auto", 1e-6, 0.0, -1e-7, float("nan"), float("inf"), "big", None, True, 1j,
            np.float32(1e-5), [1e-6]],
    "sample": [None, 2, 0.5, 1.0, 0, -1, 10**9, 0.0, 1.5, float("nan"), "auto", "all",
               True, np.int64(3), np.float64(0.3), [2]],
    "seed": [None, 0, 7, -1, 2**70, 1.5, "x", True, np.int64(5)],
    "rtol": [1e-5, 1e-3, 0, -1.0, float("nan"), float("inf"), "1e-5", None, True],
    "threads": [None, 1, 2, 0, -3, 1.5, "2", True, np.int32(2), 64],
    "backend": ["auto", "serial", "threads", "gpu", "SERIAL", None, 3],
    "confidence": [0.95, 0.5, 0.0, 1.0, 2, float("nan"), "high", None],
    "target_rate": [1e-3, 0.1, 0.0, 1.0, -0.5, float("nan"), "low"],
    "max_failures": [None, 1, 3, 0, -2, 1.5, "1", True],
    "client": [None, object()],
}


@given(data=st.data())
@fuzz(120)
def test_fuzz_options(data):
    """Hostile keyword options: an error naming the option, or an honest report."""
    draw = data.draw
    chosen = {k: draw(st.sampled_from(v)) for k, v in OPTION_VALUES.items()
              if draw(st.integers(0, 2)) == 0}
    theta = np.linspace(-1.0, 1.0, 7)
    wrong = draw(st.booleans())
    grad = quad_grad(theta) + np.where(np.arange(7) == 3, 0.5 if wrong else 0.0, 0.0)
    out = attempt("options", lambda: fc.check(quad_cost, grad, theta, **chosen),
                  [theta, grad])
    if out.error is not None:
        expect_documented("options", out, tuple(chosen) or ("?",))
    else:
        full = out.report.n_checked == 7
        expect_honest("options", out, wrong=np.array([3]) if wrong else None,
                      correct=not wrong and full)


# -- category "numba": the parallel kernel ------------------------------------------------------
@numba.njit
def nb_hostile(x, w, where, limit, mode):
    """sum(w x^2 + x), except where ``x[where] > limit``: mode 1 raises, 2 returns NaN,
    3 returns inf (mode 0: never)."""
    if mode > 0 and x[where] > limit:
        if mode == 1:
            raise ValueError("hostile cost")
        if mode == 2:
            return np.nan
        return np.inf
    return np.sum(w * x * x) + np.sum(x)


def nb_grad(x, w, where, limit, mode):
    return 2.0 * w * x + 1.0


def auto_step(v: float) -> float:
    return np.finfo(np.float64).eps ** (1 / 3) * max(1.0, abs(v))


@given(data=st.data())
@fuzz(40, slow=True)
def test_fuzz_numba(data):
    """The numba backend with a cost that raises, returns NaN or inf at theta + h of one
    component (or at theta), wrong and non-finite gradients, strided and read-only params,
    layouts, samples and thread counts: the documented outcome, numba's thread count and
    BLAS limits restored."""
    draw = data.draw
    n = draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    theta = np.round(rng.uniform(-2, 2, 2 * n), 3)[::2] if draw(st.booleans()) else \
        np.round(rng.uniform(-2, 2, n), 3)
    if draw(st.booleans()):
        theta.flags.writeable = False
    w = rng.uniform(0.5, 2.0, n)
    mode = draw(st.sampled_from([0, 0, 1, 2, 3]))
    where = draw(st.integers(0, n - 1))
    trigger = draw(st.sampled_from(["plus", "plus", "theta"]))
    limit = theta[where] + auto_step(theta[where]) / 2 if trigger == "plus" else -np.inf
    args = (w, where, float(limit), mode)
    grad = nb_grad(np.array(theta), *args)
    gmode = draw(st.sampled_from(["right", "right", "wrong", "nan", "callable", "short"]))
    wrong = None
    pick = draw(st.integers(0, n - 1))
    if gmode == "wrong":
        grad[pick] += 0.5
        wrong = np.array([pick])
    elif gmode == "nan":
        grad[pick] = np.nan
    elif gmode == "short":
        grad = grad[:-1]
    cut = draw(st.integers(0, n))
    layout = fc.Layout({"A": (cut,), "B": (n - cut, 1)}) if draw(st.booleans()) else None
    sample = draw(st.sampled_from([None, None, max(1, n // 2)]))
    if sample is not None and layout is not None:
        sample = max(sample, int(cut > 0) + int(cut < n))
    threads = draw(st.sampled_from([None, 1, 2, 3]))
    g = nb_grad if gmode == "callable" else grad
    out = attempt("numba", lambda: fc.check(nb_hostile, g, theta, args, backend="numba",
                                            threads=threads, layout=layout, sample=sample,
                                            seed=0), [theta, grad, args], numba_case=True)
    exc, cat = out.error, "numba"
    if mode and trigger == "theta":  # the cost at theta is evaluated before grad is read
        if mode == 1:
            if not isinstance(exc, ValueError) or raised_by_fastcheck(exc):
                fail_undocumented(cat, out, "expected the user's own exception at theta")
            record(cat, "user's ValueError (cost at theta)")
        else:
            expect_documented(cat, out, ("cost",))
    elif gmode == "short":
        expect_documented(cat, out, ("grad",))
    elif mode == 1 and exc is not None:
        if not isinstance(exc, fc.CostEvaluationError) or exc.flat_index != where:
            fail_undocumented(cat, out, f"expected a CostEvaluationError at {where}")
        label = layout.label(where) if layout is not None else f"theta[{where}]"
        assert label in str(exc) and exc.name == label
        record(cat, "CostEvaluationError")
    else:
        label = expect_honest(cat, out, wrong=wrong,
                              correct=mode == 0 and gmode in ("right", "callable"))
        rep = out.report
        checked = where in rep.indices
        if label != NONFINITE_PASS and mode in (2, 3) and checked:
            assert rep.kinds[np.searchsorted(rep.indices, where)] == "nonfinite"
        if label != NONFINITE_PASS and gmode == "nan" and pick in rep.indices:
            assert rep.kinds[np.searchsorted(rep.indices, pick)] == "nonfinite"


@pytest.mark.parametrize("case", ["mapping-params", "args-type", "returns-pair"])
def test_numba_cost_with_unusable_arguments(case):
    """An @njit cost called with arguments numba cannot type is a TypeError naming cost,
    not numba's typing traceback."""
    theta = np.linspace(-1, 1, 4)
    w = np.ones(4)
    args: tuple = (w, 0, np.inf, 0)
    params: Any = theta
    grad: Any = nb_grad(theta, *args)
    if case == "mapping-params":
        params, grad = {"theta": theta}, {"theta": grad}
    elif case == "args-type":
        args = ("w", 0, np.inf, 0)
    else:
        grad = True
    out = attempt("numba", lambda: fc.check(nb_hostile, grad, params, args),
                  [params, grad, args], numba_case=True)
    names = ("grad",) if case == "returns-pair" else ("cost",)
    if JIT or case == "returns-pair":
        expect_documented("numba", out, names)
    else:  # without the JIT, the user's Python code raises its own TypeError
        assert isinstance(out.error, TypeError)


# -- the input boundary, case by case (fastcheck/_inputs.py) ---------------------------------
def boundary_cases() -> dict[str, tuple]:
    """name: (cost, grad, params, expected error type or None, words the message holds);
    built afresh for each test (the hostile cost counts its calls)."""
    return {
        "ragged list block": (quad_cost, {"W": np.zeros(2)}, {"W": [[1.0, 2.0], [3.0]]},
                              ValueError, ("params['W']",)),
        "ragged grad list": (quad_cost, [[1.0], [2.0, 3.0]], np.ones(3), ValueError, ("grad",)),
        # float32 costs are checked with tolerances from their measured noise (API.md)
        "float32 cost": (lambda x: np.float32(quad_cost(x)), quad_grad, np.ones(3), None, ()),
        "float32 1-element array cost": (lambda x: np.array([quad_cost(x)], dtype=np.float32),
                                         quad_grad, np.ones(3), None, ()),
        "int beyond float range": (lambda x: 10**400, quad_grad, np.ones(3), ValueError,
                                   ("cost", "finite")),
        "pair without grad=True": (lambda x: (quad_cost(x), quad_grad(x)), quad_grad, np.ones(3),
                                   TypeError, ("cost", "grad=True")),
        "inf at the second call": (hostile_cost("inf", 1, quad_cost), quad_grad, np.ones(3),
                                   fc.NondeterministicCostError, ("cost",)),
        "big-endian float64 params": (quad_cost, quad_grad(np.ones(3)), np.ones(3, dtype=">f8"),
                                      None, ()),
        "big-endian float64 grad": (quad_cost, quad_grad(np.ones(3)).astype(">f8"), np.ones(3),
                                    None, ()),
    }


@pytest.mark.parametrize("case", list(boundary_cases()))
def test_input_boundary(case):
    """Edge cases of the input boundary found by the fuzzing: each a documented error
    naming the argument, or (float64 of the other byte order) a passing report."""
    cost, grad, params, error, words = boundary_cases()[case]
    out = attempt("boundary", lambda: fc.check(cost, grad, params), [params, grad])
    if error is None:
        assert out.error is None and out.report.passed, out.error
        record("boundary", "report: pass")
        return
    assert isinstance(out.error, error), repr(out.error)
    expect_documented("boundary", out, ("cost", "grad", "params"))
    for word in words:
        assert word in str(out.error), (word, str(out.error))


# -- category "layout" ------------------------------------------------------------------------
SHAPES = [(), (0,), (3,), (2, 3), (1, 0, 2), 4, np.int64(2), (np.int32(2), 1),
          (-1,), -2, (2.0,), 2.5, "3", None, (True,), ((2,),), [2, 2], (2**40, 2**40),
          (2**62, 4)]


@given(data=st.data())
@fuzz(200)
def test_fuzz_layout(data):
    """fc.Layout with hostile shapes and names, then flatten/unflatten/locate with hostile
    arguments: ValueError/TypeError (KeyError for missing blocks, IndexError for locate)
    naming the block or method, or consistent results."""
    draw = data.draw
    cat = "layout"
    def item():
        if draw(st.integers(0, 9)) < 8:  # a valid name and shape
            return draw(st.sampled_from(["W", "b", "", "ü"])), draw(st.sampled_from(SHAPES[:8]))
        return draw(st.sampled_from(["W", 3, None])), draw(st.sampled_from(SHAPES))

    items = [item() for _ in range(draw(st.integers(0, 4)))]
    spec: Any = dict(items)
    if draw(st.integers(0, 9)) == 0:
        spec = draw(st.sampled_from([[("W", (2,))], "W", None, 3]))
    out = attempt(cat, lambda: fc.Layout(spec), [spec])
    if out.error is not None:
        expect_documented(cat, out, ("layout",))
        return
    lay = out.report
    shapes = {k: (v,) if isinstance(v, (int, np.integer)) else tuple(v) for k, v in spec.items()}
    true_size = sum(int(np.prod([int(d) for d in s], dtype=object)) for s in shapes.values())
    assert lay.size == true_size, f"Layout size {lay.size} for shapes {shapes}"
    if true_size > 10**6:
        record(cat, "ok (huge layout)")
        return
    op = draw(st.sampled_from(["roundtrip", "flatten-hostile", "unflatten-hostile",
                               "locate"]))
    x = np.arange(lay.size, dtype=np.float64)
    if op == "roundtrip":
        views = lay.unflatten(x)
        assert np.shares_memory(x, next(iter(views.values()))) or lay.size == 0 or \
            next(iter(views.values())).size == 0
        assert np.array_equal(lay.flatten(views), x)
        record(cat, "ok (round trip)")
    elif op == "flatten-hostile":
        blocks = {k: v.copy() for k, v in lay.unflatten(x).items()}
        how = draw(st.sampled_from(["missing", "shape", "complex", "string", "list", "int",
                                    "not-a-mapping"]))
        name = draw(st.sampled_from(lay.names))
        if how == "list" and lay.size_of(name) == 0:
            how = "int"  # a nested list cannot carry the shape of an empty block
        if how == "missing":
            del blocks[name]
        elif how == "shape":
            blocks[name] = np.zeros(lay.shape_of(name) + (2,))
        elif how == "complex":
            blocks[name] = blocks[name] + 1j
        elif how == "string":
            blocks[name] = blocks[name].astype("<U4")
        elif how == "list":
            blocks[name] = blocks[name].tolist()
        elif how == "int":
            blocks[name] = blocks[name].astype(np.int64)
        else:
            blocks = list(blocks.values())
        fout = attempt(cat, lambda: lay.flatten(blocks), [blocks])
        if how in ("list", "int"):
            if fout.error is not None:
                fail_undocumented(cat, fout, "flatten rejected valid blocks")
            assert np.array_equal(fout.report, x)
            record(cat, "ok (flatten)")
        elif how in ("complex", "string"):
            expect_documented(cat, fout, (repr(name),))
        elif how == "missing":
            if not isinstance(fout.error, KeyError) or name not in str(fout.error):
                fail_undocumented(cat, fout, "expected a KeyError naming the block")
            record(cat, "KeyError (flatten)")
        else:
            expect_documented(cat, fout, ("flatten",))
    elif op == "unflatten-hostile":
        arg = draw(st.sampled_from(["long", "2d", "list", "scalar"]))
        value: Any = {"long": np.zeros(lay.size + 1), "2d": np.zeros((1, lay.size)),
                      "list": x.tolist(), "scalar": 1.0}[arg]
        uout = attempt(cat, lambda: lay.unflatten(value), [value])
        if arg == "list":  # array-like: converted (views of a new array)
            assert uout.error is None
            record(cat, "ok (unflatten)")
        else:
            if arg == "scalar" and lay.size == 1 and uout.error is None:
                record(cat, "ok (unflatten)")
                return
            expect_documented(cat, uout, ("unflatten",))
    else:
        i = draw(st.sampled_from([0, lay.size - 1, lay.size, -1, np.int64(0), 1.0, True,
                                  "0", 10**30]))
        lout = attempt(cat, lambda: lay.locate(i), [])
        valid = (isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                 and 0 <= i < lay.size)
        if valid:
            name, idx = lout.report
            lo = lay.offset_of(name)
            assert lo <= i < lo + lay.size_of(name)
            shape = lay.shape_of(name)
            assert idx == (tuple(int(k) for k in np.unravel_index(i - lo, shape))
                           if shape else ())
            record(cat, "ok (locate)")
        elif isinstance(lout.error, IndexError) and "locate" in str(lout.error):
            record(cat, "IndexError (locate)")
        else:
            expect_documented(cat, lout, ("locate",))


# -- category "cli-demo" ----------------------------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``fastcheck.cli.main(argv)`` with stdout/stderr captured; argparse exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


DEMO_FLAGS = {
    "--size": ["S", "SQ", "XL", ""],
    "--bug": ["missing-regularization", "sign-flip", "bias-factor-2", "nope", ""],
    "--sample": ["40", "0.5", "0", "-3", "abc", "1e-9", "nan", "inf", "499", "100000"],
    "--threads": ["1", "2", "0", "-1", "x", "3"],
    "--eps": ["auto", "1e-6", "0", "-1", "nan", "inf", "abc", "1e300"],
    "--backend": ["auto", "numba", "serial", "threads", "gpu"],
    "--seed": ["0", "3", "-1", "x", "123456789012345678901234567890"],
    "--scheduler": ["tcp://127.0.0.1:1"],
    "--model": ["mlp", "cnn"],
}


@given(data=st.data())
@fuzz(25, slow=True)
def test_fuzz_cli_demo(data):
    """``fastcheck demo`` with hostile flags: exit 0, 1 or 2, never a traceback; usage and
    input errors end in one ``error:`` line with exit 2."""
    draw = data.draw
    argv = ["demo"]
    chosen = {}
    for flag, values in DEMO_FLAGS.items():
        if draw(st.integers(0, 9 if flag in ("--scheduler", "--model") else 3)) == 0:
            good = draw(st.integers(0, 9)) < 6 and flag != "--scheduler"
            chosen[flag] = values[0] if good else draw(st.sampled_from(values))
            argv += [flag, chosen[flag]]
    if draw(st.integers(0, 4)) == 0:
        argv.append("--json")
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(
            ["--frobnicate", "-x", "check", "--bug"])))
    if chosen.get("--backend") in ("serial", "threads") and chosen.get("--size") == "SQ":
        chosen["--size"] = "S"
        argv[argv.index("SQ")] = "S"
    with watchdog():
        code, out, err = run_cli(argv)
    assert "Traceback" not in err and "Traceback" not in out, err
    if code not in (0, 1, 2):
        record("cli-demo", f"UNDOCUMENTED exit {code}")
        raise AssertionError(f"exit status {code} for {argv}:\n{err}")
    if code == 2:
        assert err.strip().splitlines()[-1].count("error") >= 1, err
    clean = {"--size": ("S", "SQ"), "--sample": ("499",), "--threads": ("1", "2", "3"),
             "--eps": ("auto",), "--backend": ("auto", "numba", "serial", "threads"),
             "--seed": ("0",), "--model": ("mlp",)}
    valid = (len(argv) == 1 + 2 * len(chosen) + ("--json" in argv)
             and all(chosen.get(f, v[0]) in v for f, v in clean.items())
             and "--scheduler" not in chosen and chosen.get("--bug", "none") != ""
             and chosen.get("--bug", "none") != "nope")
    if valid:
        expected = 1 if "--bug" in chosen else 0
        assert code == expected, f"{argv}: exit {code}, expected {expected}\n{out}\n{err}"
    record("cli-demo", f"exit {code}")


# -- category "cli-check": the user's own functions from the shell ----------------------------
USER_MODULE = '''
import numpy as np

def _blocks(p):
    return list(p.values()) if isinstance(p, dict) else [p]

def cost(p, *args):
    return float(sum(np.sum(v * v) for v in _blocks(p)))

def grad(p, *args):
    if isinstance(p, dict):
        return {"d" + k: 2 * v for k, v in p.items()}
    return 2 * p

def wrong_grad(p, *args):
    g = grad(p)
    if isinstance(g, dict):
        return {k: 3 * v for k, v in g.items()}
    return 3 * g

def cost_and_grad(p, *args):
    return cost(p), grad(p)

def raises(p, *args):
    raise RuntimeError("the user's cost is broken")

def nan_cost(p, *args):
    return float("nan")

def takes_nothing():
    return 0.0

not_callable = 3

class Model:
    @staticmethod
    def loss(p, *args):
        return cost(p)
'''


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A folder with the user's modules and .npz files, good and broken."""
    d = tmp_path_factory.mktemp("user")
    (d / "hostile_user.py").write_text(USER_MODULE)
    (d / "broken_syntax.py").write_text("def cost(p:\n    return 0\n")
    (d / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    (d / "raises_on_import.py").write_text("raise RuntimeError('import-time bug')\n")
    rng = np.random.default_rng(0)
    np.savez(d / "good.npz", W=rng.uniform(-1, 1, (2, 3)), b=rng.uniform(-1, 1, 3))
    np.savez(d / "flat.npz", theta=rng.uniform(-1, 1, 5))
    np.savez(d / "nan.npz", W=np.array([[1.0, np.nan]]))
    np.savez(d / "f32.npz", W=np.ones((2, 2), dtype=np.float32))
    np.savez(d / "int.npz", W=np.ones((2, 2), dtype=np.int64))
    np.savez(d / "empty_block.npz", W=np.zeros((0, 3)))
    np.savez(d / "objects.npz", W=np.array([1.0, "x"], dtype=object))
    np.savez(d / "no_arrays.npz")
    np.save(d / "single.npy", np.ones(3))
    (d / "corrupt.npz").write_bytes(b"PK\x03\x04 this is not a zip archive" * 10)
    (d / "text.npz").write_text("W = [1, 2, 3]\n")
    good = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(good[: len(good) // 2])
    np.savez(d / "args.npz", lam=0.1)
    (d / "folder.npz").mkdir()
    return d


CHECK_COSTS = ["hostile_user:cost", "hostile_user.py:cost", "hostile_user:Model.loss",
               "hostile_user:cost_and_grad", "hostile_user:raises", "hostile_user:nan_cost",
               "hostile_user:takes_nothing", "hostile_user:not_callable",
               "hostile_user:missing", "no_such_module_xyz:cost", "broken_syntax:cost",
               "exits_on_import:cost", "raises_on_import:cost", "missing_file.py:cost",
               "hostile_user:", ":cost", "nocolon", "hostile_user:Model.nothing"]
CHECK_GRADS = ["hostile_user:grad", "hostile_user:wrong_grad", "hostile_user:wrong_grad", "true",
               "TRUE", "hostile_user:missing", "hostile_user:not_callable", "nope"]
CHECK_PARAMS = ["good.npz", "flat.npz", "flat.npz", "nan.npz", "f32.npz", "int.npz",
                "empty_block.npz", "objects.npz", "no_arrays.npz", "single.npy",
                "corrupt.npz", "text.npz", "truncated.npz", "missing.npz", "folder.npz"]
CHECK_FLAGS = [[], ["--sample", "2"], ["--sample", "0"], ["--sample", "x"],
               ["--eps", "-1"], ["--eps", "nan"], ["--backend", "gpu"],
               ["--backend", "threads"], ["--threads", "0"], ["--rtol", "-1"],
               ["--seed", "x"], ["--confidence", "2"], ["--json"], ["--debug"],
               ["--args", "args.npz"], ["--args", "corrupt.npz"], ["--args", "missing.npz"],
               ["--frobnicate"]]


@pytest.mark.skipif(not HAS_CHECK_COMMAND, reason="the `fastcheck check` command "
                    "(fastcheck/_user_check.py) is not there yet")
@given(data=st.data())
@fuzz(60, slow=True)
def test_fuzz_cli_check(data, user_files):
    """``fastcheck check MODULE:COST MODULE:GRAD --params F.npz`` with missing files,
    corrupt archives, unimportable modules, wrong names and conflicting flags: exit 2 and
    one ``error:`` line without a traceback (unless --debug); 0/1 only for good input."""
    draw = data.draw

    def pick(pool):  # mostly the good first entry, so that one hostile part stands out
        return pool[0] if draw(st.integers(0, 9)) < 6 else draw(st.sampled_from(pool))

    cost, grad, params, flags = (pick(p) for p in (CHECK_COSTS, CHECK_GRADS, CHECK_PARAMS,
                                                   CHECK_FLAGS))
    argv = ["check", cost, grad, "--params", params, *flags]
    if draw(st.integers(0, 9)) == 0:
        argv.remove("--params")
        argv.remove(params)
    saved_path, saved_modules, cwd = list(sys.path), set(sys.modules), os.getcwd()
    os.chdir(user_files)
    try:
        with watchdog():
            code, out, err = run_cli(argv)
    finally:
        os.chdir(cwd)
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name in ("hostile_user", "broken_syntax", "exits_on_import",
                        "raises_on_import") or name.startswith("_fastcheck_user"):
                del sys.modules[name]
    debug = "--debug" in flags
    if not debug:
        assert "Traceback" not in err and "Traceback" not in out, f"{argv}\n{err}"
    if code not in (0, 1, 2):
        record("cli-check", f"UNDOCUMENTED exit {code}")
        raise AssertionError(f"exit status {code} for {argv}:\n{err}")
    if code == 2 and not debug:
        last = err.strip().splitlines()[-1]
        assert "error" in last, err
    good_cost = cost in ("hostile_user:cost", "hostile_user.py:cost",
                         "hostile_user:Model.loss")
    pair = cost == "hostile_user:cost_and_grad" and grad.lower() == "true"
    good_input = ("--params" in argv and params in ("good.npz", "flat.npz")
                  and flags in ([], ["--sample", "2"], ["--backend", "threads"], ["--json"],
                                ["--debug"], ["--args", "args.npz"]))
    if good_input and ((good_cost and grad == "hostile_user:grad") or pair):
        assert code == 0, f"{argv}: exit {code}\n{out}\n{err}"
    elif good_input and good_cost and grad == "hostile_user:wrong_grad":
        assert code == 1, f"{argv}: exit {code}\n{out}\n{err}"
    else:
        assert code == 2, f"{argv}: exit {code}, expected 2\n{out}\n{err}"
    record("cli-check", f"exit {code}")


# -- non-finite evaluations at perturbed points -----------------------------------------------
def _overflow_problem():
    """A cost that is finite at theta but NaN or inf at theta + h of component 2."""
    theta = np.linspace(-1.0, 1.0, 6)
    w = np.linspace(0.5, 1.5, 6)
    limit = theta[2] + auto_step(theta[2]) / 2
    layout = fc.Layout({"W": (2, 2), "b": (2,)})
    return theta, w, limit, layout


BACKENDS = ["serial", "threads", "numba"]

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", [2, 3], ids=["nan", "inf"])
def test_nonfinite_evaluation_is_reported_and_never_a_pass(backend, mode):
    """The cost is NaN (inf) at theta + h of one component: that component is
    "nonfinite", counted as a failure, and a hint names its block."""
    theta, w, limit, layout = _overflow_problem()
    args = (w, 2, float(limit), mode)
    grad = nb_grad(theta, *args)
    cost = nb_hostile if backend == "numba" else getattr(nb_hostile, "py_func", nb_hostile)
    out = attempt("nonfinite", lambda: fc.check(cost, grad, theta, args, backend=backend,
                                                layout=layout, threads=2),
                  [theta, grad, args], numba_case=backend == "numba")
    rep = out.report
    assert rep is not None, out.error
    assert list(rep.kinds) == ["ok", "ok", "nonfinite", "ok", "ok", "ok"]
    assert not rep.passed and rep.verdict == "fail"
    assert list(rep.failed) == [2]
    assert {b.name: b.n_failed for b in rep.blocks} == {"W": 1, "b": 0}
    assert any("W" in h and "NaN or inf" in h for h in rep.hints), rep.hints
    assert "W[1, 0]" in rep.summary()


@pytest.mark.parametrize("mode", ["full", "directional"])
def test_infinite_analytic_gradient_is_never_ok(mode):
    """An infinite analytic gradient is never "ok", in either mode."""
    theta = np.linspace(-1.0, 1.0, 40)
    grad = quad_grad(theta)
    grad[1] = np.inf
    rep = fc.check(quad_cost, grad, theta, mode=mode, seed=0)
    assert not rep.passed
    assert rep.kinds[np.searchsorted(rep.indices, 1)] == "nonfinite"


# -- exceptions inside the numba kernel and the thread pool -----------------------------------
def test_exception_inside_numba_kernel_names_component_and_restores_everything():
    """A cost raising inside prange: one CostEvaluationError naming the flat index and the
    block, with the user's exception as its cause; numba's thread count (set by the caller
    to 1), BLAS limits and every input restored; a partial report attached."""
    theta, w, _, layout = _overflow_problem()
    limit = theta[3] + auto_step(theta[3]) / 2
    args = (w, 3, float(limit), 1)
    grad = nb_grad(theta, *args)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        out = attempt("kernel-error", lambda: fc.check(nb_hostile, grad, theta, args,
                                                       backend="numba", threads=2,
                                                       layout=layout),
                      [theta, grad, args], numba_case=True)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)
    exc = out.error
    assert isinstance(exc, fc.CostEvaluationError), repr(exc)
    assert exc.flat_index == 3 and exc.name == "W[1, 1]"
    assert "W[1, 1]" in str(exc) and "flat index 3" in str(exc)
    assert isinstance(exc.__cause__, ValueError) and "hostile cost" in str(exc.__cause__)
    assert isinstance(exc.partial_report, fc.Report)
    assert "CostEvaluationError" in exc.partial_report.stop_reason
    assert "SystemError" not in str(exc)


def test_exception_inside_thread_pool_names_component():
    """A cost raising in a worker thread: one CostEvaluationError naming the component,
    the pool shut down (no fastcheck thread left), inputs unchanged."""
    params = {"W": np.linspace(-1, 1, 40).reshape(8, 5), "b": np.linspace(0, 1, 5)}

    def cost(p):
        if p["W"][6, 2] != params["W"][6, 2]:
            raise UserBug("component W[6, 2] breaks the cost")
        return quad_cost(p)

    grad = quad_grad(params)
    out = attempt("pool-error", lambda: fc.check(cost, grad, params, backend="threads",
                                                 threads=3), [params, grad])
    exc = out.error
    assert isinstance(exc, fc.CostEvaluationError), repr(exc)
    assert exc.flat_index == 32 and exc.name == "W[6, 2]" and "W[6, 2]" in str(exc)
    assert isinstance(exc.__cause__, UserBug)
    assert isinstance(exc.partial_report, fc.Report)


def test_exception_in_thread_pool_stops_promptly():
    """The other workers stop within a few evaluations once one has raised."""
    theta = np.linspace(-1, 1, 256)
    raised_at: list[float] = []

    def cost(x):
        time.sleep(0.004)
        if x[0] != theta[0]:
            raised_at.append(time.monotonic())
            raise UserBug("first component breaks the cost")
        return quad_cost(x)

    with pytest.raises(fc.CostEvaluationError):
        fc.check(cost, quad_grad(theta), theta, backend="threads", threads=2)
    assert time.monotonic() - raised_at[0] < 0.25


# -- interrupts -------------------------------------------------------------------------------
INTERRUPT_SCRIPT = r'''
import json, signal, sys, threading, time
import numba, numpy as np
import fastcheck as fc

# A process started in the background of a non-interactive shell (as CI may run us)
# inherits SIGINT as ignored, and Python then leaves it ignored: restore the default
# handler so that the test measures fastcheck, not the shell.
signal.signal(signal.SIGINT, signal.default_int_handler)

backend = sys.argv[1]
REPEAT = 3000  # about 1 ms per evaluation of the njit cost

@numba.njit
def slow_njit(x):
    s = 0.0
    for r in range(1, REPEAT):
        for i in range(100):
            s += x[i] * x[i] / (r * r)
    return 1e-3 * s + np.sum(x * x)

def slow_python(x):
    time.sleep(0.001)
    return float(np.sum(x * x))

theta = np.linspace(-1.0, 1.0, 20000)
grad = 2 * theta
if backend == "numba":
    c = 1e-3 * sum(1.0 / (r * r) for r in range(1, REPEAT))
    grad[:100] += 2 * c * theta[:100]
    cost = slow_njit
    fc.check(cost, grad[:200].copy(), theta[:200].copy(), backend="numba", threads=2)
else:
    cost = slow_python
snapshot = (theta.copy(), grad.copy())
nb_threads = numba.get_num_threads()
print("READY", flush=True)
result = {}
try:
    fc.check(cost, grad, theta, backend=backend, threads=2)
    result["outcome"] = "finished"
except KeyboardInterrupt as exc:
    result["caught_at"] = time.monotonic()
    rep = getattr(exc, "partial_report", None)
    result.update(outcome="KeyboardInterrupt", partial=isinstance(rep, fc.Report),
                  n_checked=getattr(rep, "n_checked", None),
                  stop_reason=getattr(rep, "stop_reason", None))
except BaseException as exc:
    result.update(outcome=type(exc).__name__, message=str(exc)[:300],
                  caught_at=time.monotonic())
result["unchanged"] = bool(np.array_equal(theta, snapshot[0])
                           and np.array_equal(grad, snapshot[1]))
result["threads_left"] = [t.name for t in threading.enumerate()
                          if t is not threading.main_thread() and not t.daemon]
result["numba_threads_restored"] = numba.get_num_threads() == nb_threads
print(json.dumps(result), flush=True)
'''

@pytest.mark.parametrize("backend", ["serial", "threads", "numba"])
def test_sigint_during_long_check(tmp_path, backend):
    """SIGINT one second into a long check (a ~1 ms cost, 20,000 components): it ends within
    two seconds with KeyboardInterrupt and a partial report, inputs unchanged, numba's
    thread count restored, no thread left running."""
    if backend == "numba" and not JIT:
        pytest.skip("needs the JIT (the njit cost would take minutes in Python)")
    script = tmp_path / "long_check.py"
    script.write_text(INTERRUPT_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.Popen([sys.executable, str(script), backend], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        with watchdog(90):
            line = proc.stdout.readline()
            assert line.strip() == "READY", line + proc.stderr.read()
            time.sleep(1.0)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    record("sigint", f"{backend}: {result['outcome']}")
    assert result["outcome"] == "KeyboardInterrupt", (result, err)
    assert result["caught_at"] - sent < 2.0, f"took {result['caught_at'] - sent:.2f} s"
    assert result["partial"] and result["n_checked"] > 0
    assert "KeyboardInterrupt" in result["stop_reason"]
    assert result["unchanged"] and result["numba_threads_restored"]
    assert result["threads_left"] == []
    assert proc.returncode == 0, err


# -- resource bounds --------------------------------------------------------------------------
@pytest.mark.slow
def test_sampled_check_of_50m_parameters_uses_memory_of_theta_not_n_per_sample():
    """sample=2000 of 50M parameters (a numpy cost reading 1,001 of them).

    Allowed, beyond the caller's own theta and grad: fastcheck's private copy of theta
    (1x), the analytic gradient flattened into a new vector (1x), the serial backend's
    work vector that it perturbs (1x), a boolean temporary of N bytes (0.125x: the
    ``np.array_equal`` of ``ensure_unmodified``) and O(sample) for the results -- about
    3.13x theta (1.25 GB for a 400 MB theta); measured 3.126x. The copies made to call the
    cost and grad at theta are freed before the backend's work vector exists.
    """
    n = 50_000_000
    layout = fc.Layout({"W1": (5000, 8000), "b1": (5000,), "W2": (2000, 4997),
                        "b2": (1000,)})
    assert layout.size == n
    stride = n // 1000
    w = np.linspace(0.5, 1.5, 1000)
    theta = np.linspace(-1.0, 1.0, n)
    grad = np.zeros(n)
    grad[::stride] = 2 * w * theta[::stride]
    grad[-1] += 3 * theta[-1] ** 2

    def cost(x):
        return float(np.dot(w, x[::stride] ** 2)) + float(x[-1] ** 3)

    tracemalloc.start()
    try:
        rep = fc.check(cost, grad, theta, layout=layout, sample=2000, seed=0,
                       backend="serial")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.passed and rep.n_checked == 2000
    allowed = 3 * theta.nbytes + n + 32 * 2**20
    record("memory", f"50M sampled: peak {peak / theta.nbytes:.3f} x theta")
    assert peak < allowed, f"peak {peak / 2**20:.0f} MiB = {peak / theta.nbytes:.2f} x theta"


@pytest.mark.parametrize("backend", ["serial", "threads"])
def test_full_check_memory_is_linear_in_n(backend):
    """A full check of 5,000 components allocates O(N) in all, not O(N) per component
    (which would be 5,000 x 40 kB = 200 MB here)."""
    n = 5_000
    theta = np.linspace(-1.0, 1.0, n)
    grad = quad_grad(theta)

    def cost(x):
        return float(np.dot(x, x) + np.sum(x))

    tracemalloc.start()
    try:
        rep = fc.check(cost, grad, theta, backend=backend, threads=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.passed
    assert peak < 64 * theta.nbytes, f"peak {peak / theta.nbytes:.1f} x theta"


# -- known bugs, pinned (each reported on issue 8) --------------------------------------------
def test_threads_backend_caps_an_absurd_thread_count():
    rep = fc.check(quad_cost, quad_grad(np.ones(5)), np.ones(5), backend="threads",
                   threads=100_000)
    assert rep.threads <= 2 * (os.cpu_count() or 1)


@pytest.mark.skipif(not JIT, reason="the numba kernel's chunking only matters under the JIT")
def test_numba_backend_caps_an_absurd_thread_count():
    theta = np.linspace(-1, 1, 5)
    args = (np.ones(5), 0, np.inf, 0)
    rep = fc.check(nb_hostile, nb_grad(theta, *args), theta, args, backend="numba",
                   threads=2**40)
    assert rep.passed


# -- bugs the suite found, fixed in f55cf10 (regression tests) ---------------------------------
def test_layout_size_does_not_overflow():
    """A Layout whose size does not fit int64 is a ValueError, not a silent size of 0."""
    with pytest.raises(ValueError, match="Layout"):
        fc.Layout({"a": (2**40, 2**40)})


@pytest.mark.parametrize("block", [np.array([1 + 1j, 2]), np.array(["1", "2"])],
                         ids=["complex", "string"])
def test_layout_flatten_rejects_non_real_blocks(block):
    """flatten never drops an imaginary part or fails inside numpy: a TypeError naming
    the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="'a'"):
            fc.Layout({"a": (2,)}).flatten({"a": block})


def test_eps_below_the_spacing_of_theta_is_an_error():
    """eps so small that theta + h == theta is a ValueError naming eps, not a report of
    0/0 "failures" of a correct gradient."""
    with pytest.raises(ValueError, match="eps"):
        fc.check(quad_cost, quad_grad(np.ones(3)), np.ones(3), eps=1e-300)


def test_no_runtime_warning_from_fastcheck_on_a_nonfinite_block():
    """A block whose relative errors are all NaN warns nothing (``pytest -W error``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=RuntimeWarning, module=r"fastcheck\.")
        rep = fc.check(quad_cost, np.full(3, np.nan), np.ones(3))
    assert not rep.passed


def test_nonfinite_component_has_no_small_relative_error():
    """A NaN component's relative error is NaN, not 0 (which the bands counted as <1e-7)."""
    theta = np.linspace(-1.0, 1.0, 4)
    grad = quad_grad(theta)
    grad[1] = np.nan
    rep = fc.check(quad_cost, grad, theta)
    assert rep.kinds[1] == "nonfinite"
    assert not rep.rel_errors[1] < 1e-7


def test_evaluations_count_every_cost_call_with_grad_true():
    """``report.evaluations`` is the number of cost calls, also with grad=True."""
    calls = [0]

    def cost(x):
        calls[0] += 1
        return quad_cost(x), quad_grad(x)

    rep = fc.check(cost, True, np.linspace(-1.0, 1.0, 3))
    assert rep.evaluations == calls[0]
