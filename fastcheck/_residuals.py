"""The residuals of one block, and the least-squares models that explain them.

Shared by the detectors of :mod:`fastcheck.diagnose`: the checked components of each block
(analytic ``a``, numeric ``n``, theta and kinds), agreement of two vectors, and the fits
``a - n = c * theta`` (regularisation), ``a = k * n`` (a constant factor, from a
least-squares fit on >= 3 components, or from the exact ratio of one or two components
when it is a clean number: -1, 2, 1/2, an integer or its inverse), and
``a = k * n + c * theta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .report import Report

#: Two vectors agree when ||x - y|| <= MATCH_RTOL * (||x|| + ||y||).
MATCH_RTOL = 1e-4
#: A fit is claimed when ||a - model|| <= FIT_RHO * ||a - n||.
FIT_RHO = 0.02
#: A fitted factor "is" -1, 2, 1/2 or an integer when within this relative distance.
FACTOR_RTOL = 1e-3
#: Blocks share a fitted value when within this relative distance.
SAME_RTOL = 1e-2
#: A ratio of one or two components is named only when it is a clean factor no larger
#: than this (or its inverse): a batch size, a number of outputs.
MAX_CLEAN_FACTOR = 100_000


@dataclass
class Block:
    """The checked components of one block."""

    name: str
    number: int
    shape: tuple
    size: int
    flat: np.ndarray
    local: np.ndarray
    a: np.ndarray
    n: np.ndarray
    theta: np.ndarray
    kinds: np.ndarray

    @property
    def fail(self) -> np.ndarray:
        return self.kinds == "fail"

    @property
    def usable(self) -> np.ndarray:
        """Components whose values mean something: finite, not on a kink."""
        return np.isin(self.kinds, ("ok", "fail")) & np.isfinite(self.a) & np.isfinite(self.n)


@dataclass(frozen=True)
class Fit:
    model: str  # "regularisation" | "factor" | "factor+regularisation"
    k: float
    c: float
    rho: float
    m: int


def blocks_of(report: Report, theta_checked: np.ndarray) -> list[Block]:
    """The checked components of each block of the report's layout, in block order."""
    layout = report.layout
    bounds = np.searchsorted(layout.block_of(report.indices), np.arange(len(layout) + 1))
    offsets, sizes = layout.offsets, layout.sizes
    out = []
    for b, (name, shape) in enumerate(zip(layout.names, layout.shapes)):
        s = slice(int(bounds[b]), int(bounds[b + 1]))
        flat = report.indices[s]
        out.append(Block(name, b, tuple(shape), sizes[b], flat, flat - offsets[b],
                         report.analytic[s], report.numeric[s], theta_checked[s],
                         report.kinds[s]))
    return out


def norm(x: np.ndarray) -> float:
    """The 2-norm as a float."""
    return float(np.linalg.norm(x))


def agreement(x: np.ndarray, y: np.ndarray) -> float:
    """``||x - y|| / (||x|| + ||y||)`` (inf when both are 0)."""
    scale = norm(x) + norm(y)
    return norm(x - y) / scale if scale > 0 else np.inf


def pct(rho: float) -> str:
    """The share of the discrepancy a fit with residual ratio ``rho`` explains."""
    return f"{100 * (1 - rho * rho):.2f}%"


def nearest_integer(x: float) -> int | None:
    """``round(x)`` when x is within FACTOR_RTOL of an integer >= 3, else None."""
    q = round(x)
    return int(q) if q >= 3 and abs(x - q) <= FACTOR_RTOL * abs(x) else None


def fmt_factor(k: float) -> str:
    """``2.000``, ``-1.000``, ``0.1429 (= 1/7)``."""
    q = nearest_integer(1 / k) if k != 0 else None
    return f"{k:#.4g} (= 1/{q})" if q else f"{k:#.4g}"


