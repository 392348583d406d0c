"""``mode="directional"``: a few random directional derivatives, then group testing.

A check along a direction ``d`` compares ``g . d`` with ``(J(theta + d) - J(theta - d)) / 2``:
two evaluations whatever N is. K random sign vectors ``u`` (Rademacher) cover all N
components. When one disagrees, the bad components are *localized* by adaptive group
testing: the same ``u`` restricted to each block, then to halves of the failing groups,
recursively, until groups of at most ``LEAF_SIZE`` components are checked one by one with
central differences exactly as the full check does. k bad components among N cost
O(k log N) evaluations.

The step. The full check moves component i by ``h_i`` (``_steps.nominal_steps``: cbrt(eps)
* max(1, |theta_i|)). Along a group G of n components the move is

    d_i = h_i * u_i / ||u_G||_2        (i in G, u_i = +-1, so ||u_G||_2 = sqrt(n)),

so the Euclidean length of the move is one full-check step. Both errors of the central
difference then behave as for a single component: with ``d = t * e`` (``||e|| = 1``) the
truncation ``t^2 J'''(e,e,e) / 6`` and the roundoff ``eps |J| / t`` relative to ``g . d``
are those of a coordinate step of length t. Moving every component by the full ``h_i``
instead (JAX's choice, with h = 1e-4) makes the move sqrt(N) times longer: on the L
network (N = 109,386) that crosses ReLU kinks in most directions and gives errors of
1e-3 relative, i.e. false failures.

Verdicts use ``_verdict`` unchanged, in the coordinate t of the line ``theta + t d``
(t = +-1, then +-1/4, +-1/16 when re-examined): tolerance ``rtol (|a| + |n|)`` plus the
roundoff floor, and the kink test on the one-sided slopes before a direction, or a group,
is called failed. A group whose test ends on a kink is not a failure, but a bug may sit
beside the kink: such groups are followed too, after the failing ones, until one kink is
located in their block. The work is capped (``MAX_FAILURES_PER_BLOCK``,
``MAX_LOCALIZE_EVALUATIONS``, which counts the one-by-one checks too) and the report's
``stop_reason`` says where it stopped.

A failed direction that no part explains (an error spread thinly, cancelling, or a part
under its own tolerance) is retested with fresh signs, then checked one by one, the part
carrying its residual first, then the flagged blocks (``_group_testing``). Only if nothing
is confirmed does the report stay "warn" (never FAIL without a component confirmed one by
one), naming the flagged blocks and what was left unchecked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time

import numpy as np

from . import _driver, _plan, _steps, _verdict
from ._blas import single_threaded_blas
from ._detection import detection_limits
from ._group_testing import (
    FALLBACK_CHUNK,
    LEAF_SIZE,
    MAX_FAILURES_PER_BLOCK,
    MAX_LOCALIZE_EVALUATIONS,
    Fallback,
    Localization,
    Localizer,
    Lost,
    rademacher,
)
from ._inputs import Problem
from ._lazy import is_jitted
from ._values import scalar_cost
from .backends.serial import SerialBackend, ensure_unmodified
from .errors import CostEvaluationError
from .report import Directional, Report, Run

__all__ = ["run_directional", "LEAF_SIZE", "MAX_FAILURES_PER_BLOCK", "MAX_LOCALIZE_EVALUATIONS",
           "FALLBACK_CHUNK"]

#: The probability at which the report states the smallest error the directions detect.
DETECTION_PROBABILITY = 0.95


@dataclasses.dataclass(frozen=True)
class _Test:
    """One directional test: verdict kind, g.d, the central difference, the tolerance."""

    kind: str
    analytic: float
    numeric: float
    tolerance: float
    #: Passed, but the cost's measured noise (a float32 cost) sets a floor above a quarter
    #: of ``g . d``: a factor-2 error along this direction could pass (``_driver.unresolved``)
    unresolved: bool = False

    @property
    def failed(self) -> bool:
        return self.kind in (_verdict.FAIL, _verdict.NONFINITE)

    @property
    def excess(self) -> float:
        """|a - n| / tolerance (inf for non-finite)."""
        diff = abs(self.analytic - self.numeric)
        return diff / self.tolerance if math.isfinite(diff) and self.tolerance > 0 else math.inf


class _Lines:
    """Evaluates the cost along ``theta + t d`` on a group, on a private working copy."""

    def __init__(self, problem: Problem, steps: np.ndarray, rtol: float, tick=None):
        self.problem = problem
        self.steps = steps  # full-check step h_i of every component
        self.rtol = rtol
        self.x = problem.theta.copy()
        self.call = problem.make_call(self.x)
        self.evaluations = 0
        self.tests = 0
        self.tick = tick or (lambda n: None)  # progress: called after each evaluation

    def values(self, lo: int, hi: int, d: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """J(theta + t d) for each t, ``d`` living on components ``lo:hi``."""
        theta = self.problem.theta[lo:hi]
        seg = self.x[lo:hi]
        out = np.empty(ts.shape[0], dtype=np.float64)
        try:
            for k, t in enumerate(ts):
                seg[:] = theta + t * d
                out[k] = scalar_cost(self.call(), "at a point along a random direction")
                self.evaluations += 1
                self.tick(1)
        except (KeyboardInterrupt, CostEvaluationError):
            raise
        except Exception as exc:  # the user's cost failed: say along what
            layout = self.problem.layout
            where = f"{layout.label(lo)}..{layout.label(hi - 1)}" if hi - lo > 1 else (
                layout.label(lo))
            raise CostEvaluationError(
                f"cost raised {type(exc).__name__}: {exc} -- while evaluating theta moved "
                f"along a random direction on components {where} (directional mode)",
                flat_index=lo, name=layout.label(lo)) from exc
        finally:
            seg[:] = theta
        ensure_unmodified(self.x, self.problem.theta)
        return out

    def test(self, lo: int, hi: int, u: np.ndarray) -> _Test:
        """Compare g.d with the central difference along ``d`` (signs ``u`` on lo:hi)."""
        self.tests += 1
        p = self.problem
        d = self.steps[lo:hi] * u / math.sqrt(hi - lo)
        a = np.array([float(p.analytic[lo:hi] @ d)])
        one, zero = np.ones(1), np.zeros(1)
        jp, jm = self.values(lo, hi, d, np.array([1.0, -1.0]))
        first = _verdict.Differences(np.array([jp]), np.array([jm]), one, -one)
        n0 = first.numeric()
        floor = first.roundoff(p.j0, p.noise)
        # the gap that would still pass: a suspect is re-examined, and at the next step the
        # floor is SHRINK times larger, so an error below that passes too, and near that
        # boundary the re-examined difference's own roundoff decides: twice that floor
        # (the detection limit read from the first floor alone was 1-3x too small; at
        # SHRINK times it, an error at the stated limit was seen 75 % of the time, not 95 %)
        tol = float(self.rtol * (abs(a[0]) + abs(n0[0])) + 2 * _verdict.SHRINK * floor[0])
        if not _verdict.suspects(a, n0, floor, self.rtol)[0]:
            blind = bool(_driver.unresolved(p, a, n0, floor)[0])
            return _Test(_verdict.OK, float(a[0]), float(n0[0]), tol, blind)

        def evaluate(_positions, xp, xm):
            jp_, jm_ = self.values(lo, hi, d, np.array([xp[0], xm[0]]))
            return np.array([jp_]), np.array([jm_])

        out = _verdict.reexamine(a, zero, one, first, p.j0, self.rtol, evaluate, p.noise)
        kind = str(out.kinds[0])
        if kind == _verdict.OK:
            # accepted at a smaller (or larger) step: that step's floor cleared it, and at
            # least the gap it cleared would pass again
            n = float(out.numeric[0])
            tol = max(tol, float(self.rtol * (abs(a[0]) + abs(n)) + floor[0] / out.steps[0]),
                      abs(float(a[0]) - float(n0[0])))
        # excused under the noise (a float32 cost): not resolved either
        return _Test(kind, float(a[0]), float(out.numeric[0]), tol,
                     p.noise > 0 and kind == _verdict.OK)


class _Components:
    """The full check's per-component test (central differences, re-examination)."""

    def __init__(self, problem: Problem, eps, rtol: float, tick=None):
        self.problem, self.eps, self.rtol = problem, eps, rtol
        self.tick = tick or (lambda n: None)
        self.backend = SerialBackend(problem)
        self.results: dict[int, tuple] = {}  # flat index -> (numeric, kind, half-step)

    @property
    def evaluations(self) -> int:
        return self.backend.evaluations

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        p, before = self.problem, self.backend.evaluations
        theta_at = p.theta[indices]
        h = p.nominal_steps(theta_at, self.eps)
        x_plus, x_minus = _steps.perturbed_points(theta_at, h)
        analytic = p.analytic[indices]
        j_plus, j_minus = self.backend.evaluate(indices, x_plus, x_minus)
        first = _verdict.Differences(j_plus, j_minus, x_plus, x_minus)
        numeric = first.numeric()
        floor = first.roundoff(p.j0, p.noise)
        kinds = np.full(indices.shape[0], _verdict.OK, dtype="<U9")
        suspect = _verdict.suspects(analytic, numeric, floor, self.rtol)
        blind = _driver.unresolved(p, analytic, numeric, floor) & ~suspect
        where = np.flatnonzero(suspect)
        if where.size:
            sub = _verdict.Differences(j_plus[where], j_minus[where], x_plus[where],
                                       x_minus[where])

            def evaluate(positions, xp, xm):
                return self.backend.evaluate(indices[where[positions]], xp, xm)

            out = _verdict.reexamine(analytic[where], theta_at[where], h[where], sub, p.j0,
                                     self.rtol, evaluate, p.noise)
            if np.any(out.off_hull):  # as the full check: confirmed off the kink, if it can
                _driver.confirm_off_kink(self.backend, p, indices[where], theta_at[where], out,
                                         self.rtol)
            kinds[where] = out.kinds
            numeric[where] = out.numeric
            if p.noise > 0:  # a suspect excused under float32 noise was not resolved either
                blind[where] = out.kinds == _verdict.OK
        self.tick(self.backend.evaluations - before)
        for k, i in enumerate(indices.tolist()):
            self.results[i] = (float(numeric[k]), str(kinds[k]),
                               float((x_plus[k] - x_minus[k]) / 2), bool(blind[k]))
        return kinds


