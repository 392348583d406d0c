"""Ng's thresholds on a relative error: the one definition of the bands and their names."""

from __future__ import annotations

import math

__all__ = ["GREAT", "ACCEPTABLE", "BUG", "EDGES", "BAND_KEYS", "BAND_HEADERS", "LOG10_FLOOR",
           "ng_band"]

#: Ng's thresholds on the relative error: below GREAT great, up to ACCEPTABLE acceptable,
#: beyond BUG almost certainly a bug.
GREAT, ACCEPTABLE, BUG = 1e-7, 1e-5, 1e-3
#: The band edges in increasing order.
EDGES = (GREAT, ACCEPTABLE, BUG)
#: Keys of the four bands (``stats`` counts components under these keys). Band 0 holds
#: errors ``< 1e-7``; band i > 0 holds ``EDGES[i-1] <= e <= EDGES[i]`` (1e-7 itself
#: belongs to band 1), the last ``> 1e-3``.
BAND_KEYS = ("<1e-7", "1e-7..1e-5", "1e-5..1e-3", ">1e-3")
#: Column headers of the bands in tables.
BAND_HEADERS = ("<1e-7", "<1e-5", "<1e-3", ">1e-3")
#: Relative errors below this (0 among them) are raised to it before taking log10.
LOG10_FLOOR = 1e-17


def ng_band(relative_error: float, passed: bool = False) -> str:
    """Ng's reading of a relative error, in words.

    Parameters
    ----------
    relative_error : float
        A global relative error ``||a - n|| / (||a|| + ||n||)``.
    passed : bool, optional
        True when no component failed its own test: then an error beyond 1e-3 is not
        called "almost certainly a bug" (the per-component test, which accounts for each
        component's finite-difference error, found none).

    Returns
    -------
    str
        For example ``"< 1e-7: great"``.
    """
    if not math.isfinite(relative_error):
        return "not finite: some evaluations overflowed or were NaN"
    if relative_error < GREAT:
        return "< 1e-7: great"
    if relative_error <= ACCEPTABLE:
        return "<= 1e-5: acceptable"
    if relative_error <= BUG:
        return "between 1e-5 and 1e-3: look again"
    if passed:
        return "> 1e-3, yet no component fails its own test: noise or truncation, look again"
    return "> 1e-3: almost certainly a bug"