def factor_meaning(k: float) -> str:
    """What a constant factor between analytic and numeric gradient usually means."""
    if abs(k + 1) <= FACTOR_RTOL:
        return "the sign is flipped"
    if abs(k - 2) <= 2 * FACTOR_RTOL:
        return "a factor 2 slip (a term counted twice, or the 1/2 of a squared term dropped?)"
    if abs(k - 0.5) <= 0.5 * FACTOR_RTOL:
        return "a factor 1/2 slip (a 1/2 applied twice, or a term counted once too few?)"
    q = nearest_integer(k)
    if q:
        return (f"a sum over {q} terms where the cost takes the mean (the batch size, or "
                "batch x outputs?)")
    q = nearest_integer(1 / k) if k != 0 else None
    if q:
        return (f"divided by {q} (the batch size?) where the cost is not, or divided once "
                "too often")
    return "a constant scale slip"


def lstsq(columns: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients of ``y`` on ``columns`` and the residual."""
    import scipy.linalg  # lazily: fastcheck's start-up does not pay for it

    design = np.column_stack(columns)
    coef, *_ = scipy.linalg.lstsq(design, y)
    return coef, y - design @ coef


def fit_block(b: Block) -> Fit | None:
    """Least-squares models of the block's analytic gradient, the best one if claimed."""
    use = b.usable
    a, n, th = b.a[use], b.n[use], b.theta[use]
    r = a - n
    rn, m = norm(r), int(a.size)
    if rn == 0:
        return None
    if m < 3:
        return clean_ratio(a, n)
    fits = []
    if norm(th) > 0:  # r = c * theta: a regularisation term missing or wrong
        (c,), res = lstsq([th], r)
        fits.append(Fit("regularisation", 1.0, float(c), norm(res) / rn, m))
    if norm(n) > 0:  # a = k * n: a constant factor
        (k,), res = lstsq([n], a)
        fits.append(Fit("factor", float(k), 0.0, norm(res) / rn, m))
    good = [f for f in fits if f.rho <= FIT_RHO]
    best = min(good, key=lambda f: f.rho) if good else None
    if len(fits) == 2 and m >= 6:  # a = k * n + c * theta: data term scaled, penalty not
        (k, c), res = lstsq([n, th], a)
        rho = norm(res) / rn
        # The two-term model must be needed: clearly better than the best one-term model.
        if rho <= FIT_RHO and (best is None or rho < 0.1 * best.rho):
            model = "regularisation" if abs(k - 1) <= SAME_RTOL else "factor+regularisation"
            return Fit(model, float(k), float(c), rho, m)
    return best


def is_clean_factor(k: float) -> bool:
    """-1, 2, 1/2, or an integer >= 3 (or its inverse) up to MAX_CLEAN_FACTOR."""
    if not np.isfinite(k) or k == 0:
        return False
    if abs(k + 1) <= FACTOR_RTOL or abs(k - 2) <= 2 * FACTOR_RTOL \
            or abs(k - 0.5) <= 0.5 * FACTOR_RTOL:
        return True
    q = nearest_integer(k) or nearest_integer(1 / k)
    return q is not None and q <= MAX_CLEAN_FACTOR


def clean_ratio(a: np.ndarray, n: np.ndarray) -> Fit | None:
    """``a = k * n`` read off one or two components, when k is the same clean factor in
    each (a fit on so few components proves nothing; a clean ratio such as the batch size
    is still worth naming)."""
    if a.size == 0 or np.any(n == 0):
        return None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ratios = a / n
    k = float(ratios[0])
    if not is_clean_factor(k) or np.any(np.abs(ratios - k) > FACTOR_RTOL * abs(k)):
        return None
    rho = norm(a - k * n) / norm(a - n)
    return Fit("factor", k, 0.0, rho, int(a.size))


def groups(items: list[tuple[Block, float]]) -> list[list[tuple[Block, float]]]:
    """Blocks whose fitted values agree within SAME_RTOL, largest groups first."""
    out: list[list[tuple[Block, float]]] = []
    for b, v in items:
        for g in out:
            ref = g[0][1]
            if abs(v - ref) <= SAME_RTOL * abs(ref):
                g.append((b, v))
                break
        else:
            out.append([(b, v)])
    return sorted(out, key=len, reverse=True)