# -- the run --------------------------------------------------------------------------
def _directions_sentence(tests: list[_Test]) -> str:
    kinds = [t.kind for t in tests]
    parts = [f"{kinds.count(k)} {word}" for k, word in
             ((_verdict.OK, "agreed"), (_verdict.KINK, "on a kink"),
              (_verdict.FAIL, "failed"), (_verdict.NONFINITE, "non-finite")) if kinds.count(k)]
    return ", ".join(parts)


def _detection_sentence(d: Directional) -> str:
    if not math.isfinite(d.guaranteed_limit):
        return ("detection power: unknown (no direction passed off a kink with a finite "
                "difference)")
    return (f"detection power: an error in one component above {d.detection_limit:.1e}"
            f"·|g| is seen with probability >= {d.probability:g} over the random signs, "
            f"above {d.guaranteed_limit:.1e}·|g| whatever the signs (|g| = ||g||_2 = "
            f"{d.gradient_norm:.3e}; limits for the component moved least, its step "
            f"/ sqrt(N) against each passing direction's tolerance and residual); smaller "
            f"errors, "
            f"and errors that cancel along every direction, can go unseen")


def _localization_sentence(found: Localization, layout, n_tests: int,
                           n_checked: int) -> str:
    text = (f"localized by group testing ({n_tests} group tests: blocks, then halves; "
            f"{n_checked} components checked one by one: groups of <= {LEAF_SIZE}, and "
            f"failing groups that no part explained)")
    notes = []
    if found.capped:
        names = ", ".join(layout.names[b] for b in sorted(found.capped))
        notes.append(f"in {names} it stopped after {MAX_FAILURES_PER_BLOCK} or more failing "
                     f"components (the cap per block): the error is spread over "
                     f"{'the block' if len(found.capped) == 1 else 'each of these blocks'}; "
                     f"a full check (or one with sample=) lists them all")
    if found.out_of_budget:
        notes.append(f"it stopped at the budget of {MAX_LOCALIZE_EVALUATIONS:,} evaluations")
    if found.retested:
        notes.append(f"{found.retested} failing group(s) whose parts all passed were tested "
                     f"again with fresh random signs ({found.rescued} then had a failing part)")
    if found.lost:
        where = ", ".join(_span(layout, g.lo, g.hi) + (
            f" (mostly in {_span(layout, *g.carrier)})" if g.carrier else "")
            for g in found.lost[:3])
        notes.append(f"{len(found.lost)} failing group(s) had no failing part even so "
                     f"({where}{', ...' if len(found.lost) > 3 else ''}): errors too small "
                     f"to see in parts, or cancelling")
    if found.fallbacks:
        notes.append(_fallback_sentence(found.fallbacks))
    if found.block_checks:
        notes.append(_block_checks_sentence(found.block_checks, layout))
    if found.kinks_left:
        notes.append(f"{found.kinks_left} group(s) on a kink (ReLU/max/abs switching along "
                     f"the direction) were not followed, their block having one located")
    return text + ("; " + "; ".join(notes) if notes else "")


def _span(layout, lo: int, hi: int) -> str:
    """``W1`` for a whole block, ``W1[0, 0]..W1[3, 7]`` for a part of one."""
    block = int(layout.block_of(lo))
    bounds = layout.bounds
    if (lo, hi) == (0, layout.size) and len(layout) > 1:
        return "the whole gradient"
    if (lo, hi) == (int(bounds[block]), int(bounds[block + 1])):
        return str(layout.names[block])
    return f"{layout.label(lo)}..{layout.label(hi - 1)}" if hi - lo > 1 else layout.label(lo)


def _fallback_sentence(fallbacks: list[Fallback]) -> str:
    checked = sum(f.checked for f in fallbacks)
    failed = sum(f.failed for f in fallbacks)
    text = (f"so they were checked one by one: {checked:,} component(s), "
            f"{failed:,} failing")
    before = sum(f.before for f in fallbacks)
    if before:
        text += f" ({before:,} more already checked)"
    skipped = sum(f.skipped for f in fallbacks)
    if skipped:
        text += f"; {skipped:,} skipped, their block already failing"
    left = sum(f.left for f in fallbacks)
    if left:
        text += (f"; {left:,} left unchecked (the budget, the cap per block, or a "
                 f"failure found before them): a full check of their blocks settles them")
    return text


def _block_checks_sentence(checks: list[Fallback], layout) -> str:
    parts = []
    for c in checks:
        done = c.checked + c.before
        parts.append(f"{_span(layout, c.lo, c.hi)} {done:,} of {done + c.left:,}"
                     + (f" ({c.failed:,} failing)" if c.failed else ""))
    text = ("nothing confirmed along any failed direction, so the flagged block(s) were "
            "checked one by one: " + ", ".join(parts))
    if any(c.left for c in checks):
        text += " (the rest: beyond the budget)"
    return text


def _unexplained_sentence(found: Localization, layout, checked: set) -> str:
    text = "a direction failed but no single component could be blamed"
    if found.lost or found.block_checks:
        lost = np.zeros(layout.size, dtype=bool)
        for g in found.lost + found.block_checks:
            lost[g.lo:g.hi] = True
        inside = int(np.count_nonzero(lost[np.fromiter(checked, np.int64, len(checked))]))
        text += (f", not even checking one by one {inside:,} of the "
                 f"{int(np.count_nonzero(lost)):,} components of the flagged blocks and of "
                 f"the failing groups no part explained (an error spread thinly under each "
                 f"component's tolerance, or cancelling)")
    if found.flagged:
        names = ", ".join(layout.names[b] for b in sorted(found.flagged))
        return text + f": check the flagged blocks ({names}) with fc.check"
    return text + ': check the whole gradient with fc.check (mode="full")'


