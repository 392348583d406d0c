"""The HTML of a Report, for Jupyter's ``_repr_html_`` (standard library only)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from .._verdict import OK
from .text import (
    block_header,
    block_rows,
    confidence_sentence,
    detection_phrase,
    error_phrase,
    errors_sentence,
    fmt_count,
    verdict_word,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..report import Report

__all__ = ["report_html", "VERDICT_COLOURS"]

VERDICT_COLOURS = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828"}
_RIGHT = "text-align:right"


def _cell(value: Any, tag: str = "td", style: str = "") -> str:
    attr = f' style="{style}"' if style else ""
    return f"<{tag}{attr}>{html.escape(str(value))}</{tag}>"


def _badge(verdict: str, text: str | None = None) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#555")
    return (f'<span style="background:{colour};color:#fff;padding:1px 6px;border-radius:3px;'
            f'font-weight:bold">{html.escape(text or verdict.upper())}</span>')


def _table(head: list[str], rows: list[str]) -> str:
    top = "<tr>" + "".join(_cell(h, "th") for h in head) + "</tr>"
    return '<table style="border-collapse:collapse">' + top + "".join(rows) + "</table>"


def report_html(report: Report) -> str:
    """The report as HTML: verdict, sentences, hints, the block table, the worst components.

    Parameters
    ----------
    report : Report
        A finished check.

    Returns
    -------
    str
        A self-contained ``<div>`` (inline styles only); every name is escaped.
    """
    parts = ['<div class="fastcheck-report" style="font-family:sans-serif">']
    n_fail = len(report.failed)
    limit = detection_phrase(report) if report.passed else None
    parts.append(
        f"<p>{_badge(report.verdict, verdict_word(report))} "
        f"{html.escape(error_phrase(report))}; {fmt_count(report.n_checked)} of "
        f"{fmt_count(report.n_params)} components checked"
        + (f", <b>{fmt_count(n_fail)} failed</b>" if n_fail else "")
        + (f"; {html.escape(limit)}" if limit else "") + "</p>")
    for sentence in (confidence_sentence(report), errors_sentence(report)):
        if sentence:
            parts.append(f"<p>{html.escape(sentence)}</p>")
    if report.hints:
        parts.append("<ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in report.hints)
                     + "</ul>")
    head = block_header(report)
    if report.failure_rate_bound is not None:  # the HTML spells the bound's column out
        head[-2] = f"fail ≤ ({100 * report.confidence:g}%)"
    rows = []
    for b, cells in zip(report.blocks, block_rows(report)):
        values = cells[:-1]
        rows.append("<tr>" + _cell(values[0]) + _cell(values[1])
                    + "".join(_cell(v, style=_RIGHT) for v in values[2:])
                    + f"<td>{_badge(b.verdict)}</td></tr>")
    parts.append(_table(head, rows))
    worst = [c for c in report.worst(5) if c.kind != OK]
    if worst:
        parts.append("<p>worst components:</p>")
        rows = ["<tr>" + _cell(report.layout.label(c.flat_index))
                + _cell(f"{c.analytic:.6e}", style=_RIGHT)
                + _cell(f"{c.numeric:.6e}", style=_RIGHT)
                + _cell(f"{c.rel_error:.1e}", style=_RIGHT) + _cell(c.kind) + "</tr>"
                for c in worst]
        parts.append(_table(["component", "analytic", "numeric", "rel. error", "kind"], rows))
    parts.append(f'<p style="color:#666;font-size:smaller">backend {html.escape(report.backend)}'
                 f", {report.threads} thread(s), {fmt_count(report.evaluations)} cost "
                 f"evaluations in {report.seconds:.3f} s; seed {report.seed}</p>")
    parts.append("</div>")
    return "\n".join(parts)
