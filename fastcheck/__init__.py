"""fastcheck: fast, explanatory gradient checking for hand-written backprop.

The public names are those of docs/api.md; everything else is private and may change.
"""

from .binding import Binding, bind_params
from .check import assert_gradient, check
from .errors import (
    CostEvaluationError,
    FastcheckError,
    GradientCheckError,
    NondeterministicCostError,
    ThreadSafetyError,
)
from .layers import check_layer
from .layout import Layout
from .report import BlockReport, ComponentError, Report
from .taylor import TaylorResult, taylor_test

__version__ = "0.1.0"

__all__ = [
    "check",
    "assert_gradient",
    "check_layer",
    "taylor_test",
    "TaylorResult",
    "Layout",
    "Report",
    "BlockReport",
    "ComponentError",
    "FastcheckError",
    "NondeterministicCostError",
    "GradientCheckError",
    "ThreadSafetyError",
    "CostEvaluationError",
    "bind_params",
    "Binding",
]
