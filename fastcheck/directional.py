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
``MAX_LOCALIZE_EVALUATIONS``) and the report's ``stop_reason`` says where it stopped.
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
from ._inputs import Problem
from ._lazy import is_jitted
from ._values import scalar_cost
from .backends.serial import SerialBackend, ensure_unmodified
from .errors import CostEvaluationError
from .report import Directional, Report, Run

__all__ = ["run_directional", "LEAF_SIZE", "MAX_FAILURES_PER_BLOCK", "MAX_LOCALIZE_EVALUATIONS"]

#: Groups of at most this many components are checked component by component.
LEAF_SIZE = 8
#: Localization in a block stops once this many of its components are confirmed failing
#: (checked before each leaf, so a block may end with up to LEAF_SIZE - 1 more): the error
#: is then spread over the block, and a full check of the block lists them all.
MAX_FAILURES_PER_BLOCK = 8
#: Cost evaluations the localization may spend (after the K directions).
MAX_LOCALIZE_EVALUATIONS = 2000
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
        tol = float(self.rtol * (abs(a[0]) + abs(n0[0])) + floor[0])
        if not _verdict.suspects(a, n0, floor, self.rtol)[0]:
            blind = bool(_driver.unresolved(p, a, n0, floor)[0])
            return _Test(_verdict.OK, float(a[0]), float(n0[0]), tol, blind)

        def evaluate(_positions, xp, xm):
            jp_, jm_ = self.values(lo, hi, d, np.array([xp[0], xm[0]]))
            return np.array([jp_]), np.array([jm_])

        out = _verdict.reexamine(a, zero, one, first, p.j0, self.rtol, evaluate, p.noise)
        kind = str(out.kinds[0])
        # excused under the noise (a float32 cost): not resolved either
        return _Test(kind, float(a[0]), float(out.numeric[0]), tol,
                     p.noise > 0 and kind == _verdict.OK)


@dataclasses.dataclass
class _Localization:
    """What group testing found along one direction."""

    flagged: set = dataclasses.field(default_factory=set)  # blocks whose group test failed
    capped: set = dataclasses.field(default_factory=set)  # blocks where the cap stopped it
    lost: list = dataclasses.field(default_factory=list)  # failing groups, no failing half
    kinks_left: int = 0  # kink groups not followed (a kink already located in the block)
    out_of_budget: bool = False


class _Localizer:
    """Adaptive group testing along one direction: blocks, then halves, depth first.

    Failing groups are followed first. A group whose test ends on a kink may hide a bug
    next to the kink, so it is followed too, once every failing group is done, until one
    kink is located in its block (then the rest of that block's kink groups are skipped).
    """

    def __init__(self, lines: _Lines, components, u: np.ndarray, stop_at: int):
        self.lines = lines
        self.components = components  # checks flat indices one by one -> kinds
        self.u = u
        self.stop_at = stop_at  # no new group test once lines.evaluations reaches this
        self.layout = lines.problem.layout
        self.found = _Localization()
        self.fails_in_block = np.zeros(len(self.layout), dtype=np.int64)
        self.kinks_in_block = np.zeros(len(self.layout), dtype=np.int64)
        self.failing: list = []  # stacks of (lo, hi): depth first
        self.kinked: list = []

    def _push(self, groups) -> bool:
        """Test ``groups`` and stack the failing and kinked ones; True if any was."""
        tested = [(g, self.lines.test(*g, self.u[g[0]:g[1]]).kind) for g in groups]
        for g, kind in reversed(tested):  # the first group on top of its stack
            if kind in (_verdict.FAIL, _verdict.NONFINITE):
                self.failing.append(g)
            elif kind == _verdict.KINK:
                self.kinked.append(g)
        return any(kind != _verdict.OK for _, kind in tested)

    def run(self, whole: _Test) -> _Localization:
        bounds = self.layout.bounds
        blocks = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
        if len(blocks) == 1:  # the whole-vector test already was this block's test
            (self.failing if whole.failed else self.kinked).append(blocks[0])
        elif not self._push(blocks):
            self.found.lost.append((0, self.layout.size))
        self.found.flagged.update(int(self.layout.block_of(lo)) for lo, _ in self.failing)
        while self.failing or self.kinked:
            failing = bool(self.failing)
            lo, hi = (self.failing if failing else self.kinked).pop()
            block = int(self.layout.block_of(lo))
            if failing and self.fails_in_block[block] >= MAX_FAILURES_PER_BLOCK:
                self.found.capped.add(block)
                continue
            if not failing and self.kinks_in_block[block] > 0:
                self.found.kinks_left += 1
                continue
            if self.lines.evaluations >= self.stop_at:
                self.found.out_of_budget = self.found.out_of_budget or failing
                continue
            if hi - lo <= LEAF_SIZE:
                self._leaf(lo, hi, block)
                continue
            mid = (lo + hi) // 2
            if not self._push([(lo, mid), (mid, hi)]) and failing:
                self.found.lost.append((lo, hi))
        return self.found

    def _leaf(self, lo: int, hi: int, block: int) -> None:
        kinds = self.components(np.arange(lo, hi, dtype=np.int64))
        self.fails_in_block[block] += int(np.count_nonzero(
            np.isin(kinds, (_verdict.FAIL, _verdict.NONFINITE))))
        self.kinks_in_block[block] += int(np.count_nonzero(kinds == _verdict.KINK))


