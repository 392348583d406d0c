"""Checks of one value: its dtype, its finiteness, the cost's scalar.

Each takes one value the user passed (or the cost returned) and either returns it as
float64 or raises an error that names it, the expected and the actual value. The whole
inputs (params, grad, cost, args) are put together in ``_inputs``; the backends call
``scalar_cost`` on every cost value they compute.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np


def _dtype_error(what: str, arr: np.ndarray, float32_ok: bool) -> TypeError:
    if float32_ok:
        return TypeError(
            f"{what} must be float64 (or float32), got dtype {arr.dtype}; convert with "
            f".astype(np.float64) (gradient checks need at least single precision)"
        )
    why = (" (a float32 gradient is accepted for float32 params or a float32 cost)"
           if arr.dtype == np.float32 else "")
    return TypeError(f"{what} must be float64, got dtype {arr.dtype}{why}; convert with "
                     ".astype(np.float64)")


def _as_float64_array(what: str, value: Any, float32_ok: bool = False) -> np.ndarray:
    """``value`` as a float64 array (float32 too when ``float32_ok``: see _precision)."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple)) or isinstance(value, numbers.Real):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, OverflowError) as exc:  # ragged nested lists
            raise ValueError(f"{what} cannot be made an array: {exc}") from None
        if arr.dtype.kind in "iu" or arr.dtype == np.float64:
            arr = arr.astype(np.float64)
    else:
        raise TypeError(f"{what} must be a float64 numpy array, got {type(value).__name__}")
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in ((4, 8) if float32_ok else (8,)):
        raise _dtype_error(what, arr, float32_ok)  # either byte order is converted later
    return arr


def _check_finite(what: str, arr: np.ndarray) -> None:
    if arr.size and not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr.reshape(-1)))
        where = np.unravel_index(int(bad[0]), arr.shape) if arr.ndim else ()
        raise ValueError(
            f"{what} must be finite, but {bad.size} entr{'y is' if bad.size == 1 else 'ies are'} "
            f"NaN or inf (first at index {tuple(int(k) for k in where)})"
        )


def scalar_cost(value: Any, where: str) -> float:
    """The cost's return value as a float, or a TypeError naming what came back."""
    if type(value) is float:
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"cost must return a real scalar, got a bool {where}")
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        value = value.reshape(())[()]
    if isinstance(value, np.floating) and value.dtype.itemsize < 4:
        raise TypeError(
            f"cost must return a float64 scalar, got {value.dtype} {where}: in "
            f"{value.dtype} the finite differences are roundoff (compute the cost in float64)"
        )
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError:  # e.g. a Python int beyond the float range
            # typeshed's numbers.Real has no comparison with int (mypy's operator error,
            # switched off for all of _inputs before this moved here); every Real has one
            return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    shape = getattr(value, "shape", None)
    desc = f"an array of shape {shape}" if shape is not None else repr(value)[:60]
    if isinstance(value, tuple) and len(value) == 2:
        desc = "a pair; for a cost that returns (loss, grads) pass grad=True"
    raise TypeError(f"cost must return a real scalar, got {desc} ({type(value).__name__}) {where}")


def as_args(args: Any) -> tuple:
    """The extra arguments of ``cost`` as a tuple: a tuple as is, None as none, a list or
    an iterator (a generator) unpacked, anything else (one array, one number) as the
    single argument. Done once, at the boundary: an iterator can be read only once."""
    if isinstance(args, tuple):
        return args
    if args is None:
        return ()
    if isinstance(args, (list, Iterator)):
        return tuple(args)
    return (args,)
