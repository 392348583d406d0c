"""The hostile-input suite (issue 8): a clear error or an honest report, whatever comes in.

A gradient checker is used on broken code. The property-based tests of this folder feed
``fc.check``, ``fc.Layout`` and the ``fastcheck`` command generated bad input -- wrong
dtypes (int, bool, float32, complex, object, strings), 0-d and empty blocks,
Fortran-ordered, strided and read-only arrays (valid float64 input that must work), NaN
and inf in params or grad, mismatched keys and shapes, costs that return arrays, None,
NaN, inf or strings or raise after k calls -- on the serial, threads and numba backends,
and sort every outcome into one of the documented ones:

- ``ValueError``, ``TypeError`` or a ``fc.FastcheckError`` raised by fastcheck itself (not
  from inside numba or numpy) whose message names the offending argument;
- the user's own exception, unchanged, when the user's cost or grad raised it at theta;
- ``KeyboardInterrupt`` only where the cost raised it, with ``exc.partial_report``;
- a Report, which never passes a wrong gradient or a non-finite value.

Any other outcome fails the test (there is no "known bug" bucket: a non-finite value
judged "ok" is a failure like any other).

In every case the caller's arrays (params, grad, args) are bitwise unchanged (and keep
their flags), numba's thread count is restored, no fastcheck thread is left running, and a
watchdog turns a hang into a failure (it dumps every thread's stack to
``/tmp/fastcheck_hostile_hang.txt`` and ends the run).

This conftest holds what every category shares: the configuration, the tally, the
watchdog, the invariants (``attempt``, ``expect_documented``, ``expect_honest``) and the
costs several categories use. One file per category holds its tests. Counts of the
generated inputs per category and outcome are printed when the session ends (visible with
``pytest -s``) and written to ``$FASTCHECK_FUZZ_SUMMARY`` (default
``/tmp/fastcheck_hostile_summary.txt``). ``make test`` runs bounded, derandomized example
counts; ``FASTCHECK_FUZZ_EXAMPLES=N`` (``make fuzz``) runs N random examples per category.
"""

from __future__ import annotations

import contextlib
import decimal
import faulthandler
import os
import threading
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from numba.core.errors import NumbaError
from threadpoolctl import threadpool_info

import fastcheck as fc

# -- configuration ----------------------------------------------------------------------------
#: Examples per category in ``make fuzz`` (0: the bounded defaults of ``make test``).
FUZZ = int(os.environ.get("FASTCHECK_FUZZ_EXAMPLES", "0") or 0)
SUMMARY_PATH = Path(os.environ.get("FASTCHECK_FUZZ_SUMMARY",
                                   "/tmp/fastcheck_hostile_summary.txt"))
HANG_PATH = Path("/tmp/fastcheck_hostile_hang.txt")
#: A single generated case taking longer than this is a hang.
CASE_TIMEOUT = 120.0

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "fastcheck"
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
    lines += ["", f"total {sum(total.values())} inputs: {undocumented} undocumented outcomes"]
    for category in sorted(LEAKED_WARNINGS):
        parts = ", ".join(f"{k} x{v}" for k, v in LEAKED_WARNINGS[category].most_common())
        lines.append(f"warnings raised inside fastcheck ({category}): {parts}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session", autouse=True)
def _print_summary():
    """Write and print the tally when the hostile suite is done."""
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


def expect_honest(category: str, out: Outcome, *, wrong: np.ndarray | None = None,
                  correct: bool = False) -> str:
    """Record a Report after checking that it is honest.

    ``wrong``: flat indices whose analytic value is known to be wrong (each checked one
    must fail). ``correct``: the gradient is right and the cost smooth and finite, so the
    check must pass. A component called "ok" or "kink" with a non-finite analytic or
    numeric value fails the test, whatever else is true.
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
        record(category, "UNDOCUMENTED non-finite value passed as ok")
        raise AssertionError(f"{category}: components {rep.indices[lying]} have a non-finite "
                             f"analytic or numeric value but were judged ok:\n{rep.summary()}")
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


def overflow_problem():
    """A cost that is finite at theta but NaN or inf at theta + h of component 2."""
    theta = np.linspace(-1.0, 1.0, 6)
    w = np.linspace(0.5, 1.5, 6)
    limit = theta[2] + auto_step(theta[2]) / 2
    layout = fc.Layout({"W": (2, 2), "b": (2,)})
    return theta, w, limit, layout
