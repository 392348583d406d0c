"""Pictures of a Report: a matplotlib Figure, and HTML for Jupyter.

``plot_report`` needs matplotlib (the ``plot`` extra: ``pip install "fastcheck[plot]"``);
it builds a ``matplotlib.figure.Figure`` directly, so no display, no pyplot and no
backend switch are involved (``fig.savefig(path)`` works anywhere). ``report_html`` needs
nothing beyond the standard library.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from .report import BAND_HEADERS, Report, _fmt_count, _fmt_pct, ng_band

__all__ = ["plot_report", "report_html", "VERDICT_COLOURS"]

VERDICT_COLOURS = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828"}
KIND_COLOURS = {"ok": "#1f77b4", "kink": "#ff9800", "fail": "#d62728", "nonfinite": "#6a1b9a"}
#: Ng's bands on log10 of the relative error, with a shade each.
BAND_SHADES = ((-17.0, -7.0, "#4caf50"), (-7.0, -5.0, "#cddc39"), (-5.0, -3.0, "#ff9800"),
               (-3.0, 0.5, "#f44336"))
LOG10_FLOOR = -17.0


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Report.plot() needs matplotlib, which is not installed: "
            'install the plot extra with  pip install "fastcheck[plot]"  '
            "(or pip install matplotlib)"
        ) from exc
    return Figure


def _log_errors(rel: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(rel, 10.0**LOG10_FLOOR))


def _thin(n: int, keep: np.ndarray, max_points: int) -> np.ndarray:
    """Positions to draw: every kept one, and evenly spaced others up to max_points."""
    if n <= max_points:
        return np.arange(n)
    rest = np.flatnonzero(~keep)
    room = max(max_points - int(np.count_nonzero(keep)), 0)
    chosen = rest[np.linspace(0, rest.size - 1, num=min(room, rest.size)).astype(np.int64)]
    return np.union1d(np.flatnonzero(keep), chosen)


def _histogram(ax, report: Report, s: slice) -> None:
    logs, kinds = _log_errors(report.rel_errors[s]), report.kinds[s]
    for lo, hi, colour in BAND_SHADES:
        ax.axvspan(lo, hi, color=colour, alpha=0.12, lw=0)
    bins = np.arange(LOG10_FLOOR, 0.5 + 1e-9, 0.5)
    groups = [(k, logs[(kinds == k) & np.isfinite(logs)]) for k in ("ok", "kink", "fail")]
    groups = [(k, v) for k, v in groups if v.size]
    if groups:
        ax.hist([v for _, v in groups], bins=bins, stacked=True, label=[k for k, _ in groups],
                color=[KIND_COLOURS[k] for k, _ in groups])
    for edge in (-7, -5, -3):
        ax.axvline(edge, color="0.4", lw=0.6, ls=":")
    ax.set_xlim(LOG10_FLOOR, 0.5)
    ax.set_xlabel("log10 relative error")
    ax.set_ylabel("components")


def _scatter(ax, report: Report, s: slice, max_points: int) -> None:
    a, n, kinds = report.analytic[s], report.numeric[s], report.kinds[s]
    finite = np.isfinite(a) & np.isfinite(n)
    keep = (kinds != "ok") & finite
    draw = _thin(a.size, keep, max_points)
    draw = draw[finite[draw]]
    for kind in ("ok", "kink", "fail"):
        sel = draw[kinds[draw] == kind]
        if sel.size:
            ax.scatter(n[sel], a[sel], s=8, color=KIND_COLOURS[kind], label=kind,
                       alpha=0.8 if kind != "ok" else 0.5, lw=0)
    if draw.size:
        lo = float(min(a[draw].min(), n[draw].min()))
        hi = float(max(a[draw].max(), n[draw].max()))
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--")
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
        Histograms (Ng's bands shaded green < 1e-7, yellow < 1e-5, orange < 1e-3, red
        beyond; relative errors of 0 drawn at 1e-17) above scatters (the dashed line is
        analytic = numeric; failures red, kinks orange). Save it with ``fig.savefig``.

    Raises
    ------
    ImportError
        When matplotlib is not installed (the ``plot`` extra).
    """
    figure_class = _figure_class()
    bounds = np.searchsorted(report.layout.block_of(report.indices),
                             np.arange(len(report.layout) + 1))
    shown = [(b, slice(int(bounds[i]), int(bounds[i + 1])))
             for i, b in enumerate(report.blocks) if b.n_checked]
    ncols = max(1, min(columns, len(shown)))
    nrows = max(1, math.ceil(len(shown) / ncols))
    fig = figure_class(figsize=(3.4 * ncols, 5.4 * nrows), layout="constrained")
    grid = fig.add_gridspec(2 * nrows, ncols)
    for i, (block, s) in enumerate(shown):
        row, col = divmod(i, ncols)
        ax_hist = fig.add_subplot(grid[2 * row, col])
        ax_scatter = fig.add_subplot(grid[2 * row + 1, col])
        _histogram(ax_hist, report, s)
        _scatter(ax_scatter, report, s, max_points)
        colour = VERDICT_COLOURS[block.verdict]
        ax_hist.set_title(f"{block.name} {block.shape}: {block.verdict}", color=colour,
                          fontsize=10)
        ax_scatter.set_title(f"{block.n_checked:,} of {block.n_params:,} checked, "
                             f"{block.n_failed:,} failed", fontsize=8)
        if i == 0:
            ax_hist.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"fastcheck {report.verdict.upper()}: relative error "
                 f"{report.relative_error:.2e}", color=VERDICT_COLOURS[report.verdict])
    return fig


