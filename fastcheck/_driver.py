"""The chunked driver: evaluate, judge and re-examine the chosen components chunk by chunk.

Memory beyond the result arrays is O(chunk). After every chunk the stop rule may end the
check early (``max_failures``, adaptive sampling); an interrupt or a failing cost ends it
too, and what was finished so far is kept so that a partial report can be built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import _verdict
from ._methods import METHODS
from ._plan import DEFAULT_CHUNK

#: The first chunk is small so that an early failure is reported quickly; chunks then
#: double up to DEFAULT_CHUNK.
FIRST_CHUNK = 256
#: At most this many kink suspects per chunk are confirmed off the kink (each costs two
#: gradient and four cost evaluations); the rest stay failures.
MAX_CONFIRMATIONS = 32
#: A component of a noisy (float32) cost is *unresolved* when its error floor is above this
#: fraction of its gradient: a factor-2 error (half the gradient) could then pass there.
UNRESOLVED_FRACTION = 0.25

StopRule = Callable[[int, int], "str | None"]


@dataclass
class Targets:
    """The components to check, in index order, with their points and steps."""

    indices: np.ndarray
    theta_at: np.ndarray
    h: np.ndarray
    x_plus: np.ndarray
    x_minus: np.ndarray
    analytic: np.ndarray


@dataclass
class Progress:
    """State of a check in progress; ``order[:done]`` are the finished positions."""

    order: np.ndarray
    numeric: np.ndarray
    kinds: np.ndarray
    done: int = 0
    n_failed: int = 0
    stop_reason: str = "complete"
    error: BaseException | None = field(default=None, repr=False)
    #: Flat indices of failures that sit on a kink with an analytic value outside the
    #: one-sided slopes, unconfirmed (an array grad, or beyond MAX_CONFIRMATIONS): a
    #: report may suggest passing grad as a function.
    off_hull: list[int] = field(default_factory=list)
    #: Per target: its noise floor (a float32 cost) is above a quarter of its
    #: gradient (see ``unresolved``); all False for a float64 cost.
    unresolved: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def finished_positions(self) -> np.ndarray:
        """Positions (into the targets) checked so far, ascending."""
        return np.sort(self.order[: self.done])


def chunk_schedule(n: int, first: int = FIRST_CHUNK, largest: int = DEFAULT_CHUNK):
    """Slices of ``range(n)`` that start small and double up to ``largest``."""
    lo, size = 0, max(1, first)
    while lo < n:
        hi = min(n, lo + size)
        yield slice(lo, hi)
        lo, size = hi, min(largest, size * 2)


def unresolved(problem, analytic: np.ndarray, numeric: np.ndarray, floor: np.ndarray
               ) -> np.ndarray:
    """Components whose error floor is so high (the measured noise of a float32 cost, e.g.
    one with a large constant term) that a factor-2 error (half the gradient) could pass."""
    if not problem.noise > 0:
        return np.zeros(analytic.shape[0], dtype=bool)
    with np.errstate(invalid="ignore"):
        return floor > UNRESOLVED_FRACTION * np.maximum(np.abs(analytic), np.abs(numeric))


def _judge_chunk(runner, problem, t: Targets, pos: np.ndarray, rtol: float, method: str):
    """Evaluate the components at positions ``pos``; return numeric values, kinds, the
    flat indices of failures on a kink outside the hull of its slopes, and which passed
    unresolved (see ``unresolved``)."""
    est = METHODS[method](runner, problem, t, pos)
    numeric = est.numeric
    analytic = t.analytic[pos]
    kinds = np.full(pos.shape[0], _verdict.OK, dtype="<U9")
    suspect_mask = _verdict.suspects(analytic, numeric, est.floor, rtol)
    blind = unresolved(problem, analytic, numeric, est.floor) & ~suspect_mask
    suspect = np.flatnonzero(suspect_mask)
    if suspect.size == 0:
        return numeric, kinds, [], blind
    sp = pos[suspect]
    if est.central is not None:
        c = est.central
        sub = _verdict.Differences(c.j_plus[suspect], c.j_minus[suspect], c.x_plus[suspect],
                                   c.x_minus[suspect])
    else:  # the method made no central evaluations: make them for the suspects
        jp, jm = runner.evaluate(t.indices[sp], t.x_plus[sp], t.x_minus[sp])
        sub = _verdict.Differences(jp, jm, t.x_plus[sp], t.x_minus[sp])
    # backends that can race re-check every suspect (a no-op for the others)
    runner.verify(t.indices[sp], sub.x_plus, sub.x_minus, sub.j_plus, sub.j_minus)

    def evaluate(positions, xp, xm):
        return runner.evaluate(t.indices[sp[positions]], xp, xm)

    outcome = _verdict.reexamine(analytic[suspect], t.theta_at[sp], t.h[sp], sub, problem.j0,
                                 rtol, evaluate, problem.noise)
    if np.any(outcome.off_hull):
        confirm_off_kink(runner, problem, t.indices[sp], t.theta_at[sp], outcome, rtol)
    off_hull = t.indices[sp[outcome.off_hull & (outcome.kinds == _verdict.FAIL)]].tolist()
    if method == "complex":
        # The complex step has no roundoff or truncation to re-examine: only a kink (which
        # central differences detect) excuses a suspect; its exact value is kept otherwise.
        exact = np.isfinite(numeric[suspect]) & (outcome.kinds != _verdict.KINK)
        kinds[suspect] = np.where(exact, _verdict.FAIL, outcome.kinds)
        numeric[suspect] = np.where(exact, numeric[suspect], outcome.numeric)
        return numeric, kinds, off_hull, blind
    kinds[suspect] = outcome.kinds
    numeric[suspect] = outcome.numeric
    if problem.noise > 0:  # a suspect excused under float32 noise was not resolved either
        blind[suspect] = outcome.kinds == _verdict.OK
    return numeric, kinds, off_hull, blind


def off_hull_note(problem, off_hull: list[int]) -> list[str]:
    """Say how to settle failures on a kink that an array ``grad`` could not confirm."""
    if not off_hull or problem.has_grad_function:
        return []
    label = problem.layout.label(int(off_hull[0]))
    return [f"{len(off_hull):,} failing component(s) (e.g. {label}) sit on a ReLU/max kink "
            "with an analytic value outside the one-sided slopes there. A wrong value fails "
            "on a kink like anywhere, but when one parameter moves several kinks at once "
            "backprop's subgradient can also lie outside them: pass grad as a function "
            "rather than arrays, and fastcheck confirms the gradient just off the kink"]


def confirm_off_kink(runner, problem, indices: np.ndarray, theta_at: np.ndarray,
                     outcome: _verdict.Reexamination, rtol: float) -> None:
    """Turn ``off_hull`` failures into kinks when the gradient is right on both sides.

    For each such component (the caller passes at least one; at most ``MAX_CONFIRMATIONS``
    per call) the gradient function is evaluated at ``theta +- d e_i``, ``d`` the step at
    which the kink was seen, and its i-th entry compared with the central difference of
    step ``d/4`` there (which does not reach back to the kink). ``outcome.kinds`` is
    updated in place. Without a gradient function
    (an array ``grad``) nothing is confirmed. ``report.evaluations`` counts cost calls
    (API.md), so a call of a separate ``grad`` is not one; with ``grad=True`` it is.
    """
    if not problem.has_grad_function:
        return
    todo = np.flatnonzero(outcome.off_hull)[:MAX_CONFIRMATIONS]
    idx, th, d = indices[todo], theta_at[todo], outcome.steps[todo]
    centres = np.concatenate([th + d, th - d])
    quarter = np.concatenate([d, d]) / 4
    both = np.concatenate([idx, idx])
    xp, xm = centres + quarter, centres - quarter
    jp, jm = runner.evaluate(both, xp, xm)
    diffs = _verdict.Differences(jp, jm, xp, xm)
    numeric = diffs.numeric()
    analytic = np.empty_like(numeric)
    for k, (i, c) in enumerate(zip(both.tolist(), centres.tolist())):
        analytic[k] = problem.analytic_at(i, c)
    if problem.cost_returns_grad:  # grad=True: the gradient calls are cost calls too
        runner.evaluations += both.size
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, which agrees with nothing
        floor = 2 * diffs.roundoff(problem.j0, problem.noise)
        agree = np.abs(analytic - numeric) <= rtol * (np.abs(analytic) + np.abs(numeric)) + floor
    confirmed = agree[: todo.size] & agree[todo.size:]
    outcome.kinds[todo[confirmed]] = _verdict.KINK


def run(runner, problem, targets: Targets, rtol: float, order: np.ndarray,
        stop: StopRule | None = None, on_chunk: Callable[[int, int], None] | None = None,
        method: str = "central", small_first: bool = True) -> Progress:
    """Check the targets in the given processing ``order``, chunk by chunk.

    ``small_first``: start with a chunk of FIRST_CHUNK components and double (so that a
    stop rule or a progress bar hears early); without either, every chunk is as large as
    allowed, which saves a kernel launch or a round of worker tasks on small checks.

    Returns the progress (complete, stopped by ``stop``, or ended by an exception that is
    stored in ``progress.error`` for the caller to re-raise with a partial report).
    """
    n = order.shape[0]
    state = Progress(order, np.full(targets.indices.shape[0], np.nan),
                     np.full(targets.indices.shape[0], "", dtype="<U9"),
                     unresolved=np.zeros(targets.indices.shape[0], dtype=bool))
    try:
        for s in chunk_schedule(n, FIRST_CHUNK if small_first else DEFAULT_CHUNK):
            pos = order[s]
            numeric, kinds, off_hull, blind = _judge_chunk(runner, problem, targets, pos,
                                                           rtol, method)
            state.off_hull.extend(off_hull)
            state.unresolved[pos] = blind
            state.numeric[pos] = numeric
            state.kinds[pos] = kinds
            state.done = s.stop
            state.n_failed += int(np.count_nonzero(
                (kinds == _verdict.FAIL) | (kinds == _verdict.NONFINITE)))
            if on_chunk is not None:
                on_chunk(s.stop - s.start, state.n_failed)
            reason = stop(state.done, state.n_failed) if stop is not None else None
            if reason:
                state.stop_reason = reason
                break
    except (KeyboardInterrupt, Exception) as exc:  # re-raised by the caller
        state.error = exc
        state.stop_reason = f"interrupted by {type(exc).__name__}"
    return state
