"""The per-block figures of a report: BlockReport, the relative errors and the verdicts.

Everything here is computed for all blocks at once from the per-component arrays of a
finished check (components in ascending flat index, so each block is one slice of them).
``Report.from_components`` is the only caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .layout import Layout
from .views.bands import ACCEPTABLE


@dataclass(frozen=True)
class BlockReport:
    """The check of one named block of parameters.

    ``relative_error`` is over every checked component of the block; the verdict reads
    the error of its smooth (non-kink) components. ``failure_rate_bound`` is the upper
    confidence bound on the failing fraction of the block (None unless sampled).
    """

    name: str
    shape: tuple
    n_params: int
    n_checked: int
    relative_error: float
    max_rel_error: float
    n_failed: int
    verdict: str
    n_kinks: int = 0
    failure_rate_bound: float | None = None
    #: Components whose noise floor (a float32 cost) is above a quarter of their gradient,
    #: so a factor-2 error could pass: a block of nothing else is "warn", not "pass".
    n_unresolved: int = 0


def global_relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``||a - n|| / (||a|| + ||n||)`` (0 when both are 0)."""
    with np.errstate(invalid="ignore", over="ignore"):
        denom = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
        num = float(np.linalg.norm(analytic - numeric))
    if denom == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / denom if math.isfinite(num) and math.isfinite(denom) else math.inf


def block_relative_errors(bounds: np.ndarray, analytic: np.ndarray, numeric: np.ndarray,
                           smooth: np.ndarray) -> np.ndarray:
    """``global_relative_error`` of every block (``[bounds[b], bounds[b + 1])`` of the
    arrays), over all components and over the ``smooth`` ones: shape ``(2, n_blocks)``."""
    n_blocks = bounds.shape[0] - 1
    checked = bounds[1:] > bounds[:-1]
    sums = np.zeros((6, n_blocks))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if checked.any():  # the non-empty blocks tile the arrays
            squares = np.stack([analytic - numeric, analytic, numeric])
            squares *= squares
            starts = bounds[:-1][checked]
            sums[:3, checked] = np.add.reduceat(squares, starts, axis=1)
            if smooth.all():
                sums[3:] = sums[:3]
            else:
                sums[3:, checked] = np.add.reduceat(np.where(smooth, squares, 0.0), starts,
                                                    axis=1)
        norms = np.sqrt(sums).reshape(2, 3, n_blocks)
        num = norms[:, 0]
        denom = norms[:, 1] + norms[:, 2]
        rel = num / np.where(denom == 0.0, 1.0, denom)
    rel = np.where(denom == 0.0, np.where(num == 0.0, 0.0, np.inf), rel)
    return np.where(np.isfinite(num) & np.isfinite(denom), rel, np.inf)


def verdict_of(n_failed: int, relative_error: float, noise_floor: bool = False) -> str:
    """``fail`` when a component fails, ``warn`` when none does but the relative error (of
    the smooth components) is beyond Ng's acceptable band, else ``pass``.

    With ``noise_floor`` (a float32 cost checked against its measured noise) Ng's
    float64 bands do not apply: a correct gradient's error sits at the noise level, and
    only failed components (judged against that noise) mean anything.
    """
    if n_failed:
        return "fail"
    if not relative_error <= ACCEPTABLE and not noise_floor:
        return "warn"
    return "pass"


def with_unresolved(blocks: list[BlockReport], layout: Layout, indices: np.ndarray,
                     blind: np.ndarray) -> list[BlockReport]:
    """Count each block's unresolved components; a block with nothing but those (and no
    failure) is "warn": its check could not have seen even a factor-2 error."""
    counts = np.bincount(layout.block_of(indices[blind]), minlength=len(layout))
    return [replace(b, n_unresolved=int(k),
                    verdict="warn" if b.verdict == "pass" and 0 < b.n_checked <= k
                    else b.verdict) for b, k in zip(blocks, counts)]


def unresolved_note(blocks: list[BlockReport], k: int, n: int) -> str:
    """Say which components the cost's noise left unresolved, and what to do."""
    whole = [b.name for b in blocks if 0 < b.n_checked <= b.n_unresolved]
    where = f" (every one of {', '.join(whole)})" if whole else ""
    return (f"{k:,} of {n:,} checked components{where} passed unresolved: the error floor "
            "set by the cost's measured float32 noise is above a quarter of their gradient, "
            "so even a factor-2 error would not show there. A large cost value (a constant "
            "term) leaves few float32 digits for its changes: compute the cost in float64, "
            "or leave the constant out, to check them.")


def block_reports(layout: Layout, indices: np.ndarray, analytic: np.ndarray,
                   numeric: np.ndarray, rel: np.ndarray, smooth: np.ndarray,
                   failing: np.ndarray,
                   noise_floor: bool = False) -> list[BlockReport]:
    """One BlockReport per block (components grouped by their ascending flat index),
    every figure computed for all blocks at once (a loop per block was slow)."""
    n_blocks = len(layout)
    block = layout.block_of(indices)
    bounds = np.searchsorted(indices, layout.bounds)
    counts = np.diff(bounds)
    rel_all, rel_smooth = block_relative_errors(bounds, analytic, numeric, smooth)
    n_failed = np.bincount(block, weights=failing, minlength=n_blocks).astype(np.int64)
    n_kinks = np.bincount(block, weights=~smooth, minlength=n_blocks).astype(np.int64)
    max_rel = np.zeros(n_blocks)
    checked = counts > 0
    if checked.any():  # the non-empty blocks tile rel: fmax ignores NaN unless all are
        max_rel[checked] = np.fmax.reduceat(rel, bounds[:-1][checked])
    sizes = layout.sizes
    return [
        BlockReport(name, tuple(shape), sizes[b], int(counts[b]), float(rel_all[b]),
                    float(max_rel[b]), int(n_failed[b]),
                    verdict_of(int(n_failed[b]), float(rel_smooth[b]), noise_floor),
                    int(n_kinks[b]))
        for b, (name, shape) in enumerate(zip(layout.names, layout.shapes))
    ]
