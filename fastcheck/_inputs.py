"""Normalise what the user passed (params, grad, cost, args) into one flat problem.

Every input error of ``fc.check`` is raised here, at the boundary, with a message that
names the argument, the expected and the actual value.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _precision
from ._blas import single_threaded_blas
from ._lazy import is_jitted, numba_errors
from ._steps import nominal_steps
from ._values import _as_float64_array, _check_finite, as_args, scalar_cost
from .errors import NondeterministicCostError
from .layout import Layout

#: Name of the single block of a flat parameter vector checked without a Layout.
FLAT_BLOCK = "theta"


@dataclass(frozen=True)
class Problem:
    """A gradient check reduced to flat float64 vectors.

    ``theta`` is fastcheck's private copy of the parameters; ``make_call(x)`` returns a
    zero-argument function evaluating the cost at the current contents of ``x``.
    """

    theta: np.ndarray
    analytic: np.ndarray
    layout: Layout
    cost: Callable
    args: tuple
    params_kind: str  # "flat" or "mapping"
    cost_returns_grad: bool
    j0: float
    #: Time the first calls of a jitted cost and grad spent compiling (first call minus
    #: second, for each).
    cost_compile_seconds: float = 0.0
    #: Measured noise (standard deviation) of one cost evaluation when the cost computes
    #: in float32 whatever it is given; 0 for a float64 cost (roundoff is eps * |J|).
    noise: float = 0.0
    #: What the preparation found that the report must say (float32 handling).
    notes: tuple = ()
    #: Cost evaluations spent measuring the noise (on top of the two at theta).
    probe_evaluations: int = 0

    def nominal_steps(self, theta_at: np.ndarray, eps: float | str) -> np.ndarray:
        """The step of each component: the float64 rule, or one from the measured noise."""
        if self.noise > 0 and isinstance(eps, str):
            return _precision.noise_steps(theta_at, self.noise, self.j0)
        return nominal_steps(theta_at, eps)
    #: The callable that gives the analytic gradient at a point (grad, or cost when
    #: grad=True); None when grad was given as values.
    grad_fn: Callable | None = None

    @property
    def has_grad_function(self) -> bool:
        """Can the analytic gradient be evaluated at points other than theta?"""
        return self.grad_fn is not None

    def analytic_at(self, index: int, value: float) -> float:
        """Entry ``index`` of the analytic gradient at theta with that entry set to
        ``value`` (evaluated on a private copy; the kink confirmation uses it)."""
        if self.grad_fn is None:
            raise ValueError("analytic_at needs grad as a function (grad was given as values)")
        x = self.theta.copy()
        x[index] = value
        raw = _call_user(self.grad_fn, x, self.layout, self.params_kind, self.args, "grad")
        if self.cost_returns_grad:
            raw = raw[1]
        return float(normalise_grad(raw, self.layout, self.params_kind,
                                    "grad off a kink", float32_ok=bool(self.notes))[index])
    #: Seconds of one evaluation of the cost at theta (the faster of the two timed calls;
    #: NaN when not timed), for ``backend="auto"``'s estimate of the check's length.
    cost_seconds: float = math.nan

    def make_call(self, x: np.ndarray) -> Callable[[], Any]:
        """A function of no arguments that evaluates ``cost`` at ``x`` (raw return value)."""
        cost, args = self.cost, self.args
        if self.params_kind == "mapping":
            views = self.layout.unflatten(x)
            if self.cost_returns_grad:
                return lambda: cost(dict(views), *args)[0]
            return lambda: cost(dict(views), *args)
        if self.cost_returns_grad:
            return lambda: cost(x, *args)[0]
        return lambda: cost(x, *args)


# -- params -------------------------------------------------------------------------------
def normalise_params(params: Any, layout: Layout | None) -> tuple[np.ndarray, Layout, str]:
    """Private flat float64 copy of ``params``, its Layout, and ``"flat"``/``"mapping"``."""
    if isinstance(params, Mapping):
        if layout is not None:
            raise TypeError("layout= is for a flat params vector; params is already a mapping")
        if len(params) == 0:
            raise ValueError("params must have at least one block, got an empty mapping")
        arrays = {}
        for name, value in params.items():
            if not isinstance(name, str):
                raise TypeError(f"params keys must be strings, got {name!r}")
            arr = _as_float64_array(f"params[{name!r}]", value, float32_ok=True)
            _check_finite(f"params[{name!r}]", arr)
            arrays[name] = arr
        lay = Layout.from_params(arrays)
        if lay.size == 0:
            raise ValueError("params has no components (every block is empty)")
        return lay.flatten(arrays), lay, "mapping"
    if not isinstance(params, np.ndarray):
        raise TypeError(
            "params must be a 1-D float64 numpy array or a mapping name -> array, "
            f"got {type(params).__name__}"
        )
    arr = _as_float64_array("params", params, float32_ok=True)
    if arr.ndim != 1:
        raise ValueError(
            f"params as an array must be 1-D (flat theta), got shape {arr.shape}; pass a "
            f"dict of named arrays, or params.ravel() with layout=fc.Layout(...)"
        )
    if arr.size == 0:
        raise ValueError("params has no components (shape (0,))")
    _check_finite("params", arr)
    if layout is None:
        lay = Layout({FLAT_BLOCK: arr.shape})
    elif not isinstance(layout, Layout):
        raise TypeError(f"layout must be a fastcheck.Layout, got {type(layout).__name__}")
    elif layout.size != arr.size:
        raise ValueError(
            f"layout describes {layout.size} components but params has {arr.size}"
        )
    else:
        lay = layout
    return np.array(arr, dtype=np.float64, order="C", copy=True), lay, "flat"


# -- grad ---------------------------------------------------------------------------------
def _transposition_hint(shape: tuple, got: tuple) -> str:
    return " — is it transposed?" if len(shape) == 2 and got == shape[::-1] else ""


def _same_or_raise(value: Mapping, name: str, source: str, float32_ok: bool) -> None:
    """``value`` holds both ``name`` and ``"d" + name``: fine only when they are the same.

    In backprop code such a mapping is usually a cache holding the weights *and* their
    gradients; taking ``name`` would check the weights as if they were the gradient.
    """
    plain, prefixed = value[name], value["d" + name]
    if plain is prefixed:
        return
    a = _as_float64_array(f"{source}[{name!r}]", plain, float32_ok)
    b = _as_float64_array(f"{source}[{'d' + name!r}]", prefixed, float32_ok)
    if a.shape == b.shape and np.array_equal(a, b, equal_nan=True):
        return
    differ = (f"max |difference| {float(np.max(np.abs(a - b))):.3g}" if a.shape == b.shape
              else f"shapes {a.shape} and {b.shape}")
    raise ValueError(
        f"{source} holds both {name!r} and {'d' + name!r} for parameter {name}, with "
        f"different values ({differ}): which one is the gradient is ambiguous (a cache "
        f"with the weights and their gradients?). Pass only the gradients, e.g. "
        f"{{k: v for k, v in cache.items() if k.startswith('d')}}, or only one key for {name}"
    )


def normalise_grad(value: Any, layout: Layout, params_kind: str, source: str,
                   float32_ok: bool = False) -> np.ndarray:
    """The analytic gradient as a new flat float64 vector in ``layout``'s order (float32
    accepted when ``float32_ok``: for a float32 model)."""
    if isinstance(value, Mapping):
        out = np.empty(layout.size, dtype=np.float64)
        missing = []
        for name, shape in zip(layout.names, layout.shapes):
            if name in value:
                key = name
                if "d" + name in value and "d" + name not in layout.names:
                    _same_or_raise(value, name, source, float32_ok)
            elif "d" + name in value:
                key = "d" + name
            else:
                missing.append(name)
                continue
            arr = _as_float64_array(f"{source}[{key!r}]", value[key], float32_ok)
            if arr.shape != shape:
                if arr.size == int(np.prod(shape)) and arr.ndim == 1:
                    pass  # a flat block of the right length is accepted
                else:
                    raise ValueError(
                        f"{name} has shape {shape} but {source}[{key!r}] has shape "
                        f"{arr.shape}{_transposition_hint(shape, arr.shape)}"
                    )
            out[layout.block_slice(name)] = arr.reshape(-1)
        if missing:
            have = sorted(str(k) for k in value.keys())
            raise ValueError(
                f"{source} has no gradient for parameter(s) {missing}: expected keys "
                f"{[n for n in missing]} or {['d' + n for n in missing]}, got keys {have}"
            )
        return out
    arr = _as_float64_array(source, value, float32_ok)
    if arr.ndim == 1 and arr.size == layout.size:
        return np.array(arr, dtype=np.float64, copy=True)
    if params_kind == "flat" or len(layout) == 1:
        shape = (layout.size,)
        raise ValueError(
            f"{source} should be a flat array of shape {shape} like params, "
            f"got shape {arr.shape}"
        )
    raise ValueError(
        f"{source} should be a mapping with the keys of params ({list(layout.names)}) "
        f"or a flat array of length {layout.size}, got an array of shape {arr.shape}"
    )


# -- the whole problem --------------------------------------------------------------------
def _call_user(fn: Callable, x: np.ndarray, layout: Layout, kind: str, args: tuple,
               what: str = "cost") -> Any:
    """Call ``fn`` at a private copy of ``x`` (as views when params was a mapping).

    An ``@njit`` function that numba cannot compile for these arguments is a TypeError
    naming ``what``, not numba's typing traceback.
    """
    copy = x.copy()
    try:
        if kind == "mapping":
            return fn(layout.unflatten(copy), *args)
        return fn(copy, *args)
    except numba_errors() as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()
                 if ln.strip() and not ln.startswith("During:")]
        why = (" (params is a mapping; an @njit function needs the flat float64 vector: "
               "pass layout.flatten(params) with layout=fc.Layout(...))"
               if kind == "mapping" else "")
        raise TypeError(f"{what} is an @njit function that numba cannot compile for these "
                        f"arguments{why}: {' '.join(lines[:2])[:300]}") from None


#: A jitted grad's first call faster than this compiled nothing: no second call to time it.
GRAD_COMPILE_SECONDS = 0.005


def prepare(cost: Any, grad: Any, params: Any, args: Any, layout: Layout | None) -> Problem:
    """Validate the inputs of ``fc.check`` and evaluate the cost and gradient at theta.

    Evaluates ``cost`` at theta twice and raises ``NondeterministicCostError`` when the
    values differ.
    """
    if not callable(cost):
        raise TypeError(f"cost must be callable, got {type(cost).__name__}")
    args = as_args(args)
    theta, lay, kind = normalise_params(params, layout)
    returns_grad = grad is True
    if grad is False or grad is None:
        raise TypeError(
            f"grad must be an array, a mapping, a callable grad(theta, *args), or True "
            f"(cost returns (loss, grads)); got {grad!r}"
        )

    def first_value(what: str) -> tuple[float, Any, bool]:
        try:
            value = _call_user(cost, theta, lay, kind, args)
        except TypeError as exc:
            if "argument" not in str(exc):  # the cost's own TypeError: as it is
                raise
            given = ", ".join(type(a).__name__ for a in args)
            raise TypeError(
                "args must hold exactly the extra arguments of cost (and of a callable grad), "
                f"as a tuple; calling cost(params, *args) with {len(args)} of them ({given}) "
                f"failed: {exc}") from exc
        grads = None
        if returns_grad:
            if not isinstance(value, tuple) or len(value) != 2:
                raise TypeError(
                    "with grad=True, cost must return a pair (loss, grads), got "
                    f"{type(value).__name__}"
                )
            value, grads = value
        return scalar_cost(value, what), grads, _precision.is_float32(value)

    # A jitted cost is evaluated with one BLAS thread, as the numba kernel will (see _blas).
    blas = single_threaded_blas() if is_jitted(cost) else contextlib.nullcontext()
    with blas:
        t0 = time.perf_counter()
        j0, grads, returned_float32 = first_value("at theta")
        t1 = time.perf_counter()
        if not math.isfinite(j0):
            raise ValueError(f"cost must be finite at theta, got {j0}")
        j1, _, second_float32 = first_value("at theta (second evaluation)")
        t2 = time.perf_counter()
        compile_seconds = max(0.0, (t1 - t0) - (t2 - t1)) if is_jitted(cost) else 0.0
        if not (abs(j1 - j0) <= 8 * np.finfo(np.float64).eps * max(abs(j0), abs(j1))) \
                or not math.isfinite(j1):  # inf - j0 <= eps * inf would let inf through
            raise NondeterministicCostError(
                f"cost returned different values for the same theta ({j0!r}, then {j1!r}). "
                "A gradient check needs a deterministic cost: turn dropout off (or fix its "
                "mask), and seed or remove any randomness inside cost."
            )
        if second_float32 != returned_float32:
            kinds = ("float32" if f else "float64" for f in (returned_float32, second_float32))
            raise NondeterministicCostError(
                "cost returned a {} then a {} value for the same theta: a gradient check "
                "needs a cost whose precision does not change between calls".format(*kinds)
            )
        noise, notes, probes = _float32_handling(cost, theta, lay, kind, args, returns_grad,
                                                 params, j0, returned_float32)
        if returns_grad:
            analytic_raw, source = grads, "grads returned by cost"
        elif callable(grad):
            t3 = time.perf_counter()
            analytic_raw = _call_user(grad, theta, lay, kind, args, "grad")
            source = "grad(theta)"
            t4 = time.perf_counter()
            if is_jitted(grad) and t4 - t3 > GRAD_COMPILE_SECONDS:
                # its compile time too, measured as the cost's: 1st - 2nd call
                _call_user(grad, theta, lay, kind, args, "grad")
                compile_seconds += max(0.0, (t4 - t3) - (time.perf_counter() - t4))
        else:
            analytic_raw, source = grad, "grad"
    analytic = normalise_grad(analytic_raw, lay, kind, source, float32_ok=bool(notes))
    grad_fn = cost if returns_grad else (grad if callable(grad) else None)
    return Problem(theta, analytic, lay, cost, args, kind, returns_grad, j0, compile_seconds,
                   noise=noise, notes=notes, probe_evaluations=probes, grad_fn=grad_fn,
                   cost_seconds=min(t1 - t0, t2 - t1))


# -- float32 ------------------------------------------------------------------------------
def _float32_blocks(params: Any) -> list[str]:
    """Names of the float32 blocks of ``params`` (``["params"]`` for a float32 vector)."""
    if isinstance(params, Mapping):
        return [str(k) for k, v in params.items() if _precision.is_float32(v)]
    return ["params"] if _precision.is_float32(params) else []


def _float32_handling(cost: Callable, theta: np.ndarray, layout: Layout, kind: str,
                      args: tuple, returns_grad: bool, params: Any, j0: float,
                      returned_float32: bool) -> tuple[float, tuple, int]:
    """Noise level, report notes and probe evaluations for a float32 model.

    Nothing to do (``(0.0, (), 0)``) when neither the params nor the cost's value are
    float32. Otherwise ``_precision.classify`` decides: the cost follows its input's dtype
    (checked in float64; noise 0) or computes in float32 (steps and floor from its measured
    noise), from evidence a ReLU kink cannot fake. Either way a warning is issued.
    """
    from ._verdict import NOISE_FACTOR

    blocks = _float32_blocks(params)
    if not blocks and not returned_float32:
        return 0.0, (), 0

    def value_at(x: np.ndarray) -> float:
        value = _call_user(cost, x, layout, kind, args)
        return scalar_cost(value[0] if returns_grad else value, "while measuring its noise")

    precision = _precision.classify(value_at, theta, j0, returned_float32)
    note, warning = _precision.describe(blocks, precision, j0, NOISE_FACTOR)
    warnings.warn(warning, UserWarning, stacklevel=_precision.user_stacklevel())
    return precision.noise, (note,), precision.evaluations


def may_hide_low_precision(problem: Problem) -> bool:
    """Could this float64 problem's cost compute in float32 inside and return a Python
    float? Its noise was never measured (float64 params and value) and its value at theta
    is a float32 number (else it is not one a float32 computation returns). Callers ask
    after a failure, then ``measure_hidden_low_precision``."""
    return (problem.noise == 0 and not problem.probe_evaluations
            and float(np.float32(problem.j0)) == problem.j0)


def measure_hidden_low_precision(problem: Problem) -> tuple[Problem, bool]:
    """Measure the noise of a float64 problem whose check found failures: is the cost
    computing in float32 inside, whatever it is given, and returning a Python float?

    ``prepare`` measures the noise only when the parameters or the cost's value are
    float32. A cost that casts to float32 internally and returns a Python float hides its
    precision; its finite differences then carry noise ~ eps32 |J| / h, far above the
    float64 roundoff floor, and correct components look like failures or kinks. The check
    calls this only after a failure, so a passing check pays nothing.

    Returns the problem with the probe evaluations counted (and, when the noise is far
    above float64 roundoff and every value seen is a float32 number, the measured noise
    and a note, after a warning), and whether the noise is low-precision (then the check
    must be run again with noise-based steps).
    """
    from ._verdict import NOISE_FACTOR

    seen: list[float] = []

    def value_at(x: np.ndarray) -> float:
        value = _call_user(problem.cost, x, problem.layout, problem.params_kind, problem.args)
        seen.append(scalar_cost(value[0] if problem.cost_returns_grad else value,
                                "while measuring its noise"))
        return seen[-1]

    blas = single_threaded_blas() if is_jitted(problem.cost) else contextlib.nullcontext()
    with blas:
        noise, largest, probes = _precision.estimate_noise(value_at, problem.theta)
    counted = replace(problem, probe_evaluations=problem.probe_evaluations + probes)
    j0 = problem.j0
    # A kink crossed by the probe lines also looks like noise; a cost computing in float32
    # is told from it by its values, every one of them a float32 number (a float64 cost
    # gives such values at the probe points with probability ~2**-29 each).
    values = np.array(seen + [j0])
    float32_values = bool(np.all(values.astype(np.float32).astype(np.float64) == values))
    if not (float32_values and noise > _precision.LOW_PRECISION_NOISE * max(abs(j0), largest)):
        return counted, False
    rel = _precision.relative_noise(noise, j0)
    note = (f"the cost computes in low precision (float32?) although params are float64: "
            f"its measured noise sigma/|J| = {rel:.1e} is far above float64 roundoff, so "
            f"the first pass flagged noise as failures; every component was checked again "
            f"with steps and a roundoff floor ({NOISE_FACTOR:g}*sigma/h, sigma = "
            f"{noise:.2e}) from the measured noise. Smaller errors cannot be told from the "
            "cost's noise; to check more tightly, make the cost compute in float64.")
    warnings.warn(f"fastcheck: the cost computes in low precision (float32?) although params "
                  f"are float64 (measured noise sigma/|J| = {rel:.1e}); it was checked again "
                  f"with tolerances from that noise. Compute the cost in float64 for a tight "
                  f"check.", UserWarning, stacklevel=_precision.user_stacklevel())
    return replace(counted, noise=noise, notes=problem.notes + (note,)), True