def _rademacher(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.integers(0, 2, size=n, dtype=np.int8).astype(np.float64)
    u *= 2.0
    u -= 1.0
    return u


class _Components:
    """The full check's per-component test (central differences, re-examination)."""

    def __init__(self, problem: Problem, eps, rtol: float, tick=None):
        self.problem, self.eps, self.rtol = problem, eps, rtol
        self.tick = tick or (lambda n: None)
        self.backend = SerialBackend(problem)
        self.results: dict[int, tuple] = {}  # flat index -> (numeric, kind, half-step)

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
        return ("detection power: unknown (no direction gave a finite difference off a "
                "kink)")
    return (f"detection power: an error in one component above {d.detection_limit:.1e}"
            f"·|g| is seen with probability >= {d.probability:g} over the random signs, "
            f"above {d.guaranteed_limit:.1e}·|g| whatever the signs (|g| = ||g||_2 = "
            f"{d.gradient_norm:.3e}; limits for the component moved least, its step "
            f"/ sqrt(N) against each direction's tolerance and residual); smaller errors, "
            f"and errors that cancel along every direction, can go unseen")


def _localization_sentence(found: _Localization, layout, n_tests: int,
                           n_checked: int) -> str:
    text = (f"localized by group testing ({n_tests} group tests: blocks, then halves; groups "
            f"of <= {LEAF_SIZE} checked one by one: {n_checked} components)")
    notes = []
    if found.capped:
        names = ", ".join(layout.names[b] for b in sorted(found.capped))
        notes.append(f"in {names} it stopped after {MAX_FAILURES_PER_BLOCK} or more failing "
                     f"components (the cap per block): the error is spread over "
                     f"{'the block' if len(found.capped) == 1 else 'each of these blocks'}; "
                     f"a full check (or one with sample=) lists them all")
    if found.out_of_budget:
        notes.append(f"it stopped at the budget of {MAX_LOCALIZE_EVALUATIONS:,} evaluations")
    if found.lost:
        where = ", ".join(f"{layout.label(lo)}..{layout.label(hi - 1)}"
                          for lo, hi in found.lost[:3])
        notes.append(f"{len(found.lost)} failing group(s) had no failing half ({where}): "
                     f"errors too small to see in halves, or cancelling")
    if found.kinks_left:
        notes.append(f"{found.kinks_left} group(s) on a kink (ReLU/max/abs switching along "
                     f"the direction) were not followed, their block having one located")
    return text + ("; " + "; ".join(notes) if notes else "")


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
        When a direction failed but no single component could be blamed (an error spread
        thinly, or cancelling), ``passed`` stays True, the verdict is "warn" and so is
        the verdict of each block whose restricted direction failed. ``sampled`` is True;
        ``evaluations`` counts every cost call (the two of ``prepare`` included);
        ``stop_reason`` tells the directions tested, what the localization did and where
        it stopped, the evaluations spent and the smallest error in one component the
        directions could detect; ``report.directional`` holds that limit (relative to
        ``||g||_2``, at probability ``DETECTION_PROBABILITY``), which a passing report's
        headline states.
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
        signs = [_rademacher(rng, n) for _ in range(int(n_directions))]
        tests = [lines.test(0, n, u) for u in signs]
        n_top_evaluations = lines.evaluations
        failing = sorted((k for k, t in enumerate(tests) if t.failed),
                         key=lambda k: -tests[k].excess)
        # With no failing direction, one on a kink is followed: a bug may hide by the kink.
        kinked = [k for k, t in enumerate(tests) if t.kind == _verdict.KINK][:1]
        stop_at = lines.evaluations + MAX_LOCALIZE_EVALUATIONS
        found, n_group_tests, flagged = _Localization(), 0, set()
        for k in failing or kinked:  # the worst first; the next only if nothing was found
            tests_before = lines.tests
            found = _Localizer(lines, components, signs[k], stop_at).run(tests[k])
            n_group_tests += lines.tests - tests_before
            flagged |= found.flagged
            if components.results or lines.evaluations >= stop_at:
                break

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
    evaluations = (2 + spent + problem.probe_evaluations + lines.evaluations
                   + components.backend.evaluations)
    reason = [
        f"directional mode: {len(tests)} random Rademacher directions (seed {used_seed}), "
        f"each component moved by its full-check step / sqrt(N): "
        f"{_directions_sentence(tests)}; relative error over the directions "
        f"{detection.relative_error:.1e}; {n_top_evaluations} evaluations"
    ]
    if failing or kinked:
        reason.append(_localization_sentence(found, layout, n_group_tests, indices.size))
    if unexplained:
        reason.append("a direction failed but no single component could be blamed: check "
                      "the flagged blocks with fc.check")
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
        warn_blocks=tuple(sorted(flagged)), unexplained=unexplained or blind,
        directional=detection, unresolved=np.array([r[3] for r in rows], dtype=bool))
