"""The exception classes of fastcheck (see docs/api.md, "Errors")."""

from __future__ import annotations

from typing import Any

__all__ = [
    "FastcheckError",
    "NondeterministicCostError",
    "GradientCheckError",
    "ThreadSafetyError",
    "CostEvaluationError",
]


class FastcheckError(Exception):
    """Base class of the errors raised by fastcheck itself."""


class NondeterministicCostError(FastcheckError):
    """``cost`` returned different values for the same ``theta``.

    Usually dropout left on, or unseeded randomness inside the cost.
    """


class GradientCheckError(FastcheckError, AssertionError):
    """A gradient check failed; raised on request (``raise_if_failed``, ``assert_gradient``).

    Attributes
    ----------
    report : Report or None
        The report of the failed check.
    """

    # report: a fastcheck.Report (not imported here: report.py imports this module)
    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class ThreadSafetyError(FastcheckError):
    """The ``threads`` backend gave values that a serial re-evaluation does not reproduce."""


class CostEvaluationError(FastcheckError):
    """``cost`` raised while evaluating a perturbed point.

    Attributes
    ----------
    flat_index : int
        The component being perturbed when ``cost`` raised.
    name : str
        The component as ``block[index]``.
    partial_report : Report or None
        What had been checked before the error, when available.
    """

    def __init__(self, message: str, flat_index: int = -1, name: str = "",
                 partial_report: Any = None) -> None:
        super().__init__(message)
        self.flat_index = flat_index
        self.name = name
        self.partial_report = partial_report
