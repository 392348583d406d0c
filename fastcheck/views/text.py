"""The text of a Report (headline, summary, block table) and of a Taylor test's result.

Written once: ``Report.summary()``, ``str(report)``, ``short_summary`` and the CLI all
print these; the HTML view reuses the headline pieces and the block cells.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._verdict import OK
from .bands import BAND_HEADERS, ng_band

if TYPE_CHECKING:  # pragma: no cover
    from ..report import Report
    from ..taylor import TaylorResult

__all__ = ["fmt_count", "fmt_pct", "headline", "confidence_sentence", "block_rows",
           "short_summary", "summary", "taylor_summary"]

_WORDS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}


def fmt_count(k: int) -> str:
    """An integer with thousands separators: 109386 -> '109,386'."""
    return f"{k:,}"


def fmt_pct(fraction: float) -> str:
    """A fraction as a short percentage: 0.0014967 -> '0.15%', 1.0 -> '100%'."""
    v = 100.0 * fraction
    if v == 0:
        return "0%"
    if v >= 10:
        return f"{v:.0f}%"
    if v >= 1e-3:
        return f"{v:#.2g}%"
    return f"{v:.1e}%"


# -- the headline ------------------------------------------------------------------------
#: How the headline reads the error of a float32 cost checked against its measured noise.
NOISE_BAND = "float32: judged against the cost's measured noise, not Ng's float64 bands"


def verdict_word(report: Report) -> str:
    """PASS, WARN or FAIL, with "(directional)" for the directional mode."""
    word = _WORDS[report.verdict]
    return f"{word} (directional)" if report.mode == "directional" else word


def error_phrase(report: Report) -> str:
    """The headline's error: over the smooth components, kinks counted apart."""
    if report.mode == "directional" and report.n_checked == 0 and report.directional:
        d = report.directional
        rel = d.relative_error
        band = NOISE_BAND if report.noise_floor else ng_band(rel, report.passed)
        return f"relative error {rel:.2e} over {d.n_directions} random directions ({band})"
    rel = report.smooth_relative_error
    if report.noise_floor:  # a float32 cost: its own noise, not Ng's float64 bands
        return f"relative error {rel:.2e} ({NOISE_BAND})"
    if not report.n_kinks:
        return f"relative error {rel:.2e} ({ng_band(rel, report.passed)})"
    n_smooth = report.n_checked - report.n_kinks
    return (f"relative error {rel:.2e} over {fmt_count(n_smooth)} smooth components "
            f"({ng_band(rel, report.passed)}); {fmt_count(report.n_kinks)} on ReLU/max kinks, "
            f"consistent with subgradients")


def detection_phrase(report: Report) -> str | None:
    """Directional mode: the single-component error its directions could have missed."""
    d = report.directional
    if d is None or not math.isfinite(d.detection_limit):
        return None if d is None else "its detection limit is unknown (no finite direction)"
    return (f"a single-component error below {d.detection_limit:.1e}·|g| could go "
            f"undetected (p={d.probability:g}; |g| = {d.gradient_norm:.3e})")


def headline(report: Report) -> str:
    """One line that never contradicts ``report.passed``."""
    what = (f"{fmt_count(report.n_checked)} of {fmt_count(report.n_params)} components "
            "checked")
    n_fail = len(report.failed)
    fails = f", {fmt_count(n_fail)} failed" if n_fail else ""
    k = len(report.unresolved)
    blind = f", {fmt_count(k)} unresolved by the cost's noise (see notes)" if k else ""
    line = f"fastcheck {verdict_word(report)}: {error_phrase(report)}; {what}{fails}{blind}"
    limit = detection_phrase(report) if report.passed else None
    return f"{line}; {limit}" if limit else line


def errors_sentence(report: Report) -> str | None:
    """Both global errors explained, when kinks make them differ."""
    if not report.n_kinks:
        return None
    return (f"relative error over all {fmt_count(report.n_checked)} checked components "
            f"(report.relative_error, kinks included): {report.relative_error:.2e}; over the "
            f"{fmt_count(report.n_checked - report.n_kinks)} smooth ones "
            f"(report.smooth_relative_error, the headline and the verdict): "
            f"{report.smooth_relative_error:.2e}. At a kink the one-sided slopes differ, so "
            "the central difference need not equal the subgradient backprop computes.")


