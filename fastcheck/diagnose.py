"""Diagnoses of classic backprop bugs, from the residual ``r = a - n`` of each failing block.

Only blocks with at least one component of kind "fail" are examined, so a correct gradient
gets no bug hint; kinks and non-finite evaluations get their own notes. Components on a
kink or with non-finite values are left out of every fit. Two vectors *agree* when
``||x - y|| <= 1e-4 (||x|| + ||y||)``; a least-squares model is *claimed* when it leaves
at most 2 % of the discrepancy unexplained (``rho = ||a - model|| / ||a - n|| <= 0.02``).
Each failing block gets at most one bug hint, from the first detector that fires:

1. swapped: ``a_A`` agrees with ``n_B`` for a same-shaped block B on >= 2 common checked
   positions, while ``n_A`` and ``n_B`` differ; both ways: swapped, one way: copied;
2. transposed (2-D, both sides >= 2): ``a[k]`` agrees with ``n[perm[k]]`` on >= 3 checked
   off-diagonal pairs, ``perm`` the transpose (square) or transpose-and-flatten;
3. zero: ``a == 0`` (to 1e-12 |n|) at every failing component: at every checked one
   ("missing"), or at >= 3 failing ones ("part never written");
4. clipped: >= 2 failures, all at ``|a| = c = max|a|`` with ``|n| > c``, same sign;
5. fits, on >= 3 components: ``r = c theta`` (regularisation) and ``a = k n`` (factor),
   the better one if claimed; else, on >= 6 components, ``a = k n + c theta`` if claimed
   with ``rho`` 10x smaller than any one-term model. The same k (or c) within 1 % in
   several blocks gives one hint; the same k in every block with a non-negligible
   gradient is a normalisation mismatch (mean vs sum) or, for k = -1, the gradient of -J;
   on 1 or 2 components no fit is claimed, but ``a = k n`` is named when ``a / n`` is the
   same clean factor at each (-1, 2, 1/2, an integer >= 3 or its inverse, to 0.1 %): a
   one-entry bias summed over a batch of 10 where the cost takes the mean;
6. one row/column (any axis): >= 2 failures, all in <= 2 slices, each with >= 2 failures,
   >= 3 checked components outside; one axis only;
7. isolated: a block checked completely with 1..5 failures, at most 1 in 5 components.

Hints are sorted by that order (most specific first), then non-finite notes, then kinks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._residuals import (
    FACTOR_RTOL,
    MATCH_RTOL,
    Block,
    Fit,
    agreement,
    blocks_of,
    factor_meaning,
    fit_block,
    fmt_factor,
    groups,
    norm,
    pct,
)
from .report import Report

__all__ = ["hints"]

#: At most this many scattered failures are listed as isolated components.
MAX_ISOLATED = 5
#: A one-term fit over fewer components is said to be a weak clue: over 3 (a per-channel
#: scale), an upsampling backward that subsamples fitted "regularisation missing" to 99.98 %.
FEW_COMPONENTS = 6

# Hint order: most specific first.
(SWAPPED, TRANSPOSED, ZERO, CLIPPED, NORMALISATION, FACTOR, REGULARISATION, SLICE, ISOLATED,
 NONFINITE, KINK) = range(11)


@dataclass(frozen=True)
class _Hint:
    rank: int
    order: int
    text: str


# -- detectors on one block or a pair --------------------------------------------------------
def _swapped(failing: list[Block], blocks: list[Block], claimed: set) -> list[_Hint]:
    """Block A's analytic gradient equals block B's numeric one (same shape)."""
    def matches(x: Block, y: Block):
        ux, uy = x.usable, y.usable
        _, ix, iy = np.intersect1d(x.local[ux], y.local[uy], return_indices=True)
        if ix.size < 2:
            return None
        xa, xn, yn = x.a[ux][ix], x.n[ux][ix], y.n[uy][iy]
        err = agreement(xa, yn)
        if err <= MATCH_RTOL and agreement(xn, yn) > 100 * MATCH_RTOL:
            return err, ix.size
        return None

    out = []
    for x in failing:
        if x.name in claimed or not np.any(x.fail):
            continue
        for y in blocks:
            if y is x or y.shape != x.shape or y.name in claimed:
                continue
            hit = matches(x, y)
            if hit is None:
                continue
            back = matches(y, x)
            if back is not None:
                claimed.update((x.name, y.name))
                text = (f"{x.name} and {y.name}: the analytic gradient of each matches the "
                        f"numeric gradient of the other ({hit[1]} components, agreement "
                        f"{max(hit[0], back[0]):.1e}): are the gradients of {x.name} and "
                        f"{y.name} swapped (returned or assigned in the wrong order)?")
            else:
                claimed.add(x.name)
                text = (f"{x.name}: its analytic gradient matches the numeric gradient of "
                        f"{y.name} ({hit[1]} components, agreement {hit[0]:.1e}): is the "
                        f"gradient of {x.name} computed with {y.name}'s formula or copied "
                        f"from it?")
            out.append(_Hint(SWAPPED, x.number, text))
            break
    return out


def _transposed(b: Block) -> _Hint | None:
    """``a`` equals ``n`` transposed (square), or transposed then flattened (any 2-D)."""
    if len(b.shape) != 2 or min(b.shape) < 2:
        return None
    use = b.usable
    position = np.full(b.size, -1, dtype=np.int64)
    position[b.local[use]] = np.flatnonzero(use)
    p, q = b.shape
    perms = [np.arange(b.size).reshape(p, q).T.ravel()]
    if p != q:
        perms.append(np.arange(b.size).reshape(q, p).T.ravel())
    for which, perm in enumerate(perms):
        k = b.local[use]
        partner = perm[k]
        keep = (position[partner] >= 0) & (partner != k)
        if np.count_nonzero(keep) < 3:
            continue
        here, there = np.flatnonzero(use)[keep], position[partner[keep]]
        err = agreement(b.a[here], b.n[there])
        if err > MATCH_RTOL or agreement(b.a[here], b.n[here]) <= 100 * MATCH_RTOL:
            continue
        pairs = int(np.count_nonzero(keep))
        if p == q:
            how = (f"the analytic gradient is the transpose of the numeric one ({pairs} "
                   f"components agree with their mirror [j, i] to {err:.1e})")
            ask = "is the gradient transposed (e.g. A.T @ dZ where dZ @ A.T is needed)?"
        else:
            other = (q, p) if which == 0 else (p, q)
            how = (f"the analytic gradient, read in C order, is the numeric one transposed "
                   f"to shape {other} and flattened ({pairs} components agree to {err:.1e})")
            ask = (f"is the gradient computed with shape {(q, p)} and reshaped to {(p, q)} "
                   "instead of transposed?")
        return _Hint(TRANSPOSED, b.number, f"{b.name} {b.shape}: {how}: {ask}")
    return None


def _zero(b: Block) -> _Hint | None:
    """The analytic gradient is 0 where the numeric one is not."""
    fin = np.isfinite(b.a) & np.isfinite(b.n)
    zero = np.abs(b.a) <= 1e-12 * np.abs(b.n)
    fail = b.fail & fin
    if not np.any(fail) or not np.all(zero[fail]):
        return None
    big = float(np.max(np.abs(b.n[fail])))
    if np.all(zero[fin]):
        return _Hint(ZERO, b.number, (
            f"{b.name}: the analytic gradient is 0 at all {np.count_nonzero(fin)} checked "
            f"components while the numeric one is not (largest |numeric| {big:.3g}): is the "
            f"gradient of {b.name} missing (never computed, or reset to zeros)?"))
    n_zero = int(np.count_nonzero(fail))
    if n_zero < 3:
        return None
    return _Hint(ZERO, b.number, (
        f"{b.name}: the analytic gradient is 0 at all {n_zero} failing components while the "
        f"numeric one is not (largest |numeric| {big:.3g}): is part of the gradient of "
        f"{b.name} never written?"))


def _clipped(b: Block) -> _Hint | None:
    """The failing components all sit at ``|a| = c`` with ``|n| > c`` and the same sign."""
    use, fail = b.usable, b.fail & b.usable
    if np.count_nonzero(fail) < 2:
        return None
    c = float(np.max(np.abs(b.a[use])))
    a, n = b.a[fail], b.n[fail]
    saturated = np.abs(np.abs(a) - c) <= 1e-9 * c
    beyond = (np.abs(n) > c) & (np.sign(a) == np.sign(n))
    if c == 0 or not np.all(saturated & beyond):
        return None
    return _Hint(CLIPPED, b.number, (
        f"{b.name}: the analytic gradient saturates at +-{c:.4g}: all {a.size} failing "
        f"components have |analytic| = {c:.4g} while |numeric| reaches "
        f"{float(np.max(np.abs(n))):.4g} with the same sign: is the gradient clipped inside "
        f"the function that returns it?"))


def _regularisation_sentence(c: float, what: str) -> str:
    if c < 0:
        return (f"is the regularisation term missing from the gradient of {what} (or too "
                "small)? With an L2 term lam/(2m)*||W||^2 in the cost, a missing term gives "
                "c = -lam/m.")
    return (f"does the gradient of {what} add a regularisation term that the cost lacks, or "
            "with too large a weight?")


def _fit_hint(b: Block, f: Fit) -> _Hint:
    how = (f"least-squares fit over {f.m} components explains {pct(f.rho)} of the discrepancy"
           + ("; so few components make this a weak clue, not a diagnosis"
              if f.m < FEW_COMPONENTS else "")
           if f.m >= 3 else
           f"the ratio at {'its' if f.m == 1 else 'each of its'} {f.m} checked "
           f"component{'s' if f.m > 1 else ''}")
    if f.model == "regularisation":
        return _Hint(REGULARISATION, b.number, (
            f"{b.name}: analytic - numeric = c * {b.name} with c = {f.c:.4g} ({how}): "
            f"{_regularisation_sentence(f.c, b.name)}"))
    extra = ""
    if f.model == "factor+regularisation":
        extra = (f" plus {f.c:.4g} * {b.name} (a term proportional to {b.name}, "
                 "regularisation?, is not scaled the same way)")
    return _Hint(FACTOR, b.number, (
        f"{b.name}: the analytic gradient is {fmt_factor(f.k)} x the numeric one{extra} "
        f"({how}): {factor_meaning(f.k)}"))


def _fit_hints(fits: dict[str, tuple[Block, Fit]], blocks: list[Block]) -> list[_Hint]:
    """One hint per fitted block, merged when several blocks share the fitted value."""
    out, merged = [], set()
    factors = [(b, f.k) for b, f in fits.values() if f.model != "regularisation"]
    scale = max((norm(b.n[b.usable]) for b in blocks), default=0.0)
    for group in groups(factors):
        if len(group) < 2:
            continue
        names = [b.name for b, _ in group]
        merged.update(names)
        k = float(np.median([v for _, v in group]))
        with_reg = [b.name for b, _ in group if fits[b.name][1].model != "factor"]
        note = (f"; for {', '.join(with_reg)} after allowing for a separately scaled term "
                "proportional to the weights, the regularisation" if with_reg else "")
        relevant = [b for b in blocks if norm(b.n[b.usable]) > 1e-8 * scale]
        if all(b.name in names for b in relevant):
            if abs(k + 1) <= FACTOR_RTOL:
                why = ("the gradient has the wrong sign everywhere: is it the gradient of -J "
                       "(a log-likelihood instead of the loss, or the descent direction)?")
            else:
                why = ("the cost and the gradient are normalised differently: "
                       + factor_meaning(k))
            text = (f"every block's analytic gradient is {fmt_factor(k)} x the numeric one "
                    f"({', '.join(names)}{note}): {why}")
            out.append(_Hint(NORMALISATION, group[0][0].number, text))
        else:
            text = (f"{', '.join(names)}: the analytic gradient is {fmt_factor(k)} x the "
                    f"numeric one in each of these blocks ({len(names)} blocks{note}): "
                    f"{factor_meaning(k)}")
            out.append(_Hint(FACTOR, group[0][0].number, text))
    regs = [(b, f.c) for b, f in fits.values() if f.model == "regularisation"]
    for group in groups(regs):
        if len(group) < 2:
            continue
        names = [b.name for b, _ in group]
        merged.update(names)
        c = float(np.median([v for _, v in group]))
        worst = max(fits[n][1].rho for n in names)
        out.append(_Hint(REGULARISATION, group[0][0].number, (
            f"{', '.join(names)}: in each block, analytic - numeric = c * (the block's "
            f"parameters) with the same c = {c:.4g} (least-squares fits explain at least "
            f"{pct(worst)} of the discrepancy): "
            f"{_regularisation_sentence(c, ', '.join(names))}")))
    out.extend(_fit_hint(b, f) for name, (b, f) in fits.items() if name not in merged)
    return out


def _concentrated(b: Block, report: Report) -> _Hint | None:
    """Failures confined to one or two rows/columns, or a handful of isolated components."""
    fail = b.fail
    nf = int(np.count_nonzero(fail))
    if nf == 0:
        return None
    if len(b.shape) >= 2 and nf >= 2:
        where = np.unravel_index(b.local, b.shape)
        options = []
        for ax in range(len(b.shape)):
            lines, counts = np.unique(where[ax][fail], return_counts=True)
            outside = ~np.isin(where[ax], lines)
            if (lines.size <= 2 and lines.size < b.shape[ax] and counts.min() >= 2
                    and np.count_nonzero(outside) >= 3):
                options.append((lines.size, ax, lines))
        options.sort(key=lambda o: o[0])
        if options and (len(options) == 1 or options[0][0] < options[1][0]):
            _, ax, lines = options[0]
            inside = int(np.count_nonzero(np.isin(where[ax], lines)))
            slices = ", ".join(
                f"{b.name}[" + ", ".join(str(int(i)) if d == ax else ":"
                                         for d in range(len(b.shape))) + "]"
                for i in lines)
            word = ({0: "row", 1: "column"}.get(ax, f"slice along axis {ax}")
                    if len(b.shape) == 2 else f"slice along axis {ax}")
            plural = "s" if lines.size > 1 else ""
            what = "one unit or one input feature: " if len(b.shape) == 2 else ""
            return _Hint(SLICE, b.number, (
                f"{b.name}: all {nf} failing components lie in {lines.size} {word}{plural} "
                f"({slices}): {nf} of the {inside} checked there fail, none of the "
                f"{b.local.size - inside} checked elsewhere: look at the gradient of that "
                f"{word} ({what}an indexing or off-by-one slip?)"))
    listed = "; ".join(f"{report.layout.label(int(i))} (analytic {a:.6g}, numeric {n:.6g})"
                       for i, a, n in zip(b.flat[fail], b.a[fail], b.n[fail]))
    if b.local.size == b.size and nf <= MAX_ISOLATED and MAX_ISOLATED * nf <= b.size:
        return _Hint(ISOLATED, b.number, (
            f"{b.name}: only {nf} of {b.local.size} checked components "
            f"fail{'s' if nf == 1 else ''}, isolated: {listed}; the rest of the block "
            f"is right: an indexing slip or an in-place edit of "
            f"{'this entry' if nf == 1 else 'these entries'}?"))
    if report.mode == "directional" and nf <= MAX_ISOLATED:
        # located by group testing, not a block checked through: name them all the same
        return _Hint(ISOLATED, b.number, (
            f"{b.name}: {nf} failing component{'s' if nf > 1 else ''} located by group "
            f"testing (random directions, then halves) and confirmed one by one: "
            f"{listed}; look at how {'this entry' if nf == 1 else 'these entries'} "
            f"of the gradient {'is' if nf == 1 else 'are'} computed (an indexing slip or an "
            f"in-place edit?), then run fc.check on {b.name} to see the whole block"))
    return None


def _nonfinite(b: Block, report: Report) -> list[_Hint]:
    bad = b.kinds == "nonfinite"
    out = []
    for mask, what in ((bad & ~np.isfinite(b.a), "the analytic gradient is NaN or inf"),
                       (bad & np.isfinite(b.a), "the cost is NaN or inf at theta +- h")):
        k = int(np.count_nonzero(mask))
        if k == 0:
            continue
        labels = ", ".join(report.layout.label(int(i)) for i in b.flat[mask][:3])
        more = ", ..." if k > 3 else ""
        advice = ("overflow, or a log/sqrt/division near the edge of its domain? The cost must "
                  "be finite in a neighbourhood of theta" if np.isfinite(b.a[mask]).all()
                  else "a division by zero or an overflow in the backward pass?")
        out.append(_Hint(NONFINITE, b.number, (
            f"{b.name}: {what} at {k} component{'s' if k > 1 else ''} ({labels}{more}): "
            f"{advice}")))
    return out


def _kinks(blocks: list[Block]) -> _Hint | None:
    per_block = [(b.name, int(np.count_nonzero(b.kinds == "kink"))) for b in blocks]
    per_block = [(n, k) for n, k in per_block if k]
    if not per_block:
        return None
    total = sum(k for _, k in per_block)
    where = ", ".join(f"{n} ({k})" for n, k in per_block)
    return _Hint(KINK, len(blocks), (
        f"{total} component{'s' if total > 1 else ''} sit{'' if total > 1 else 's'} on a kink "
        f"(ReLU/max/abs switching inside the step) in {where}, with analytic values "
        f"consistent with subgradients there: harmless and not counted as failures; to "
        f"check {'them' if total > 1 else 'it'} more tightly, check again at a point away "
        f"from the kinks (another initialisation, or theta slightly perturbed)."))


def hints(report: Report, theta_checked: np.ndarray) -> list[str]:
    """Diagnoses of the likely bugs, in plain sentences, most specific first.

    Parameters
    ----------
    report : Report
        A finished check (verdicts, analytic and numeric values per component).
    theta_checked : numpy.ndarray
        Theta at ``report.indices``.

    Returns
    -------
    list of str
        Bug hints for the failing blocks only (swapped, transposed, zero, clipped,
        normalisation, constant factor, regularisation, one row/column, isolated
        components), then notes on non-finite evaluations and on kinks.
    """
    blocks = blocks_of(report, np.asarray(theta_checked, dtype=np.float64))
    failing = [b for b in blocks if np.any(b.fail)]
    claimed: set[str] = set()
    out = _swapped(failing, blocks, claimed)
    fits: dict[str, tuple[Block, Fit]] = {}
    for b in failing:
        if b.name in claimed:
            continue
        hint = _transposed(b) or _zero(b) or _clipped(b)
        if hint is None:
            fit = fit_block(b)
            if fit is not None:
                fits[b.name] = (b, fit)
                continue
            hint = _concentrated(b, report)
        if hint is not None:
            out.append(hint)
    out.extend(_fit_hints(fits, blocks))
    for b in blocks:
        out.extend(_nonfinite(b, report))
    kink = _kinks(blocks)
    if kink is not None:
        out.append(kink)
    out.sort(key=lambda h: (h.rank, h.order))
    return [h.text for h in out]
