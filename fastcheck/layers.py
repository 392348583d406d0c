"""``fc.check_layer``: check one layer's backward pass the way course code writes it.

A layer is a pair ``forward(*inputs, *args) -> out | (out, cache) | (out_1, ..., cache)``
and ``backward(dout, cache)`` (or ``backward(dout, *inputs, *args)`` without a cache).
The check reduces it to a scalar cost ``J = sum_k sum(out_k * dout_k)`` with a seeded
random upstream gradient ``dout_k`` per output, whose gradient with respect to each
floating-point input is exactly what ``backward`` returns; then ``fc.check`` compares the
two component by component, one block per input.

Data flow: validate the inputs -> one forward/backward at the inputs (private copies) ->
the cost and the analytic gradient -> ``fc.check``.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._inputs import _same_or_raise
from ._plan import resolve_seed
from ._values import as_args
from .report import Report

__all__ = ["check_layer"]


# -- the cost fc.check evaluates (a small class: picklable for worker processes) ----------
class LayerCost:
    """``J(params) = sum_k sum(out_k * dout_k)`` of a layer's forward pass.

    ``params`` maps the floating-point input names to arrays; the other inputs (integer
    index arrays) are fixed and passed in their place. Every call gets its own copies of
    the fixed inputs and of ``args`` (a forward that updates ``bn_param`` in place, or
    writes into an index array, cannot change later evaluations or the caller's objects).
    """

    def __init__(self, forward: Callable, names: tuple[str, ...], fixed: dict[str, Any],
                 args: tuple, douts: tuple[np.ndarray, ...], with_cache: bool):
        self.forward = forward
        self.names = names
        self.fixed = fixed
        self.args = args
        self.douts = douts
        self.with_cache = with_cache

    def outputs(self, params: Mapping[str, np.ndarray]) -> tuple[tuple, Any]:
        """Run ``forward`` at ``params``: the outputs and the cache (None without one)."""
        values = [params[n] if n not in self.fixed else _fresh(self.fixed[n])
                  for n in self.names]
        result = self.forward(*values, *copy.deepcopy(self.args))
        if self.with_cache:
            return tuple(result[:-1]), result[-1]
        return (result,), None

    def __call__(self, params: Mapping[str, np.ndarray]) -> Any:
        outs, _ = self.outputs(params)
        total = np.float64(0.0)
        for out, dout in zip(outs, self.douts):
            out = np.asarray(out)
            if out.dtype.kind != "c":  # float32 outputs are summed in float64; complex
                out = out.astype(np.float64, copy=False)  # stays (method="complex")
            total = total + np.sum(out * dout)
        return total


# -- validation ---------------------------------------------------------------------------
def _split_inputs(inputs: Any) -> tuple[tuple[str, ...], dict, dict]:
    """Names in order, private copies of the float inputs and of the fixed (integer) ones."""
    if not isinstance(inputs, Mapping):
        raise TypeError(
            "inputs must be a mapping name -> array in the order of forward's leading "
            f'arguments (e.g. {{"x": x, "w": w, "b": b}}), got {type(inputs).__name__}'
        )
    if len(inputs) == 0:
        raise ValueError("inputs must name at least one array, got an empty mapping")
    floats: dict[str, np.ndarray] = {}
    fixed: dict[str, Any] = {}
    for name, value in inputs.items():
        if not isinstance(name, str):
            raise TypeError(f"inputs keys must be strings (the input names), got {name!r}")
        if isinstance(value, (numbers.Integral, np.bool_)):  # a group count G, a flag:
            fixed[name] = value  # not floating point, so passed as is and not checked
            continue
        if not isinstance(value, np.ndarray):
            raise TypeError(f"inputs[{name!r}] must be a numpy array, got "
                            f"{type(value).__name__} (an integer is passed as is)")
        kind = value.dtype.kind
        if kind == "f":
            if value.dtype.itemsize < 4:
                raise TypeError(f"inputs[{name!r}] must be float64 or float32, got "
                                f"{value.dtype}")
            floats[name] = value  # fc.check makes its own float64 copy
        elif kind in "iub":
            fixed[name] = np.array(value, copy=True)
        else:
            raise TypeError(f"inputs[{name!r}] must be a float array (checked) or an "
                            f"integer array (passed as is), got dtype {value.dtype}")
    if not floats:
        raise ValueError(
            "inputs has no floating-point array to check: every input is an integer "
            f"array ({list(inputs)})"
        )
    return tuple(inputs), floats, fixed


def _outputs_of(result: Any) -> tuple[tuple[np.ndarray, ...], Any, bool]:
    """Outputs, cache and whether ``forward`` returned a cache, with clear errors."""
    if isinstance(result, np.ndarray):
        outs, cache, with_cache = (result,), None, False
    elif isinstance(result, tuple):
        if len(result) < 2:
            raise TypeError(
                f"forward returned a tuple of length {len(result)}; expected the output "
                "array, (out, cache) or (out_1, ..., out_k, cache)"
            )
        outs, cache, with_cache = tuple(result[:-1]), result[-1], True
    else:
        raise TypeError(
            f"forward returned {type(result).__name__}; expected the output array, "
            "(out, cache) or (out_1, ..., out_k, cache)"
        )
    for k, out in enumerate(outs):
        label = "output" if len(outs) == 1 else f"output {k}"
        if not isinstance(out, np.ndarray):
            hint = (" (a loss that returns (loss, dx) is checked with fc.check(..., "
                    "grad=True))" if isinstance(out, (float, np.floating)) else "")
            raise TypeError(f"forward's {label} must be a numpy array, got "
                            f"{type(out).__name__}{hint}")
        if out.dtype.kind != "f":
            raise TypeError(f"forward's {label} must be a float array, got dtype {out.dtype}")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"forward's {label} must be finite at the inputs, but it holds "
                             "NaN or inf")
    return outs, cache, with_cache


def _draw_douts(outs: tuple[np.ndarray, ...], seed: int) -> tuple[np.ndarray, ...]:
    """One standard normal ``dout`` per output, in order, from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(np.shape(out)) for out in outs)