def confidence_sentence(report: Report) -> str | None:
    """The failure-rate bound in words (None unless a sample was checked)."""
    bound = report.failure_rate_bound
    if bound is None:
        return None
    k = len(report.failed)
    return (f"{fmt_count(k)} of {fmt_count(report.n_checked)} sampled components failed: with "
            f"{100 * report.confidence:g}% confidence at most {fmt_pct(bound)} of the "
            f"{fmt_count(report.n_params)} components are wrong (Clopper-Pearson)")


# -- tables ------------------------------------------------------------------------------
def block_header(report: Report) -> list[str]:
    """Column names of the block table."""
    head = ["block", "shape", "checked", "rel.error", "max comp.", "failed", "kinks"]
    head.extend(BAND_HEADERS)
    if report.failure_rate_bound is not None:
        head.append(f"fail<={100 * report.confidence:g}%")
    head.append("verdict")
    return head


def block_rows(report: Report) -> list[list[str]]:
    """One row of cells per block, in the order of ``block_header``."""
    rows = []
    for b in report.blocks:
        row = [b.name, str(b.shape), f"{fmt_count(b.n_checked)}/{fmt_count(b.n_params)}",
               f"{b.relative_error:.1e}", f"{b.max_rel_error:.1e}", fmt_count(b.n_failed),
               fmt_count(b.n_kinks), *(fmt_count(c) for c in report.band_counts(b.name))]
        if b.failure_rate_bound is not None:
            row.append(fmt_pct(b.failure_rate_bound))
        row.append(b.verdict)
        rows.append(row)
    return rows


