"""Pictures of a Report and of a Taylor test: matplotlib Figures that Jupyter shows.

The functions need matplotlib (the ``plot`` extra: ``pip install "fastcheck[plot]"``),
imported when they are called. They build a ``matplotlib.figure.Figure`` directly (no
pyplot, no display, no backend switch; ``fig.savefig(path)`` works anywhere) of a
subclass with a ``_repr_png_``, so that Jupyter shows it as an image even when pyplot
was never imported.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._verdict import FAIL, KINK, NONFINITE, OK
from .bands import EDGES, LOG10_FLOOR
from .html import VERDICT_COLOURS

if TYPE_CHECKING:  # pragma: no cover
    from ..report import Report
    from ..taylor import TaylorResult

__all__ = ["plot_report", "plot_taylor", "figure", "KIND_STYLES"]

#: Colour, marker, size and drawing order of each kind (failures drawn last, on top).
KIND_STYLES = {OK: ("#1f77b4", "o", 8, 1), KINK: ("#ff9800", "D", 28, 2),
               FAIL: ("#d62728", "X", 110, 3), NONFINITE: ("#6a1b9a", "X", 110, 3)}
_LOG_FLOOR = math.log10(LOG10_FLOOR)
_LOG_EDGES = tuple(math.log10(e) for e in EDGES)
#: Ng's bands on log10 of the relative error, with a shade each.
BAND_SHADES = tuple(zip((_LOG_FLOOR, *_LOG_EDGES), (*_LOG_EDGES, 0.5),
                        ("#4caf50", "#cddc39", "#ff9800", "#f44336")))
#: Failing components labelled by name in each scatter (without failures: the worst kink).
LABELLED = 3

_FIGURE_CLASS: Any = None


def figure(**kwargs: Any) -> Any:
    """A new ``matplotlib.figure.Figure`` (a subclass with a PNG repr for Jupyter).

    Raises
    ------
    ImportError
        When matplotlib is not installed (the ``plot`` extra).
    """
    global _FIGURE_CLASS
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # depends on the environment
        raise ImportError(
            "plots need matplotlib, which is not installed: install the plot extra "
            'with  pip install "fastcheck[plot]"  (or pip install matplotlib)'
        ) from exc
    if _FIGURE_CLASS is None or _FIGURE_CLASS.__bases__[0] is not Figure:

        class ShownFigure(Figure):
            """A Figure that IPython displays as a PNG, with or without pyplot."""

            def _repr_png_(self) -> bytes:
                buffer = io.BytesIO()
                self.savefig(buffer, format="png", dpi=80)
                return buffer.getvalue()

        _FIGURE_CLASS = ShownFigure
    return _FIGURE_CLASS(**kwargs)


def _log_errors(rel: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(rel, LOG10_FLOOR))


def _thin(n: int, keep: np.ndarray, max_points: int) -> np.ndarray:
    """Positions to draw: every kept one, and evenly spaced others up to max_points."""
    if n <= max_points:
        return np.arange(n)
    rest = np.flatnonzero(~keep)
    room = max(max_points - int(np.count_nonzero(keep)), 0)
    chosen = rest[np.linspace(0, rest.size - 1, num=min(room, rest.size)).astype(np.int64)]
    return np.union1d(np.flatnonzero(keep), chosen)


def _histogram(ax: Any, report: Report, s: slice) -> None:
    """Counts per log10 relative error on a log scale, stacked by kind: one failing
    component among hundreds is a visible red bar."""
    logs, kinds = _log_errors(report.rel_errors[s]), report.kinds[s]
    for lo, hi, colour in BAND_SHADES:
        ax.axvspan(lo, hi, color=colour, alpha=0.12, lw=0)
    bins = np.arange(_LOG_FLOOR, 0.5 + 1e-9, 0.5)
    groups = [(k, logs[(kinds == k) & np.isfinite(logs)]) for k in (OK, KINK, FAIL)]
    groups = [(k, v) for k, v in groups if v.size]
    if groups:
        ax.hist([v for _, v in groups], bins=bins, stacked=True, label=[k for k, _ in groups],
                color=[KIND_STYLES[k][0] for k, _ in groups])
    from matplotlib.ticker import FuncFormatter, LogFormatter

    ax.set_yscale("log")
    ax.set_ylim(bottom=0.7)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # counts: 1, 10
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
    bad = logs[np.isin(kinds, (FAIL, NONFINITE)) & np.isfinite(logs)]
    if bad.size:  # point at the failures: one count among hundreds is easy to miss
        ax.annotate(f"{bad.size:,} failed", (float(np.max(bad)), 1.0), xytext=(0, 18),
                    textcoords="offset points", ha="center", fontsize=7,
                    color=KIND_STYLES[FAIL][0], fontweight="bold",
                    arrowprops={"arrowstyle": "->", "color": KIND_STYLES[FAIL][0], "lw": 0.8})
    for edge in _LOG_EDGES:
        ax.axvline(edge, color="0.4", lw=0.6, ls=":")
    ax.set_xlim(_LOG_FLOOR, 0.5)
    ax.set_xlabel("log10 relative error")
    ax.set_ylabel("components (log scale)")


def _scatter(ax: Any, report: Report, s: slice, max_points: int) -> None:
    """Analytic against numeric; failures and kinks in their own colour and marker, the
    worst few labelled by name."""
    a, n, kinds = report.analytic[s], report.numeric[s], report.kinds[s]
    finite = np.isfinite(a) & np.isfinite(n)
    keep = (kinds != OK) & finite
    draw = _thin(a.size, keep, max_points)
    draw = draw[finite[draw]]
    for kind in sorted((OK, KINK, FAIL, NONFINITE), key=lambda k: KIND_STYLES[k][3]):
        sel = draw[kinds[draw] == kind]
        if sel.size:
            colour, marker, size, order = KIND_STYLES[kind]
            ax.scatter(n[sel], a[sel], s=size, color=colour, marker=marker, label=kind,
                       alpha=0.5 if kind == OK else 0.95, zorder=order + 1,
                       edgecolors="none" if kind == OK else "black",
                       linewidths=0 if kind == OK else 0.5)
    if draw.size:
        lo = float(min(a[draw].min(), n[draw].min()))
        hi = float(max(a[draw].max(), n[draw].max()))
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--", zorder=1)
    bad = np.flatnonzero(np.isin(kinds, (FAIL, NONFINITE)) & finite)
    if bad.size == 0:  # no failure: name the worst kink only
        bad = np.flatnonzero((kinds == KINK) & finite)
        bad = bad[np.argsort(-report.rel_errors[s][bad], kind="stable")][:1]
    rel = report.rel_errors[s]
    offsets = ((-12, 14, "right"), (12, -20, "left"), (-12, 36, "right"))  # no overlap
    for (dx, dy, ha), p in zip(offsets, bad[np.argsort(-rel[bad], kind="stable")][:LABELLED]):
        colour = KIND_STYLES[str(kinds[p])][0]
        ax.annotate(report.layout.label(int(report.indices[s][p])), (n[p], a[p]),
                    xytext=(dx, dy), textcoords="offset points", fontsize=8, color=colour,
                    fontweight="bold", ha=ha, zorder=6,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": colour, "lw": 0.6},
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.6})
    ax.set_xlabel("numeric")
    ax.set_ylabel("analytic")


def plot_report(report: Report, *, max_points: int = 4000, columns: int = 4) -> Any:
    """Per block: a histogram of log10 relative errors and an analytic-vs-numeric scatter.

    Parameters
    ----------
    report : Report
        A finished check.
    max_points : int, optional
        At most this many points per scatter (all non-"ok" components are kept).
    columns : int, optional
        Blocks per row of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        Histograms (counts on a log scale; Ng's bands shaded green < 1e-7, yellow < 1e-5,
        orange < 1e-3, red beyond; relative errors of 0 drawn at 1e-17) above scatters
        (the dashed line is analytic = numeric; failures as red crosses, kinks as orange
        diamonds, the worst few labelled like ``W2[1, 3]``). Jupyter shows it as an image;
        save it with ``fig.savefig``.

    Raises
    ------
    ImportError
        When matplotlib is not installed (the ``plot`` extra).
    """
    bounds = np.searchsorted(report.layout.block_of(report.indices),
                             np.arange(len(report.layout) + 1))
    shown = [(b, slice(int(bounds[i]), int(bounds[i + 1])))
             for i, b in enumerate(report.blocks) if b.n_checked]
    ncols = max(1, min(columns, len(shown)))
    nrows = max(1, math.ceil(len(shown) / ncols))
    fig = figure(figsize=(3.4 * ncols, 5.4 * nrows), layout="constrained")
    grid = fig.add_gridspec(2 * nrows, ncols)
    for i, (block, s) in enumerate(shown):
        row, col = divmod(i, ncols)
        ax_hist = fig.add_subplot(grid[2 * row, col])
        ax_scatter = fig.add_subplot(grid[2 * row + 1, col])
        _histogram(ax_hist, report, s)
        _scatter(ax_scatter, report, s, max_points)
        ax_hist.set_title(f"{block.name} {block.shape}: {block.verdict}",
                          color=VERDICT_COLOURS[block.verdict], fontsize=10)
        ax_scatter.set_title(f"{block.n_checked:,} of {block.n_params:,} checked, "
                             f"{block.n_failed:,} failed", fontsize=8)
        if i == 0 or block.n_failed:
            ax_hist.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"fastcheck {report.verdict.upper()}: relative error "
                 f"{report.smooth_relative_error:.2e}"
                 + (" (smooth components)" if report.n_kinks else ""),
                 color=VERDICT_COLOURS[report.verdict])
    return fig


def plot_taylor(result: TaylorResult, title: str | None = None) -> Any:
    """The remainders of a Taylor test against h on log-log axes, the fit, slopes 1 and 2.

    Parameters
    ----------
    result : TaylorResult
        The test's outcome.
    title : str or None, optional
        Title of the axes (default: the verdict and the rate).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    h, r = result.steps, result.residuals
    shown = np.isfinite(r) & (r > 0)
    ax.loglog(h[shown], r[shown], "o", color="#9e9e9e", ms=4, label="r(h)")
    used = result.used & shown
    ax.loglog(h[used], r[used], "o", color="#1f77b4", ms=5, label="in the fit")
    ax.loglog(h, result.floor, ":", color="#6d4c41", lw=1, label="roundoff floor")
    if np.any(used):
        k = int(np.flatnonzero(used)[-1])
        for p, colour in ((2.0, "#2e7d32"), (1.0, "#c62828")):
            ax.loglog(h, r[k] * (h / h[k]) ** p, "--", color=colour, lw=0.8,
                      label=f"slope {p:g}")
    ax.set_xlabel("step h")
    ax.set_ylabel("|J(θ+hd) − J(θ) − h g·d|")
    ax.set_ylim(bottom=max(float(np.min(result.floor)) / 10, 1e-300))
    if title is None:
        rate = f"{result.rate:.2f}" if math.isfinite(result.rate) else "n/a"
        title = f"Taylor test {'PASS' if result.passed else 'FAIL'}: rate {rate}"
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig
