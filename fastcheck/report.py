"""The result of a gradient check: Report, BlockReport, ComponentError and the text report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .errors import GradientCheckError
from .layout import Layout

__all__ = ["Report", "BlockReport", "ComponentError", "ng_band", "verdict_of"]

#: Ng's thresholds on the relative error.
GREAT, ACCEPTABLE, BUG = 1e-7, 1e-5, 1e-3


class ComponentError(NamedTuple):
    """One checked component: where it is, both gradients, the errors and its kind."""

    name: str
    index: tuple
    flat_index: int
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    kind: str


@dataclass(frozen=True)
class BlockReport:
    """The check of one named block of parameters."""

    name: str
    shape: tuple
    n_params: int
    n_checked: int
    relative_error: float
    max_rel_error: float
    n_failed: int
    verdict: str
    n_kinks: int = 0


def ng_band(relative_error: float) -> str:
    """Ng's reading of a relative error, in words."""
    if not math.isfinite(relative_error):
        return "not finite: some evaluations overflowed or were NaN"
    if relative_error < GREAT:
        return "< 1e-7: great"
    if relative_error <= ACCEPTABLE:
        return "<= 1e-5: acceptable"
    if relative_error <= BUG:
        return "between 1e-5 and 1e-3: look again"
    return "> 1e-3: almost certainly a bug"


def verdict_of(n_failed: int, relative_error: float) -> str:
    """``fail`` when a component fails, ``warn`` when none does but the relative error is
    beyond Ng's acceptable band, else ``pass``."""
    if n_failed:
        return "fail"
    if not relative_error <= ACCEPTABLE:
        return "warn"
    return "pass"