def _gradients(value: Any, names: tuple[str, ...], floats: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
    """Map what ``backward`` returned onto the float inputs, checking every shape."""
    checked = [n for n in names if n in floats]
    if isinstance(value, Mapping):
        grads = {}
        for name in checked:
            key = name if name in value else "d" + name if "d" + name in value else None
            if key == name and "d" + name in value:  # both: ambiguous unless the same
                _same_or_raise(value, name, "the mapping returned by backward", True)
            if key is None:
                raise ValueError(
                    f"backward returned a mapping without a gradient for input {name!r}: "
                    f"expected key {name!r} or {'d' + name!r}, got keys "
                    f"{sorted(map(str, value))}"
                )
            grads[name] = value[key]
    else:
        if isinstance(value, np.ndarray):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            raise TypeError(
                f"backward returned {type(value).__name__}; expected the gradients of "
                f"{checked} as a tuple, one array, or a mapping keyed like inputs"
            )
        if len(value) == len(checked):
            grads = dict(zip(checked, value))
        elif len(value) == len(names):  # a slot for every input, integer ones included
            grads = {n: g for n, g in zip(names, value) if n in floats}
        else:
            raise ValueError(
                f"backward returned {len(value)} gradient(s) but inputs has "
                f"{len(checked)} floating-point input(s) {checked}"
                + (f" (and {len(names)} in all)" if len(names) != len(checked) else "")
            )
    for name, grad in grads.items():
        if not isinstance(grad, np.ndarray) or grad.dtype.kind not in "fiu":
            raise TypeError(f"d{name} returned by backward must be a float array, got "
                            f"{type(grad).__name__}"
                            + (f" of dtype {grad.dtype}" if isinstance(grad, np.ndarray)
                               else ""))
        if grad.shape != floats[name].shape:
            raise ValueError(f"d{name} has shape {grad.shape} but {name} has shape "
                             f"{floats[name].shape}")
        grads[name] = np.array(grad, copy=True)
    return grads


def _private(inputs: Mapping[str, np.ndarray], names: tuple[str, ...], floats: Mapping
             ) -> list[np.ndarray]:
    """Fresh copies of the inputs, the float ones in float64 (the precision fc.check's cost
    hands ``forward``), for the one forward/backward call that gives the analytic values."""
    return [np.array(inputs[n], dtype=np.float64, copy=True) if n in floats
            else _fresh(inputs[n]) for n in names]


def _fresh(value: Any) -> Any:
    """A private copy of a fixed input: an integer array copied, an integer scalar as is."""
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def _validate_options(check_options: dict) -> None:
    for key in ("layout", "grad", "params", "cost"):
        if key in check_options:
            raise TypeError(f"check_layer() got {key}=, which it builds itself from forward, "
                            "backward and inputs")


def check_layer(forward: Callable[..., Any], backward: Callable[..., Any],
                inputs: Mapping[str, np.ndarray], args: tuple = (), *,
                seed: int | None = None, **check_options: Any) -> Report:
    """Check a layer's backward pass against finite differences of its forward pass.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs.values(), *args)`` returning the output array, ``(out, cache)``,
        or ``(out_1, ..., out_k, cache)`` for a layer with several outputs.
    backward : callable
        ``backward(dout, cache)`` (``backward(dout_1, ..., dout_k, cache)``), or
        ``backward(dout, *inputs.values(), *args)`` when ``forward`` returns no cache. It
        returns the gradients of the floating-point inputs in their order (a tuple, or one
        array when there is one), or a mapping keyed like ``inputs`` (``x`` or ``dx``).
    inputs : mapping
        ``name -> array`` in the positional order of ``forward``'s leading arguments.
        Float arrays are checked (one report block each), float32 ones as ``fc.check``
        checks float32 parameters (in float64 when the layer follows its input's dtype,
        else with tolerances from its measured noise); integer arrays (the word indices
        of an embedding) and integer scalars (a group count) are passed in their place
        and not checked.
    args : tuple
        Further arguments of ``forward`` after the inputs (``conv_param``, ``bn_param``,
        an integer group count); every call gets its own deep copy.
    seed : int or None
        Seed of the upstream gradients ``dout`` (``np.random.default_rng(seed)``, one
        standard normal array per output, in order) and of any sampling; a fresh one is
        drawn when None. ``report.seed`` reproduces both.
    **check_options
        Any keyword option of :func:`fastcheck.check` (``sample``, ``method``,
        ``backend``, ``rtol``, ...).

    Returns
    -------
    Report
        The report of ``fc.check`` on ``J = sum_k sum(out_k * dout_k)``, one block per
        checked input.

    Raises
    ------
    ValueError, TypeError
        Bad input, a missing output, the wrong number of gradients, or a gradient whose
        shape is not its input's (``dx has shape (2, 3, 0, 0) but x has shape
        (2, 3, 5, 5)``).
    NondeterministicCostError
        ``forward`` gave different outputs for the same inputs (dropout without a seed).

    Examples
    --------
    >>> import numpy as np, fastcheck as fc
    >>> def affine_forward(x, w, b):
    ...     return x @ w + b, (x, w)
    >>> def affine_backward(dout, cache):
    ...     x, w = cache
    ...     return dout @ w.T, x.T @ dout, dout.sum(axis=0)
    >>> rng = np.random.default_rng(0)
    >>> inputs = {"x": rng.normal(size=(4, 3)), "w": rng.normal(size=(3, 2)),
    ...           "b": rng.normal(size=2)}
    >>> fc.check_layer(affine_forward, affine_backward, inputs, seed=0).passed
    True
    """
    from .check import check  # check.py imports the heavy machinery

    if not callable(forward):
        raise TypeError(f"forward must be callable, got {type(forward).__name__}")
    if not callable(backward):
        raise TypeError(f"backward must be callable, got {type(backward).__name__}")
    args = as_args(args)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be None or a non-negative int, got {seed!r}")
    _validate_options(check_options)
    names, floats, fixed = _split_inputs(inputs)
    used_seed = resolve_seed(seed)
    args = copy.deepcopy(args)

    outs, cache, with_cache = _outputs_of(forward(*_private(inputs, names, floats),
                                                  *copy.deepcopy(args)))
    douts = _draw_douts(outs, used_seed)
    if with_cache:
        raw = backward(*[d.copy() for d in douts], cache)
    else:
        raw = backward(douts[0].copy(), *_private(inputs, names, floats), *copy.deepcopy(args))
    grads = _gradients(raw, names, floats)

    cost = LayerCost(forward, names, fixed, args, douts, with_cache)
    return check(cost, grads, dict(floats), seed=used_seed, **check_options)
