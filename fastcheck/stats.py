"""SciPy statistics of the per-component errors, and confidence bounds on the failure rate.

Everything returned here is made of plain ``dict``/``float``/``int``/``None`` values, so a
Report's ``to_dict()`` stays JSON-serialisable.

Everything needing ``scipy.stats`` is computed when a Report's ``stats`` is first read;
the failure-rate bounds a Report carries from the start (``upper_bounds``) need only
``scipy.special``, imported on first use.

Relative errors are compared on a log10 scale. A relative error of exactly 0 (the analytic
and numeric values agree to the last bit, or both are 0) has no logarithm: relative errors
below :data:`LOG10_FLOOR` are raised to it before taking log10, and ``n_floored`` says how
many were.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from ._verdict import FAIL, KINK, NONFINITE, OK
from .layout import Layout
from .views.bands import BAND_KEYS, EDGES, LOG10_FLOOR

__all__ = [
    "BANDS",
    "LOG10_FLOOR",
    "clopper_pearson_upper",
    "upper_bounds",
    "hypergeometric_upper",
    "error_statistics",
    "failure_rate_bound",
    "band_counts",
]

#: Ng's bands on the relative error: (key, lower edge, upper edge), upper edge inclusive
#: except for the first band (as in ``views.bands.ng_band``).
BANDS = tuple(zip(BAND_KEYS, (0.0, *EDGES), (*EDGES, math.inf)))
_KINDS = (OK, KINK, FAIL, NONFINITE)
_QUANTILES = (50, 90, 99)


def _num(x) -> float | None:
    """A plain float, or None when not finite (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def band_counts(rel_errors: np.ndarray) -> dict[str, int]:
    """How many relative errors fall in each of Ng's bands (non-finite ones apart).

    Parameters
    ----------
    rel_errors : numpy.ndarray
        Per-component relative errors ``|a - n| / (|a| + |n|)``.

    Returns
    -------
    dict
        ``{"<1e-7": int, "1e-7..1e-5": int, "1e-5..1e-3": int, ">1e-3": int,
        "nonfinite": int}``.
    """
    rel = np.asarray(rel_errors, dtype=np.float64)
    finite = np.isfinite(rel)
    # Band i holds edges[i-1] < e <= edges[i] except the first, which is e < 1e-7.
    band = np.searchsorted(np.array(EDGES), rel[finite], side="left")
    band[rel[finite] == EDGES[0]] = 1
    counts = np.bincount(band, minlength=4)
    out = {key: int(c) for (key, _, _), c in zip(BANDS, counts)}
    out[NONFINITE] = int(np.count_nonzero(~finite))
    return out


def _describe(log_errors: np.ndarray) -> dict | None:
    """``scipy.stats.describe`` as a dict of plain floats (None where undefined)."""
    if log_errors.size == 0:
        return None
    import scipy.stats

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Constant data: scipy warns about the moments and returns NaN for them.
        warnings.simplefilter("ignore", RuntimeWarning)
        d = scipy.stats.describe(log_errors)
    variance = d.variance if log_errors.size > 1 else math.nan
    return {"nobs": int(d.nobs), "min": _num(d.minmax[0]), "max": _num(d.minmax[1]),
            "mean": _num(d.mean), "variance": _num(variance), "skewness": _num(d.skewness),
            "kurtosis": _num(d.kurtosis)}


def _group_statistics(rel_errors: np.ndarray, kinds: np.ndarray) -> dict:
    rel = np.asarray(rel_errors, dtype=np.float64)
    finite = rel[np.isfinite(rel)]
    floored = finite < LOG10_FLOOR
    log_errors = np.log10(np.maximum(finite, LOG10_FLOOR))
    if finite.size:
        import scipy.stats

        q = scipy.stats.scoreatpercentile(finite, _QUANTILES)
        quantiles = {str(p): _num(v) for p, v in zip(_QUANTILES, q)}
        quantiles["max"] = _num(finite.max())
    else:
        quantiles = {str(p): None for p in _QUANTILES} | {"max": None}
    return {
        "n": int(rel.size),
        "n_floored": int(np.count_nonzero(floored)),
        "log10_rel_error": _describe(log_errors),
        "quantiles": quantiles,
        "bands": band_counts(rel),
        "kinds": {k: int(np.count_nonzero(kinds == k)) for k in _KINDS},
    }


def error_statistics(rel_errors: np.ndarray, kinds: np.ndarray, indices: np.ndarray,
                     layout: Layout) -> dict:
    """The distribution of the relative errors, over all checked components and per block.

    Parameters
    ----------
    rel_errors, kinds, indices : numpy.ndarray
        Per checked component (as in a Report): relative error, kind and flat index
        (ascending).
    layout : Layout
        The blocks.

    Returns
    -------
    dict
        ``{"log10_floor": 1e-17, "overall": group, "blocks": {name: group}}`` where each
        group is ``{"n", "n_floored", "log10_rel_error": describe-dict or None,
        "quantiles": {"50", "90", "99", "max"} (of the relative errors themselves),
        "bands": band_counts(...), "kinds": {"ok", "kink", "fail", "nonfinite"}}`` and a
        describe-dict is ``scipy.stats.describe`` of log10 of the relative errors
        (floored at ``log10_floor``): ``{"nobs", "min", "max", "mean", "variance",
        "skewness", "kurtosis"}``.
    """
    kinds = np.asarray(kinds)
    bounds = np.searchsorted(layout.block_of(indices), np.arange(len(layout) + 1))
    blocks = {}
    for b, name in enumerate(layout.names):
        s = slice(int(bounds[b]), int(bounds[b + 1]))
        blocks[name] = _group_statistics(rel_errors[s], kinds[s])
    return {"log10_floor": LOG10_FLOOR, "overall": _group_statistics(rel_errors, kinds),
            "blocks": blocks}


def clopper_pearson_upper(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper–Pearson upper bound on a rate after ``k`` events in ``n`` trials.

    The ``confidence`` quantile of Beta(k + 1, n - k), computed as
    ``scipy.special.betaincinv(k + 1, n - k, confidence)`` (what ``scipy.stats.beta.ppf``
    computes, without importing ``scipy.stats``); 1.0 when ``k == n`` (including
    ``n == 0``). With ``k == 0`` this is ``1 - (1 - confidence) ** (1 / n)``, about
    ``3 / n`` at 95 %.
    """
    if k >= n:
        return 1.0
    from scipy.special import betaincinv

    return float(betaincinv(k + 1, n - k, confidence))


def upper_bounds(n_failed: list[int], n_checked: list[int], sizes: tuple[int, ...],
                 confidence: float) -> tuple[float, list[float]]:
    """Upper confidence bounds on the failing fraction, over all components and per block.

    Parameters
    ----------
    n_failed, n_checked : list of int
        Per block: failing and checked components.
    sizes : tuple of int
        Per block: its number of components.
    confidence : float
        One-sided confidence level, e.g. 0.95.

    Returns
    -------
    overall : float
        Bound on the fraction of all ``sum(sizes)`` components that fail
        (:func:`stratified_upper`; the exact fraction when every component was checked).
    blocks : list of float
        The same per block (0.0 for an empty block).
    """
    blocks = []
    for k, n, size in zip(n_failed, n_checked, sizes):
        if size == 0:
            blocks.append(0.0)
        elif n >= size:
            blocks.append(k / size)
        else:
            blocks.append(clopper_pearson_upper(k, n, confidence))
    return stratified_upper(n_failed, n_checked, sizes, confidence), blocks


class Strata(NamedTuple):
    """A sample stratified by block, as the bounds read it.

    ``known``: failing components of the blocks checked completely (counted exactly);
    ``unseen``: components of the blocks with nothing checked (possibly all failing);
    ``part``: ``(failed, checked, size)`` of the blocks checked in part, ``weight`` their
    share of all ``total`` components and ``n_eff`` their effective sample size.
    """

    total: int
    known: int
    unseen: int
    part: list
    weight: float
    n_eff: float


def strata(n_failed: list[int], n_checked: list[int], sizes: tuple[int, ...]) -> Strata:
    """Split a per-block sample into what is known, unseen and sampled (see ``Strata``).

    A stratified sample gives every block at least one component, so small blocks get more
    than their share and big ones less. With ``v_b`` the share of block b among the blocks
    checked in part, ``n_eff = 1 / sum(v_b^2 / n_b)`` (Kish's effective sample size for
    unequal weights): ``n`` for a proportional sample, less when a big block was
    under-sampled.
    """
    total = sum(sizes)
    known = sum(k for k, n, size in zip(n_failed, n_checked, sizes) if n >= size)
    unseen = sum(size for n, size in zip(n_checked, sizes) if n == 0)
    part = [(k, n, size) for k, n, size in zip(n_failed, n_checked, sizes) if 0 < n < size]
    part_size = sum(size for _, _, size in part)
    n_eff = 1.0 / sum((size / part_size) ** 2 / n for _, n, size in part) if part else 0.0
    return Strata(total, known, unseen, part, part_size / total if total else 0.0, n_eff)


def stratified_upper(n_failed: list[int], n_checked: list[int], sizes: tuple[int, ...],
                     confidence: float) -> float:
    """Upper confidence bound on the failing fraction of all components, from a sample
    stratified by block.

    Blocks checked completely count exactly; a block with nothing checked counts as
    possibly all failing; the blocks checked in part are pooled with their weights: the
    weighted failing fraction ``p`` and the effective sample size ``n_eff``
    (:func:`strata`) give the Clopper–Pearson bound with ``n_eff`` trials and
    ``p n_eff`` events (Korn and Graubard's bound for complex samples, with Kish's
    design effect). For a proportional sample it is the pooled bound of ``k`` failures in
    ``n``; pooling ``k`` and ``n`` for a skewed one under-covered: 100 one-entry blocks and a
    10,000-entry block all wrong, ``sample=200``, gave 0.56 for a true 0.99.
    """
    st = strata(n_failed, n_checked, sizes)
    if not st.total:
        return 0.0
    exact = (st.known + st.unseen) / st.total
    if not st.part:
        return min(1.0, exact)
    part_size = sum(size for _, _, size in st.part)
    events = st.n_eff * sum(size / part_size * k / n for k, n, size in st.part)
    if events >= st.n_eff:
        bound = 1.0
    else:
        from scipy.special import betaincinv

        bound = float(betaincinv(events + 1.0, st.n_eff - events, confidence))
    return min(1.0, exact + st.weight * bound)


def hypergeometric_upper(k: int, n: int, population: int, confidence: float) -> float:
    """Exact upper bound on the failing fraction of a finite population.

    ``n`` components were drawn without replacement from ``population`` and ``k`` of them
    failed. The bound is ``K / population`` for the largest number of failing components
    ``K`` still giving ``P(X <= k) > 1 - confidence`` (a one-sided test). It is ``k / n``
    when the whole population was checked, and never above the Clopper–Pearson bound by
    more than rounding.
    """
    if n >= population:
        return k / population if population else 1.0
    import scipy.stats

    alpha = 1.0 - confidence
    lo, hi = k, population - (n - k)  # K = lo is always plausible; K > hi is impossible
    # P(X <= k; K) decreases as K grows: find the last K with P > alpha by bisection.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if scipy.stats.hypergeom.cdf(k, population, mid, n) > alpha:
            lo = mid
        else:
            hi = mid - 1
    return lo / population


def failure_rate_bound(n_failed_blocks: dict[str, int], n_checked_blocks: dict[str, int],
                       layout: Layout, confidence: float) -> dict:
    """Upper confidence bounds on the fraction of all components that fail.

    Parameters
    ----------
    n_failed_blocks, n_checked_blocks : dict
        Block name -> failing / checked components.
    layout : Layout
        The blocks and their sizes.
    confidence : float
        One-sided confidence level, e.g. 0.95.

    Returns
    -------
    dict
        ``{"confidence", "method": "clopper-pearson", "overall", "blocks": {name: float},
        "n_failed", "n_checked", "n_params", "finite_population": {"overall", "blocks"}}``.
        ``blocks`` are Clopper–Pearson bounds (binomial: conservative for sampling without
        replacement), ``overall`` the stratified bound of :func:`stratified_upper`; a block
        checked completely gets its exact failing fraction. ``finite_population`` holds
        the exact hypergeometric bounds, a little tighter when a large share of a block was
        checked (overall: for the blocks checked in part when their allocation is
        proportional, else the stratified bound).
    """
    failed = [n_failed_blocks[name] for name in layout.names]
    checked = [n_checked_blocks[name] for name in layout.names]
    overall, per_block = upper_bounds(failed, checked, layout.sizes, confidence)
    finite = {name: (0.0 if size == 0 else hypergeometric_upper(k, n, size, confidence))
              for name, k, n, size in zip(layout.names, failed, checked, layout.sizes)}
    k, n, total = sum(failed), sum(checked), layout.size
    # blocks checked completely count exactly; the hypergeometric bound of the others
    # assumes a simple random sample of them: valid when their allocation is proportional
    # (n_eff = n), not for a skewed one (then the stratified bound)
    st = strata(failed, checked, layout.sizes)
    n_part = sum(c for _, c, _ in st.part)
    finite_overall = overall
    if st.part and not st.unseen and st.n_eff >= n_part * (1 - 1e-9):
        finite_overall = st.known / total + st.weight * hypergeometric_upper(
            sum(f for f, _, _ in st.part), n_part, sum(size for _, _, size in st.part),
            confidence)
    return {
        "confidence": float(confidence),
        "method": "clopper-pearson",
        "overall": overall,
        "blocks": dict(zip(layout.names, per_block)),
        "n_failed": int(k),
        "n_checked": int(n),
        "n_params": int(total),
        "finite_population": {"overall": finite_overall, "blocks": finite},
    }
