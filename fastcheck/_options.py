"""The options of ``fc.check``, validated at the boundary: each error names the option, what
was expected and what was given."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def _positive_float(name: str, value: Any, expected: str = "") -> float:
    """A positive finite real number as a float; ``expected`` is what else was allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}a positive float, got {type(value).__name__}")
    result = float(value)
    if not (result > 0 and math.isfinite(result)):
        raise ValueError(f"{name} must be {expected}a positive finite float, got {value!r}")
    return result


def validate_eps(eps: Any) -> float | str:
    if isinstance(eps, str):
        if eps != "auto":
            raise ValueError(f'eps must be "auto" or a positive float, got {eps!r}')
        return eps
    return _positive_float("eps", eps, '"auto" or ')


def validate_rtol(rtol: Any) -> float:
    return _positive_float("rtol", rtol)


def validate_optional_count(name: str, value: Any) -> int | None:
    """None, or a positive int (``threads``, ``max_failures``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be None or a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be None or a positive int, got {value}")
    return int(value)


def validate_fraction(name: str, value: Any) -> float:
    """A float strictly between 0 and 1 (``confidence``, ``target_rate``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def validate_choice(name: str, value: Any, allowed: tuple) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value