def run_directional(problem: Problem, *, eps, rtol: float, seed, n_directions: int = 8,
                    start_time: float | None = None, confidence: float = 0.95,
                    tick=None, spent: int = 0) -> Report:
    """Check a gradient along random directions and localize failures by group testing.

    Parameters
    ----------
    problem : Problem
        The prepared check (``_inputs.prepare``); ``problem.theta`` is never modified.
    eps : float or "auto"
        The full check's step rule; along a group of n components each component moves by
        its full-check step / sqrt(n) (see the module docstring).
    rtol : float
        Relative tolerance of a direction (and of each component checked one by one).
    seed : int or None
        Seed of the random signs; a fresh one is drawn (and recorded) when None.
    n_directions : int, optional
        K, the number of random Rademacher directions (2K evaluations when all agree).
    start_time : float or None, optional
        ``time.perf_counter()`` when the check started (for ``report.seconds``).
    tick : callable or None, optional
        ``tick(n)`` after every n cost evaluations (a progress bar), or None.
    confidence : float, optional
        Recorded on the report (the located components are no uniform sample, so no
        failure-rate bound is computed).
    spent : int, optional
        Cost evaluations of an earlier pass of this check, counted in ``evaluations`` (a
        check run again once the cost's float32 noise was measured).

    Returns
    -------
    Report
        ``indices`` are the components checked one by one (empty when every direction
        agreed), with the full check's kinds; ``failed`` those that failed. A failure is
        only ever reported for a component confirmed one by one by the full check's own
        test, so the directional mode never fails a gradient the full check would pass.
        When a direction failed but no single component could be blamed, even checking
        the groups no part explained and then the flagged blocks one by one within the
        budget (an error spread thinly under each component's tolerance, or cancelling),
        ``passed`` stays True, the verdict is "warn" and so is the verdict of each block
        whose restricted direction failed or that carries most of a lost group's
        residual. ``sampled`` is True; ``evaluations`` counts every cost call (the two
        of ``prepare`` included); ``stop_reason`` tells the directions tested, what the
        localization did and where it stopped, the evaluations spent and the smallest
        error in one component the passing directions could detect;
        ``report.directional`` holds that limit (relative to ``||g||_2``, at probability
        ``DETECTION_PROBABILITY``), which a passing report's headline states.
    """
    start = time.perf_counter() if start_time is None else start_time
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)):
        raise TypeError(f"n_directions must be a positive int, got {n_directions!r}")
    if n_directions < 1:
        raise ValueError(f"n_directions must be a positive int, got {n_directions}")
    used_seed = _plan.resolve_seed(seed)
    rng = np.random.default_rng(used_seed)
    layout, n = problem.layout, problem.layout.size
    steps = problem.nominal_steps(problem.theta, eps)
    lines = _Lines(problem, steps, rtol, tick)
    components = _Components(problem, eps, rtol, tick)
    blas = single_threaded_blas() if is_jitted(problem.cost) else contextlib.nullcontext()
    with blas:
        signs = [rademacher(rng, n) for _ in range(int(n_directions))]
        tests = [lines.test(0, n, u) for u in signs]
        n_top_evaluations = lines.evaluations
        failing = sorted((k for k, t in enumerate(tests) if t.failed),
                         key=lambda k: -tests[k].excess)
        # With no failing direction, one on a kink is followed: a bug may hide by the kink.
        kinked = [k for k, t in enumerate(tests) if t.kind == _verdict.KINK][:1]
        found = Localization()
        localizer = Localizer(lines, components, rng, lines.evaluations
                               + MAX_LOCALIZE_EVALUATIONS, found)
        for k in failing or kinked:  # the worst first; the next only if nothing was found
            n_lost = len(found.lost)
            localizer.run(tests[k], signs[k])
            # a failed direction that no part explained: its groups, one by one
            localizer.fallback(found.lost[n_lost:], found.fallbacks)
            if localizer.fails_in_block.any() or localizer.spent() >= localizer.stop_at:
                break
        if failing and not localizer.fails_in_block.any():
            # still unexplained: the flagged blocks one by one, the smallest first
            spans = [(int(layout.bounds[b]), int(layout.bounds[b + 1])) for b in found.flagged]
            localizer.fallback([Lost(lo, hi, ((lo, hi),), None) for lo, hi in spans],
                               found.block_checks)
        n_group_tests = lines.tests - len(tests)

    indices = np.array(sorted(components.results), dtype=np.int64)
    rows = [components.results[int(i)] for i in indices]
    kinds = np.array([r[1] for r in rows], dtype="<U9")
    n_failed = int(np.count_nonzero(np.isin(kinds, (_verdict.FAIL, _verdict.NONFINITE))))
    unexplained = bool(failing) and n_failed == 0
    # a float32 cost whose noise hides even a factor-2 error along every direction it
    # could read: the check saw nothing, and the report must not read as a clean pass
    smooth_tests = [t for t in tests if t.kind != _verdict.KINK]
    blind = bool(smooth_tests) and all(t.unresolved for t in smooth_tests)
    detection = detection_limits(tests, problem, steps, DETECTION_PROBABILITY)

    # the two calls at theta (prepare), then the directions and the localization
    evaluations = 2 + spent + problem.probe_evaluations + localizer.spent()
    reason = [
        f"directional mode: {len(tests)} random Rademacher directions (seed {used_seed}), "
        f"each component moved by its full-check step / sqrt(N): "
        f"{_directions_sentence(tests)}; relative error over the directions "
        f"{detection.relative_error:.1e}; {n_top_evaluations} evaluations"
    ]
    if failing or kinked:
        reason.append(_localization_sentence(found, layout, n_group_tests, indices.size))
    if unexplained:
        reason.append(_unexplained_sentence(found, layout, set(components.results)))
    reason.append(f"{evaluations:,} cost evaluations in all (a full check needs "
                  f"{2 * n + 2:,})")
    reason.append(_detection_sentence(detection))
    notes = tuple(problem.notes)
    if blind:
        notes += (f"every one of the {len(smooth_tests)} random directions passed unresolved: "
                  "the error floor set by the cost's measured float32 noise is above a "
                  "quarter of g.d along each, so even a factor-2 error in the whole gradient "
                  "would not show. Compute the cost in float64 (or leave out a large constant "
                  'term), or use mode="full", which resolves components one by one.',)
    compile_seconds = float(problem.cost_compile_seconds)
    run = Run(seed=used_seed, eps=eps, rtol=rtol, backend="serial", threads=1,
              seconds=max(0.0, time.perf_counter() - start - compile_seconds),
              compile_seconds=compile_seconds, evaluations=evaluations, sampled=True,
              confidence=confidence, stop_reason="; ".join(reason) + ".", mode="directional",
              notes=notes, noise_floor=problem.noise > 0)
    return Report.from_components(
        layout, indices, problem.analytic[indices],
        np.array([r[0] for r in rows], dtype=np.float64), kinds,
        np.array([r[2] for r in rows], dtype=np.float64), problem.theta[indices], run,
        warn_blocks=tuple(sorted(found.flagged)), unexplained=unexplained or blind,
        directional=detection, unresolved=np.array([r[3] for r in rows], dtype=bool))
