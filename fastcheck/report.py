"""The result of a gradient check, as data: Report, BlockReport, ComponentError.

A Report is built in one place, :meth:`Report.from_components`, from the per-component
arrays of a finished check (full, sampled or directional). Its presentations (text, HTML,
JSON, plots) live in :mod:`fastcheck.views`; the methods here only delegate to them. The
statistics (``stats``) and the diagnoses (``hints``) are computed on first access.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from ._blocks import (
    BlockReport,
    block_reports,
    global_relative_error,
    unresolved_note,
    verdict_of,
    with_unresolved,
)
from ._verdict import FAIL, KINK, NONFINITE, relative_errors
from .errors import GradientCheckError
from .layout import Layout
from .stats import band_counts, upper_bounds
from .views.bands import BAND_KEYS

__all__ = ["Report", "BlockReport", "ComponentError", "Run", "Directional", "verdict_of",
           "global_relative_error"]

#: Kinds that count as failures.
FAILING = (FAIL, NONFINITE)


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
class Run:
    """How a check ran: everything a Report records besides the per-component arrays."""

    seed: int
    eps: Any
    rtol: float
    backend: str
    threads: int
    seconds: float
    compile_seconds: float
    evaluations: int
    sampled: bool
    confidence: float = 0.95
    stop_reason: str = "complete"
    mode: str = "full"
    method: str = "central"
    notes: tuple = ()
    #: The verdict used a floor from the cost's measured noise (a float32 cost), so Ng's
    #: float64 bands do not decide "warn" (see ``verdict_of``).
    noise_floor: bool = False


@dataclass(frozen=True)
class Directional:
    """What the random directions of ``mode="directional"`` tested, and could have missed.

    ``detection_limit`` is the smallest error in one component, relative to ``||g||_2``,
    that the directions would have detected with probability at least ``probability``
    (over the random signs); ``guaranteed_limit`` the one detected whatever the signs.
    """

    n_directions: int
    n_failed: int
    relative_error: float
    gradient_norm: float
    detection_limit: float
    guaranteed_limit: float
    probability: float


@dataclass(frozen=True, eq=False)
class Report:
    """Everything a gradient check found; see docs/api.md for each attribute.

    Build one with :meth:`from_components`. ``relative_error`` is over every checked
    component; ``smooth_relative_error`` leaves out the components on a kink (the headline
    and the verdict use it). ``stats`` and ``hints`` are computed on first access.
    """

    passed: bool
    verdict: str
    relative_error: float
    smooth_relative_error: float
    n_params: int
    n_checked: int
    n_kinks: int
    indices: np.ndarray
    analytic: np.ndarray
    numeric: np.ndarray
    abs_errors: np.ndarray
    rel_errors: np.ndarray
    kinds: np.ndarray
    steps: np.ndarray
    failed: np.ndarray
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
    confidence: float = 0.95
    failure_rate_bound: float | None = None
    stop_reason: str = "complete"
    mode: str = "full"
    method: str = "central"
    notes: tuple = ()
    #: The verdict used the cost's measured noise (float32), not Ng's float64 bands.
    noise_floor: bool = False
    directional: Directional | None = None
    theta_checked: np.ndarray | None = field(default=None, repr=False)
    #: Flat indices that passed unresolved (see ``BlockReport.n_unresolved``).
    unresolved: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: The BlockReports, or the function that builds them on first access (``blocks``).
    _blocks: Any = field(default=(), repr=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    # -- the one constructor ---------------------------------------------------------
    @classmethod
    def from_components(cls, layout: Layout, indices: np.ndarray, analytic: np.ndarray,
                        numeric: np.ndarray, kinds: np.ndarray, steps: np.ndarray,
                        theta_checked: np.ndarray, run: Run, *,
                        warn_blocks: tuple[int, ...] = (), unexplained: bool = False,
                        directional: Directional | None = None,
                        unresolved: np.ndarray | None = None) -> Report:
        """The Report of a finished check, from its per-component arrays.

        Parameters
        ----------
        layout : Layout
            The blocks of the parameter vector.
        indices : numpy.ndarray
            Flat indices of the checked components, ascending (int64).
        analytic, numeric, kinds, steps, theta_checked : numpy.ndarray
            Per checked component: both gradients, the kind (``_verdict.OK``, ``KINK``,
            ``FAIL``, ``NONFINITE``), the half-step and theta.
        run : Run
            How the check ran (seed, step, backend, timings, mode, ...).
        warn_blocks : tuple of int, optional
            Blocks to mark "warn" when none of their components failed (directional mode:
            a failing group test that no single component explains).
        unexplained : bool, optional
            A test failed that no component explains: the verdict is at least "warn".
        directional : Directional or None, optional
            What the directions tested (directional mode only).
        unresolved : numpy.ndarray or None, optional
            Per checked component: its noise floor (a float32 cost) is above a quarter of its
            gradient, so a factor-2 error could pass there (see ``_driver.unresolved``).

        Returns
        -------
        Report
            With per-block results, verdicts and, for a uniform sample (``run.sampled``
            in full mode), the failure-rate bounds at ``run.confidence``.
        """
        indices = np.asarray(indices, dtype=np.int64)
        analytic = np.asarray(analytic, dtype=np.float64)
        numeric = np.asarray(numeric, dtype=np.float64)
        kinds = np.asarray(kinds).astype(str)
        failing = (kinds == FAIL) | (kinds == NONFINITE)
        smooth = kinds != KINK
        n_failed = int(np.count_nonzero(failing))
        all_smooth = bool(smooth.all())
        rel_all = global_relative_error(analytic, numeric)
        rel_smooth = (rel_all if all_smooth
                      else global_relative_error(analytic[smooth], numeric[smooth]))
        verdict = verdict_of(n_failed, rel_smooth, run.noise_floor)
        if unexplained and verdict == "pass":
            verdict = "warn"
        nothing = run.mode == "full" and indices.shape[0] == 0 and layout.size > 0
        if nothing:  # stopped before its first chunk ended: no verdict to give
            verdict = "warn"
        rel_errors = relative_errors(analytic, numeric)
        blind = (np.zeros(indices.shape[0], dtype=bool) if unresolved is None
                 else np.asarray(unresolved, dtype=bool))
        any_blind = bool(blind.any())
        sampled = run.sampled and run.mode == "full"
        overall = None  # the failure-rate bound of a sample, with the blocks' own

        def make_blocks() -> tuple[BlockReport, ...]:
            nonlocal overall
            blocks = block_reports(layout, indices, analytic, numeric, rel_errors, smooth,
                                   failing, run.noise_floor)
            if any_blind:
                blocks = with_unresolved(blocks, layout, indices, blind)
            if warn_blocks:
                blocks = [b if i not in warn_blocks or b.n_failed else replace(b, verdict="warn")
                          for i, b in enumerate(blocks)]
            if sampled:  # a block with nothing checked has no verdict to give: "warn"
                blocks = [replace(b, verdict="warn") if b.n_checked == 0 and b.n_params
                          else b for b in blocks]
                overall, per_block = upper_bounds([b.n_failed for b in blocks],
                                                  [b.n_checked for b in blocks], layout.sizes,
                                                  run.confidence)
                blocks = [replace(b, failure_rate_bound=p) for b, p in zip(blocks, per_block)]
            return tuple(blocks)

        notes = tuple(run.notes) + ((
            "no component was checked (the check stopped before its first chunk ended): "
            "nothing is known about the gradient yet",) if nothing else ())
        # Most reports are read for their verdict only: the per-block figures are built on
        # first access of ``blocks``, unless the verdict or the notes need them now.
        blocks: Any = make_blocks
        if any_blind or sampled:
            blocks = make_blocks()
        if any_blind:
            if verdict == "pass" and any(b.verdict == "warn" for b in blocks):
                verdict = "warn"
            notes += (unresolved_note(list(blocks), int(blind.sum()),
                                      int(indices.shape[0])),)
        return cls(
            passed=n_failed == 0, verdict=verdict,
            relative_error=rel_all,
            smooth_relative_error=rel_smooth, n_params=layout.size,
            n_checked=int(indices.shape[0]),
            n_kinks=0 if all_smooth else int(indices.shape[0] - smooth.sum()),
            indices=indices, analytic=analytic, numeric=numeric,
            abs_errors=np.abs(analytic - numeric),
            rel_errors=rel_errors, kinds=kinds,
            steps=np.asarray(steps, dtype=np.float64), failed=indices[failing],
            _blocks=blocks, layout=layout, seed=run.seed, eps=run.eps, rtol=run.rtol,
            backend=run.backend, threads=run.threads, seconds=run.seconds,
            compile_seconds=run.compile_seconds, evaluations=run.evaluations,
            sampled=run.sampled, confidence=run.confidence, failure_rate_bound=overall,
            stop_reason=run.stop_reason, mode=run.mode, method=run.method,
            notes=notes, noise_floor=run.noise_floor, directional=directional,
            theta_checked=np.asarray(theta_checked, dtype=np.float64),
            unresolved=indices[blind],
        )

    # -- computed on first access ----------------------------------------------------
    @property
    def blocks(self) -> tuple[BlockReport, ...]:
        """One BlockReport per block of the layout, in its order (built on first access)."""
        made = self._blocks
        if callable(made):
            made = made()
            object.__setattr__(self, "_blocks", made)
        return made

    def __getstate__(self) -> dict:
        """Pickle with the blocks built: their builder is a closure, which pickle cannot
        carry."""
        _ = self.blocks
        return dict(self.__dict__)

    @property
    def stats(self) -> dict:
        """The SciPy statistics of the relative errors, overall and per block (see
        ``stats.error_statistics``), with ``"failure_rate_bound"``: the bounds in full
        (per block, exact finite-population ones too) or None for a complete check."""
        if "stats" not in self._cache:
            from . import stats

            out = stats.error_statistics(self.rel_errors, self.kinds, self.indices,
                                         self.layout)
            out["failure_rate_bound"] = None if self.failure_rate_bound is None else (
                stats.failure_rate_bound({b.name: b.n_failed for b in self.blocks},
                                         {b.name: b.n_checked for b in self.blocks},
                                         self.layout, self.confidence))
            self._cache["stats"] = out
        return self._cache["stats"]

    @property
    def hints(self) -> tuple[str, ...]:
        """Diagnoses in plain words, most specific first (see ``diagnose.hints``)."""
        if "hints" not in self._cache:
            from .diagnose import hints

            theta = (self.theta_checked if self.theta_checked is not None
                     else np.full(self.indices.shape, np.nan))
            self._cache["hints"] = tuple(hints(self, theta))
        return self._cache["hints"]

    @property
    def detection_limit(self) -> float | None:
        """Directional mode: the smallest single-component error, relative to ``||g||``,
        detected with probability ``directional.probability`` (None in full mode)."""
        return None if self.directional is None else self.directional.detection_limit

    # -- components ------------------------------------------------------------------
    def component(self, position: int) -> ComponentError:
        """The ``position``-th checked component as a ComponentError.

        Its ``kind`` is one of the contract's three, ``"fail"``, ``"kink"`` or ``"ok"``: a
        non-finite component (NaN or inf in either gradient) is a ``"fail"`` there, while
        ``report.kinds`` and ``stats`` keep the finer ``"nonfinite"``.
        """
        flat = int(self.indices[position])
        name, index = self.layout.locate(flat)
        kind = str(self.kinds[position])
        return ComponentError(
            name, index, flat, float(self.analytic[position]), float(self.numeric[position]),
            float(self.abs_errors[position]), float(self.rel_errors[position]),
            FAIL if kind == NONFINITE else kind,
        )

    def worst(self, k: int = 10) -> list[ComponentError]:
        """The ``k`` largest discrepancies, failures first, then by relative error."""
        if self.n_checked == 0 or k <= 0:
            return []
        is_fail = np.isin(self.kinds, FAILING)
        rel = np.where(np.isnan(self.rel_errors), np.inf, self.rel_errors)
        order = np.lexsort((-rel, ~is_fail))[:k]
        return [self.component(int(p)) for p in order]

    def failing_blocks(self) -> list[str]:
        """Names of the blocks with at least one failing component."""
        return [b.name for b in self.blocks if b.n_failed]

    def block_slices(self) -> dict[str, slice]:
        """Block name -> the slice of the per-component arrays that holds its components."""
        if "slices" not in self._cache:
            bounds = np.searchsorted(self.layout.block_of(self.indices),
                                     np.arange(len(self.layout) + 1))
            self._cache["slices"] = {name: slice(int(bounds[b]), int(bounds[b + 1]))
                                     for b, name in enumerate(self.layout.names)}
        return self._cache["slices"]

    def band_counts(self, name: str | None = None) -> tuple[int, ...]:
        """Components of a block (or all, ``name=None``) in Ng's four bands (numpy only:
        the text table needs no ``scipy.stats``; the same counts as in ``stats``)."""
        rel = self.rel_errors if name is None else self.rel_errors[self.block_slices()[name]]
        counts = band_counts(rel)
        return tuple(int(counts[key]) for key in BAND_KEYS)

    # -- views (fastcheck.views) -----------------------------------------------------
    def headline(self) -> str:
        """One line: the verdict, the error of the smooth components, kinks apart."""
        from .views.text import headline

        return headline(self)

    def confidence_sentence(self) -> str | None:
        """The failure-rate bound in words (None unless a sample was checked)."""
        from .views.text import confidence_sentence

        return confidence_sentence(self)

    def short_summary(self, k: int = 5) -> str:
        """The first lines of the summary: verdict, failing blocks, worst components."""
        from .views.text import short_summary

        return short_summary(self, k)

    def summary(self) -> str:
        """The human-readable report: verdict, per-block table, worst components, run."""
        from .views.text import summary

        return summary(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<Report {self.verdict}: relative_error={self.relative_error:.2e}, "
                f"{self.n_checked}/{self.n_params} checked, {len(self.failed)} failed>")

    def _repr_html_(self) -> str:
        """The report as an HTML table, for Jupyter."""
        from .views.html import report_html

        return report_html(self)

    def plot(self, **kwargs: Any) -> Any:
        """Histograms of log10 relative errors and analytic-vs-numeric scatter, per block.

        Needs matplotlib (``pip install fastcheck[plot]``); returns a
        ``matplotlib.figure.Figure`` that Jupyter shows as an image. See
        ``fastcheck.views.plot.plot_report`` for the options.
        """
        from .views.plot import plot_report

        return plot_report(self, **kwargs)

    def to_dict(self) -> dict:
        """Everything in the report as JSON-serialisable values (NaN/inf as None)."""
        from .views.json import report_dict

        return report_dict(self)

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` (an AssertionError) carrying the summary."""
        if not self.passed:
            raise GradientCheckError(self.short_summary(), report=self)
