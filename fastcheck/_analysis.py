"""After the verdict: statistics, confidence bounds and hints added to a Report."""

from __future__ import annotations

import dataclasses

import numpy as np

from . import diagnose, stats
from .report import Report


def enrich(report: Report, theta_checked: np.ndarray, confidence: float) -> Report:
    """Return ``report`` with ``stats``, ``failure_rate_bound`` and ``hints`` filled in.

    Parameters
    ----------
    report : Report
        The finished check.
    theta_checked : numpy.ndarray
        Theta at ``report.indices`` (the diagnoses compare residuals with the parameters).
    confidence : float
        Level of the failure-rate bound, in (0, 1).

    Returns
    -------
    Report
        A copy with ``stats`` (see ``stats.error_statistics``), ``failure_rate_bound``
        (``None`` unless a sample was checked; see ``stats.failure_rate_bound``) and
        ``hints`` (see ``diagnose.hints``).
    """
    error_stats = stats.error_statistics(report.rel_errors, report.kinds, report.indices,
                                         report.layout)
    bound = None
    if report.sampled:
        bound = stats.failure_rate_bound(
            {b.name: b.n_failed for b in report.blocks},
            {b.name: b.n_checked for b in report.blocks},
            report.layout, confidence,
        )
    found = diagnose.hints(report, theta_checked)
    return dataclasses.replace(report, stats=error_stats, failure_rate_bound=bound,
                               hints=tuple(found))