def _block_lines(report: Report) -> list[str]:
    head, rows = block_header(report), block_rows(report)
    n_bands, first = len(BAND_HEADERS), 7  # the bands are joined into one column
    widths = [max(len(h), *(len(r[first + i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(BAND_HEADERS)]

    def join_bands(cells: list[str]) -> list[str]:
        bands = "|".join(c.rjust(w) for c, w in zip(cells[first:first + n_bands], widths))
        return cells[:first] + [bands] + cells[first + n_bands:]

    table = [join_bands(head)] + [join_bands(r) for r in rows]
    col = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, col)).rstrip()
            for r in table]


def worst_shown(report: Report, k: int) -> list:
    """The worst components worth showing (an exact "ok" match is not)."""
    return [c for c in report.worst(k) if c.kind != OK or c.rel_error > 0]


def _worst_lines(report: Report, k: int) -> list[str]:
    position = {int(f): p for p, f in enumerate(report.indices)}
    lines = []
    for c in worst_shown(report, k):
        label = report.layout.label(c.flat_index)
        step = report.steps[position[c.flat_index]]
        lines.append(f"  {label:<14} analytic {c.analytic: .6e}  numeric {c.numeric: .6e}  "
                     f"step {step:.1e}  rel.err {c.rel_error:.1e}  {c.kind}")
    return lines


# -- the reports ---------------------------------------------------------------------------
def _opening(report: Report, with_notes: bool) -> list[str]:
    lines = [headline(report)]
    bad = report.failing_blocks()
    if bad:
        lines.append(f"failing blocks: {', '.join(bad)}")
    lines.extend(f"hint: {h}" for h in report.hints)
    if with_notes:
        lines.extend(f"note: {n}" for n in report.notes)
    for sentence in (confidence_sentence(report), errors_sentence(report)):
        if sentence:
            lines.append(sentence)
    return lines


def short_summary(report: Report, k: int = 5) -> str:
    """The first lines of the summary: verdict, failing blocks, hints, worst components."""
    lines = _opening(report, with_notes=False)
    worst = _worst_lines(report, k)
    if worst:
        lines.append("worst components:")
        lines.extend(worst)
    return "\n".join(lines)


def _method_text(report: Report, eps: str) -> str:
    if report.method == "complex":
        return "complex step (h = 1e-20 * max(1, |theta_i|))"
    if report.method == "richardson":
        return f"Richardson extrapolation of central differences at h and h/2, eps {eps}"
    return f"eps {eps}"


def _run_lines(report: Report) -> list[str]:
    if report.eps == "auto":
        eps = ("auto (cbrt(sigma/|J|) * max(1, |theta_i|), sigma the cost's measured noise)"
               if report.noise_floor else "auto (cbrt(eps) * max(1, |theta_i|))")
    else:
        eps = f"{report.eps:g}"
    if report.mode == "directional":
        sampled = (f", directional check (random directions + group testing), "
                   f"seed {report.seed}")
    elif report.sampled:
        sampled = f", stratified sample, seed {report.seed}"
    else:
        sampled = ""
    compile_ = (f" + {report.compile_seconds:.2f} s compile"
                if report.compile_seconds >= 0.005 else "")
    lines = [f"ran: backend {report.backend}, {report.threads} thread(s), "
             f"{fmt_count(report.evaluations)} cost evaluations in {report.seconds:.3f} s"
             f"{compile_}; {_method_text(report, eps)}; rtol {report.rtol:g}{sampled}"]
    if report.mode == "directional":
        lines.append(f"directional: {report.stop_reason}")
    elif report.stop_reason != "complete":
        lines.append(f"stopped early: {report.stop_reason}")
    return lines


def summary(report: Report) -> str:
    """The human-readable report: verdict, per-block table, worst components, run."""
    lines = _opening(report, with_notes=True)
    lines += ["", "blocks:  (bands: components per relative-error band)"]
    lines.extend(_block_lines(report))
    worst = _worst_lines(report, 10 if len(report.failed) else 5)
    if worst:
        lines += ["", "worst components:", *worst]
    if report.n_kinks and not any("kink" in h for h in report.hints):
        lines += ["", f"{fmt_count(report.n_kinks)} component(s) sit on a kink (ReLU/max/abs "
                      "switching inside the step): not counted as failures."]
    lines.append("")
    lines.extend(_run_lines(report))
    return "\n".join(lines)


# -- the Taylor test -------------------------------------------------------------------------
def _rate_meaning(result: TaylorResult) -> str:
    if result.rate > 2.3:
        return ("above 2: the h^2 term vanishes along d (then 3), or r(h) is near a sign "
                "change, which a small error in g.d causes: try another seed")
    if result.passed:
        return "the gradient agrees with the cost"
    if result.rate < 1.5:
        return "about 1: the gradient is wrong along d"
    return "neither 2 nor 1: a small error, or a cost not smooth along d"


def _relative_limit(result: TaylorResult) -> str:
    if result.slope == 0 or not math.isfinite(result.detection_limit):
        return "g.d is 0" if result.slope == 0 else "unknown"
    return f"{result.detection_limit / abs(result.slope):.1e} of |g.d|"


def taylor_summary(result: TaylorResult) -> str:
    """The verdict of a Taylor test, the fit and what it could not see, in a few lines."""
    word = "PASS" if result.passed else "FAIL"
    if math.isfinite(result.rate):
        head = (f"Taylor test {word}: the remainder |J(theta + h d) - J(theta) - h g.d| "
                f"falls at rate {result.rate:.2f} (2 expected; {_rate_meaning(result)})")
    else:
        head = f"Taylor test {word}: no rate could be fitted"
    lines = [head]
    k = np.flatnonzero(result.used)
    if k.size:
        err = f" +- {result.stderr:.2f}" if math.isfinite(result.stderr) else ""
        at_floor = np.isfinite(result.residuals) & (result.residuals <= result.floor)
        lines.append(
            f"fit: {k.size} of {result.steps.size} steps, h from {result.steps[k[0]]:.2e} to "
            f"{result.steps[k[-1]]:.2e} (log-log least squares, rate{err}); "
            f"{int(np.count_nonzero(at_floor))} step(s) at the roundoff floor")
    if result.passed or not math.isfinite(result.rate) or result.rate >= 1.5:
        lines.append(f"g.d = {result.slope:.6e}; an error in g.d below "
                     f"~{result.detection_limit:.1e} ({_relative_limit(result)}) would not "
                     "show in the rate")
    else:
        lines.append(f"g.d = {result.slope:.6e} is off by about {result.detection_limit:.1e} "
                     f"({_relative_limit(result)}), from r/h at the smallest fitted step")
    if result.note:
        lines.append(f"note: {result.note}")
    lines.append(f"{result.evaluations} cost evaluations"
                 + (f"; random direction, seed {result.seed}" if result.seed is not None
                    else "; direction given"))
    return "\n".join(lines)