def global_relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``||a - n|| / (||a|| + ||n||)`` (0 when both are 0)."""
    with np.errstate(invalid="ignore", over="ignore"):
        denom = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
        num = float(np.linalg.norm(analytic - numeric))
    if denom == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / denom if math.isfinite(num) and math.isfinite(denom) else math.inf


def _fmt_count(k: int) -> str:
    return f"{k:,}"


def _fmt_pct(fraction: float) -> str:
    """A fraction as a short percentage: 0.0014967 -> '0.15%', 1.0 -> '100%'."""
    v = 100.0 * fraction
    if v == 0:
        return "0%"
    if v >= 10:
        return f"{v:.0f}%"
    if v >= 1e-3:
        return f"{v:#.2g}%"
    return f"{v:.1e}%"


#: Column headers of Ng's bands in the text table (counts of components per band).
BAND_HEADERS = ("<1e-7", "<1e-5", "<1e-3", ">1e-3")
BAND_KEYS = ("<1e-7", "1e-7..1e-5", "1e-5..1e-3", ">1e-3")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return [v if math.isfinite(v) else None for v in value.tolist()]
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, eq=False)
class Report:
    """Everything a gradient check found; see docs/api.md for the meaning of each attribute."""

    passed: bool
    verdict: str
    relative_error: float
    n_params: int
    n_checked: int
    indices: np.ndarray
    analytic: np.ndarray
    numeric: np.ndarray
    abs_errors: np.ndarray
    rel_errors: np.ndarray
    kinds: np.ndarray
    steps: np.ndarray
    failed: np.ndarray
    blocks: tuple
    layout: Layout
    seed: int
    eps: Any
    rtol: float
    backend: str
    threads: int
    seconds: float
    compile_seconds: float
    evaluations: int
    sampled: bool
    stats: Any = None
    failure_rate_bound: Any = None
    hints: tuple = field(default_factory=tuple)
    stop_reason: str = "complete"
    mode: str = "full"
    method: str = "central"
    notes: tuple = ()

    # -- components ------------------------------------------------------------------
    def component(self, position: int) -> ComponentError:
        """The ``position``-th checked component as a ComponentError."""
        flat = int(self.indices[position])
        name, index = self.layout.locate(flat)
        return ComponentError(
            name, index, flat, float(self.analytic[position]), float(self.numeric[position]),
            float(self.abs_errors[position]), float(self.rel_errors[position]),
            str(self.kinds[position]),
        )

    def worst(self, k: int = 10) -> list[ComponentError]:
        """The ``k`` largest discrepancies, failures first, then by relative error."""
        if self.n_checked == 0 or k <= 0:
            return []
        is_fail = np.isin(self.kinds, ("fail", "nonfinite"))
        rel = np.where(np.isnan(self.rel_errors), np.inf, self.rel_errors)
        order = np.lexsort((-rel, ~is_fail))[:k]
        return [self.component(int(p)) for p in order]

    # -- text ------------------------------------------------------------------------
    def headline(self) -> str:
        """One line: the verdict in Ng's terms."""
        word = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}[self.verdict]
        n_fail = len(self.failed)
        what = f"{_fmt_count(self.n_checked)} of {_fmt_count(self.n_params)} components checked"
        fails = f", {_fmt_count(n_fail)} failed" if n_fail else ""
        return (f"fastcheck {word}: relative error {self.relative_error:.2e} "
                f"({ng_band(self.relative_error)}); {what}{fails}")

    def confidence_sentence(self) -> str | None:
        """The failure-rate bound in words (None for a full check)."""
        bound = self.failure_rate_bound
        if not bound:
            return None
        k, n, total = bound["n_failed"], bound["n_checked"], bound["n_params"]
        return (f"{_fmt_count(k)} of {_fmt_count(n)} sampled components failed: with "
                f"{100 * bound['confidence']:g}% confidence at most "
                f"{_fmt_pct(bound['overall'])} of the {_fmt_count(total)} components are wrong "
                f"(Clopper-Pearson)")

    def band_counts(self, name: str | None = None) -> tuple[int, ...] | None:
        """Components of a block (or all, ``name=None``) in Ng's four bands, from ``stats``."""
        if not self.stats:
            return None
        group = self.stats["overall"] if name is None else self.stats["blocks"][name]
        return tuple(int(group["bands"][key]) for key in BAND_KEYS)

    def _block_lines(self) -> list[str]:
        head = ["block", "shape", "checked", "rel.error", "max comp.", "failed", "kinks"]
        bands = ({b.name: [_fmt_count(c) for c in self.band_counts(b.name)]
                  for b in self.blocks} if self.stats else None)
        if bands:
            widths = [max(len(h), *(len(counts[i]) for counts in bands.values()))
                      for i, h in enumerate(BAND_HEADERS)]
            head.append("|".join(h.rjust(w) for h, w in zip(BAND_HEADERS, widths)))
        bound = self.failure_rate_bound
        if bound:
            head.append(f"fail<={100 * bound['confidence']:g}%")
        head.append("verdict")
        rows = [tuple(head)]
        for b in self.blocks:
            row = [b.name, str(b.shape), f"{_fmt_count(b.n_checked)}/{_fmt_count(b.n_params)}",
                   f"{b.relative_error:.1e}", f"{b.max_rel_error:.1e}", _fmt_count(b.n_failed),
                   _fmt_count(b.n_kinks)]
            if bands:
                row.append("|".join(c.rjust(w) for c, w in zip(bands[b.name], widths)))
            if bound:
                row.append(_fmt_pct(bound["blocks"][b.name]))
            row.append(b.verdict)
            rows.append(tuple(row))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                for r in rows]

    def _worst_lines(self, k: int) -> list[str]:
        worst = [c for c in self.worst(k) if c.kind != "ok" or c.rel_error > 0]
        if not worst:
            return []
        position = {int(f): p for p, f in enumerate(self.indices)}
        lines = []
        for c in worst:
            label = self.layout.label(c.flat_index)
            step = self.steps[position[c.flat_index]]
            lines.append(
                f"  {label:<14} analytic {c.analytic: .6e}  numeric {c.numeric: .6e}  "
                f"step {step:.1e}  rel.err {c.rel_error:.1e}  {c.kind}"
            )
        return lines

    def failing_blocks(self) -> list[str]:
        """Names of the blocks with at least one failing component."""
        return [b.name for b in self.blocks if b.n_failed]

    def short_summary(self, k: int = 5) -> str:
        """The first lines of the summary: verdict, failing blocks, worst components."""
        lines = [self.headline()]
        bad = self.failing_blocks()
        if bad:
            lines.append(f"failing blocks: {', '.join(bad)}")
        lines.extend(f"hint: {h}" for h in self.hints)
        confidence = self.confidence_sentence()
        if confidence:
            lines.append(confidence)
        worst = self._worst_lines(k)
        if worst:
            lines.append("worst components:")
            lines.extend(worst)
        return "\n".join(lines)

    def _method_text(self, eps: str) -> str:
        if self.method == "complex":
            return "complex step (h = 1e-20 * max(1, |theta_i|))"
        if self.method == "richardson":
            return f"Richardson extrapolation of central differences at h and h/2, eps {eps}"
        return f"eps {eps}"

    def summary(self) -> str:
        """The human-readable report: verdict, per-block table, worst components, run."""
        lines = [self.headline()]
        bad = self.failing_blocks()
        if bad:
            lines.append(f"failing blocks: {', '.join(bad)}")
        lines.extend(f"hint: {h}" for h in self.hints)
        lines.extend(f"note: {n}" for n in self.notes)
        confidence = self.confidence_sentence()
        if confidence:
            lines.append(confidence)
        lines.append("")
        lines.append("blocks:" + ("  (bands: components per relative-error band)"
                                  if self.stats else ""))
        lines.extend(self._block_lines())
        worst = self._worst_lines(10 if len(self.failed) else 5)
        if worst:
            lines.append("")
            lines.append("worst components:")
            lines.extend(worst)
        n_kinks = int(np.count_nonzero(self.kinds == "kink"))
        if n_kinks and not any("kink" in h for h in self.hints):
            lines.append("")
            lines.append(f"{_fmt_count(n_kinks)} component(s) sit on a kink (ReLU/max/abs "
                         "switching inside the step): not counted as failures.")
        lines.append("")
        eps = "auto (cbrt(eps) * max(1, |theta_i|))" if self.eps == "auto" else f"{self.eps:g}"
        if self.mode == "directional":
            sampled = f", directional check (random directions + group testing), seed {self.seed}"
        elif self.sampled:
            sampled = f", stratified sample, seed {self.seed}"
        else:
            sampled = ""
        compile_ = (f" + {self.compile_seconds:.2f} s compile"
                    if self.compile_seconds >= 0.005 else "")
        lines.append(
            f"ran: backend {self.backend}, {self.threads} thread(s), "
            f"{_fmt_count(self.evaluations)} cost evaluations in {self.seconds:.3f} s"
            f"{compile_}; {self._method_text(eps)}; rtol {self.rtol:g}{sampled}"
        )
        if self.mode == "directional":
            lines.append(f"directional: {self.stop_reason}")
        elif self.stop_reason != "complete":
            lines.append(f"stopped early: {self.stop_reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """The report as an HTML table, for Jupyter."""
        from .plot import report_html

        return report_html(self)

    def plot(self, **kwargs: Any):
        """Histograms of log10 relative errors and analytic-vs-numeric scatter, per block.

        Needs matplotlib (``pip install fastcheck[plot]``); returns a
        ``matplotlib.figure.Figure`` (no display needed). See ``fastcheck.plot.plot_report``.
        """
        from .plot import plot_report

        return plot_report(self, **kwargs)

    def __repr__(self) -> str:
        return (f"<Report {self.verdict}: relative_error={self.relative_error:.2e}, "
                f"{self.n_checked}/{self.n_params} checked, {len(self.failed)} failed>")

    # -- programmatic ----------------------------------------------------------------
    def to_dict(self) -> dict:
        """Everything in the report as JSON-serialisable values (NaN/inf as None)."""
        out = {
            "passed": bool(self.passed),
            "verdict": self.verdict,
            "relative_error": self.relative_error,
            "n_params": self.n_params,
            "n_checked": self.n_checked,
            "indices": self.indices,
            "analytic": self.analytic,
            "numeric": self.numeric,
            "abs_errors": self.abs_errors,
            "rel_errors": self.rel_errors,
            "kinds": [str(k) for k in self.kinds],
            "steps": self.steps,
            "failed": self.failed,
            "blocks": [
                {"name": b.name, "shape": list(b.shape), "n_params": b.n_params,
                 "n_checked": b.n_checked, "relative_error": b.relative_error,
                 "max_rel_error": b.max_rel_error, "n_failed": b.n_failed,
                 "n_kinks": b.n_kinks, "verdict": b.verdict}
                for b in self.blocks
            ],
            "worst": [
                {**c._asdict(), "index": list(c.index), "label": self.layout.label(c.flat_index)}
                for c in self.worst(10)
            ],
            "stats": self.stats,
            "failure_rate_bound": self.failure_rate_bound,
            "hints": list(self.hints),
            "seed": self.seed,
            "eps": self.eps,
            "rtol": self.rtol,
            "backend": self.backend,
            "threads": self.threads,
            "seconds": self.seconds,
            "compile_seconds": self.compile_seconds,
            "evaluations": self.evaluations,
            "sampled": self.sampled,
            "stop_reason": self.stop_reason,
            "mode": self.mode,
            "method": self.method,
            "notes": list(self.notes),
            "layout": {n: list(s) for n, s in zip(self.layout.names, self.layout.shapes)},
        }
        return _jsonable(out)

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` (an AssertionError) carrying the summary."""
        if not self.passed:
            raise GradientCheckError(self.short_summary(), report=self)


def block_reports(layout: Layout, indices: np.ndarray, analytic: np.ndarray,
                  numeric: np.ndarray, rel_errors: np.ndarray, kinds: np.ndarray
                  ) -> tuple[BlockReport, ...]:
    """One BlockReport per block, computed with vectorised grouping."""
    block = layout.block_of(indices)
    bounds = np.searchsorted(block, np.arange(len(layout) + 1))
    failing = np.isin(kinds, ("fail", "nonfinite"))
    out = []
    for b, (name, shape) in enumerate(zip(layout.names, layout.shapes)):
        s = slice(int(bounds[b]), int(bounds[b + 1]))
        rel = global_relative_error(analytic[s], numeric[s])
        n_failed = int(np.count_nonzero(failing[s]))
        errs = rel_errors[s]
        if errs.size == 0:
            max_rel = 0.0
        elif np.all(np.isnan(errs)):
            max_rel = math.nan
        else:
            max_rel = float(np.nanmax(errs))
        out.append(BlockReport(
            name, tuple(shape), layout.sizes[b], int(s.stop - s.start), rel, max_rel,
            n_failed, verdict_of(n_failed, rel), int(np.count_nonzero(kinds[s] == "kink")),
        ))
    return tuple(out)