# -- HTML ----------------------------------------------------------------------------------
def _cell(value: Any, tag: str = "td", style: str = "") -> str:
    attr = f' style="{style}"' if style else ""
    return f"<{tag}{attr}>{html.escape(str(value))}</{tag}>"


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#555")
    return (f'<span style="background:{colour};color:#fff;padding:1px 6px;border-radius:3px;'
            f'font-weight:bold">{html.escape(verdict.upper())}</span>')


def report_html(report: Report) -> str:
    """The report as HTML (Jupyter's ``_repr_html_``): verdict, hints, blocks, worst.

    Parameters
    ----------
    report : Report
        A finished check.

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles only); every name is escaped.
    """
    right = "text-align:right"
    parts = ['<div class="fastcheck-report" style="font-family:sans-serif">']
    n_fail = len(report.failed)
    parts.append(
        f"<p>{_badge(report.verdict)} relative error {report.relative_error:.2e} "
        f"({html.escape(ng_band(report.relative_error))}); {_fmt_count(report.n_checked)} of "
        f"{_fmt_count(report.n_params)} components checked"
        + (f", <b>{_fmt_count(n_fail)} failed</b>" if n_fail else "") + "</p>")
    sentence = report.confidence_sentence()
    if sentence:
        parts.append(f"<p>{html.escape(sentence)}</p>")
    if report.hints:
        parts.append("<ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in report.hints)
                     + "</ul>")
    bound = report.failure_rate_bound
    head = ["block", "shape", "checked", "rel. error", "max comp.", "failed", "kinks",
            *(BAND_HEADERS if report.stats else ()),
            *((f"fail ≤ ({100 * bound['confidence']:g}%)",) if bound else ()), "verdict"]
    rows = ["<tr>" + "".join(_cell(h, "th") for h in head) + "</tr>"]
    for b in report.blocks:
        cells = [_cell(b.name), _cell(b.shape),
                 _cell(f"{_fmt_count(b.n_checked)}/{_fmt_count(b.n_params)}", style=right),
                 _cell(f"{b.relative_error:.1e}", style=right),
                 _cell(f"{b.max_rel_error:.1e}", style=right),
                 _cell(_fmt_count(b.n_failed), style=right),
                 _cell(_fmt_count(b.n_kinks), style=right)]
        if report.stats:
            cells += [_cell(_fmt_count(c), style=right) for c in report.band_counts(b.name)]
        if bound:
            cells.append(_cell(_fmt_pct(bound["blocks"][b.name]), style=right))
        cells.append(f"<td>{_badge(b.verdict)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    parts.append('<table style="border-collapse:collapse">' + "".join(rows) + "</table>")
    worst = [c for c in report.worst(5) if c.kind != "ok"]
    if worst:
        parts.append("<p>worst components:</p>")
        rows = ["<tr>" + "".join(_cell(h, "th") for h in
                                 ("component", "analytic", "numeric", "rel. error", "kind"))
                + "</tr>"]
        for c in worst:
            rows.append("<tr>" + _cell(report.layout.label(c.flat_index))
                        + _cell(f"{c.analytic:.6e}", style=right)
                        + _cell(f"{c.numeric:.6e}", style=right)
                        + _cell(f"{c.rel_error:.1e}", style=right) + _cell(c.kind) + "</tr>")
        parts.append('<table style="border-collapse:collapse">' + "".join(rows) + "</table>")
    parts.append(f'<p style="color:#666;font-size:smaller">backend {html.escape(report.backend)}'
                 f", {report.threads} thread(s), {_fmt_count(report.evaluations)} cost "
                 f"evaluations in {report.seconds:.3f} s; seed {report.seed}</p>")
    parts.append("</div>")
    return "\n".join(parts)
