"""``fc.taylor_test``: the step-free gradient check.

Along a direction d the Taylor remainder

    r(h) = |J(theta + h d) - J(theta) - h g.d|

falls like h^2 when g is the gradient and like h when it is not (then r ~ h |g.d - J'.d|).
The rate is the slope of log r against log h, fitted with ``scipy.stats.linregress`` over
the *asymptotic* range: the smallest steps whose remainder is still above the roundoff
floor. No step has to be tuned, but two ranges must be left out of the fit:

- the **roundoff floor**: below ``ROUNDOFF_FACTOR * eps * |J|`` the remainder is noise
  (and only remainders above ``FIT_MARGIN`` times that are fitted);
- the **pre-asymptotic** range of large h, where higher-order terms bend the curve, and
  where, for a wrong gradient with a small error, the h^2 term still hides the h term.

So the steps start at ``h0 = 0.1 * max(1, ||theta||_inf) / ||d||_inf`` and are halved
until the remainder sits on the floor (or ``MAX_STEPS`` is reached, or the rate is
clearly 1), and the fit starts from the smallest usable step and grows towards larger
steps while the local slopes agree with it. The linear term uses the step that is
actually stored, ``g . ((theta + h d) - theta)``, so tiny steps cannot fake a rate 1.

What one direction cannot see. The test sees only ``g . d``: an error e in it shows as
rate 1 only where ``h |e|`` rises above both the h^2 term and the roundoff floor, which
sets a detection limit (``TaylorResult.detection_limit``, about r/h at the smallest
fitted step). A noisy cost (one computing in float32) raises the floor and with it the
limit, to about 1e-2 of ``|g . d|``; and along a random direction the contribution
``g_B . d_B`` of one block B of the gradient can, by chance, be far smaller than the
block's gradient, so that even a factor-2 error in B stays below the limit (seen along 1 of
180 directions on float32 MLPs). So the test counts a block as *resolved* along d only when
``|g_B . d_B| >= RESOLVE_FACTOR * limit``. Further random directions are drawn (up to
``MAX_DIRECTIONS``; every one must pass) while a block is unresolved whose gradient is
large enough for a random direction to resolve it, or while an error of ``MISS_ERROR`` of
the gradient would have passed every direction so far with a probability above
``MISS_TARGET`` (``TaylorResult.miss_probability``; a float32 cost usually needs two
directions). Blocks still unresolved, or a miss probability still too high, make the
result inconclusive: said in the note, in a warning and in the summary, which then does
not read as a clean pass and points to ``fc.check`` (it compares component by component).
For a noisy cost one ambiguous failure (a rate neither about 1 nor about 2, or a fit of at
most ``MIN_POINTS`` steps) must be confirmed by a second direction (see ``_verdict``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._blas import single_threaded_blas
from ._inputs import Problem, normalise_grad, prepare, scalar_cost
from ._lazy import is_jitted
from ._plan import resolve_seed
from ._steps import EPS_MACHINE
from ._verdict import NOISE_FACTOR, ROUNDOFF_FACTOR
from .backends.serial import ensure_unmodified
from .errors import CostEvaluationError
from .layout import Layout

__all__ = ["taylor_test", "TaylorResult", "PASS_RATE"]

#: The test passes when the fitted rate is at least this (2 expected, 1 for a wrong g).
PASS_RATE = 1.8
#: The default steps are halved at most this many times.
MAX_STEPS = 48
#: ... and stop after this many consecutive remainders on the roundoff floor.
FLOOR_RUN = 3
#: ... or once this many consecutive local slopes are within 0.1 of 1 (a wrong gradient).
LINEAR_RUN = 5
#: A larger step joins the fit while its local slope is within this of the fitted rate.
SLOPE_TOLERANCE = 0.25
#: Points needed for a fit.
MIN_POINTS = 3
#: A remainder joins the fit only above this multiple of the floor (roundoff then changes
#: it by about 1 %, the local slopes by a few hundredths).
FIT_MARGIN = 8.0
#: Along a direction of a noisy cost a rate from this up to ``PASS_RATE`` (or a failing fit
#: of at most ``MIN_POINTS`` steps) is ambiguous: a failure only when another random
#: direction fails too (see ``_verdict``).
AMBIGUOUS_RATE = 1.3
#: A block is resolved along d when its contribution |g_B . d_B| to g.d is at least this
#: multiple of the detection limit: then a factor-2 error in its gradient (an error of half
#: that contribution, or of all of it) would show as rate 1.
RESOLVE_FACTOR = 2.0
#: At most this many random directions are tried (see the module docstring).
MAX_DIRECTIONS = 5
#: Further random directions are also drawn while an error of the gradient whose scaled
#: norm ``||e * max(1, |theta|)||_2`` is ``MISS_ERROR`` times the gradient's would have
#: passed every direction tried with a probability above ``MISS_TARGET``.
MISS_ERROR = 0.1
MISS_TARGET = 0.01
#: A block whose scaled gradient norm is below this fraction of the whole gradient's is
#: zero to roundoff: there is no size of its own to resolve.
NEGLIGIBLE = 1e3 * EPS_MACHINE
#: The label of the whole gradient among the unresolved blocks (when there are several).
WHOLE = "all blocks"


@dataclass(frozen=True, eq=False)
class TaylorResult:
    """The outcome of :func:`taylor_test`.

    Attributes
    ----------
    rate : float
        Fitted slope of log r against log h (about 2 when the gradient is right, 1 when
        it is wrong); NaN when fewer than two steps are above the roundoff floor.
    passed : bool
        Along every direction tried, ``rate >= PASS_RATE`` or every remainder at the
        roundoff floor (see ``note``); for a noisy cost, one ambiguous failure that a
        second random direction does not confirm is outvoted (see ``_verdict``). A pass
        can be inconclusive: see ``conclusive``.
    residuals : numpy.ndarray
        The remainders r(h), one per step.
    steps : numpy.ndarray
        The steps h, descending.
    used : numpy.ndarray
        Boolean mask of the steps in the fit.
    direction : numpy.ndarray
        The flat direction d (in the order of ``params``' layout).
    floor : numpy.ndarray
        The roundoff floor of each remainder, ``ROUNDOFF_FACTOR * eps * max(|J0|, |J(h)|)``.
    stderr : float
        Standard error of the fitted rate (NaN without a fit of >= 3 points).
    slope : float
        ``g . d``, the analytic directional derivative.
    j0 : float
        The cost at theta.
    note : str
        What the fit could not say, in words ("" when nothing).
    evaluations : int
        Cost evaluations spent (the two of input validation included).
    seed : int or None
        Seed of the random direction (None when ``direction`` was given); the further
        directions, when any, come from the same generator.
    rates : numpy.ndarray
        The fitted rate along every direction tried, in order (one entry unless further
        random directions were drawn, see ``unresolved`` and ``miss_probability``). The
        result's other fields describe the first direction that failed, else the first.
    unresolved : tuple of str
        Blocks of the gradient (``"all blocks"`` for the whole of it) that no direction
        tried resolved: along each, the block's contribution ``|g_B . d_B|`` to ``g.d`` was
        below ``RESOLVE_FACTOR * detection_limit``, so an error as large as the block's own
        gradient (a factor 2, a wrong sign) could have gone unseen. Empty when nothing
        was; blocks whose gradient is zero are never listed. A passing result with
        unresolved blocks is inconclusive for them: use ``fc.check``.
    miss_probability : float
        For random directions: the probability that an error e of the gradient as large
        as ``MISS_ERROR`` (10 %) of it, in the scaled norm ``||e * max(1, |theta|)||_2``,
        would have passed every direction tried, ``prod_k erf(limit_k / (sqrt(2) |e|))``
        (along a random direction ``e . d`` is normal with standard deviation ``|e|``).
        Further directions are drawn while it is above ``MISS_TARGET`` (1 %); it stays
        above only when the cost's noise swamps the gradient. NaN for a given direction
        or a zero gradient.
    """

    rate: float
    passed: bool
    residuals: np.ndarray
    steps: np.ndarray
    used: np.ndarray
    direction: np.ndarray
    floor: np.ndarray
    stderr: float
    slope: float
    j0: float
    note: str
    evaluations: int
    seed: int | None
    rates: np.ndarray = field(default_factory=lambda: np.empty(0))
    unresolved: tuple[str, ...] = ()
    miss_probability: float = math.nan

    # -- derived -----------------------------------------------------------------------
    @property
    def detection_limit(self) -> float:
        """The smallest error in ``g . d`` that would have shown as rate 1.

        At the smallest fitted step h the remainder r is what the h^2 term leaves; an
        error e adds ``h |e|``, so errors well below ``r / h`` stay hidden. NaN without a
        fit; the floor divided by the smallest step when every remainder is at the floor.
        Along a random direction an error vector e of the gradient contributes
        ``e . d``, normal with standard deviation ``||e * max(1, |theta|)||_2``: an error
        of that size below the limit goes unseen with probability about
        ``0.8 * limit / ||e * max(1, |theta|)||_2``. See also ``unresolved``.
        """
        return _detection_limit(self.used, self.residuals, self.steps, self.floor)

    @property
    def conclusive(self) -> bool:
        """False when some block of the gradient was not resolved (see ``unresolved``) or
        a 10 % error could have passed with a probability above 1 % (``miss_probability``).
        """
        return not self.unresolved and not self.miss_probability > MISS_TARGET

    def summary(self) -> str:
        """The verdict, the fit and what it could not see, in a few lines."""
        from .views.text import taylor_summary

        lines = taylor_summary(self).split("\n")
        if self.passed and not self.conclusive:
            lines[0] = lines[0].replace("Taylor test PASS", "Taylor test PASS, INCONCLUSIVE", 1)
            lines.insert(1, f"warning: {_blind_spot(self)}")
        if self.rates.size > 1:
            rates = ", ".join(f"{r:.2f}" for r in self.rates)
            lines.insert(-1, f"{self.rates.size} random directions tried (rates {rates}): "
                             "more are drawn while the earlier ones could miss a bug")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        verdict = "fail" if not self.passed else "pass" if self.conclusive else "inconclusive pass"
        return (f"<TaylorResult {verdict}: rate={self.rate:.3f}, "
                f"{int(np.count_nonzero(self.used))}/{self.steps.size} steps fitted>")

    def to_dict(self) -> dict:
        """Everything as JSON-serialisable values (NaN and inf as None)."""
        from .views.json import jsonable, taylor_dict

        return {**taylor_dict(self),
                **jsonable({"rates": self.rates, "unresolved": list(self.unresolved),
                            "miss_probability": self.miss_probability,
                            "conclusive": self.conclusive})}

    def plot(self, title: str | None = None) -> Any:
        """The remainders against h on log-log axes, with the fit and slopes 1 and 2.

        Needs matplotlib (the ``plot`` extra). Returns a ``matplotlib.figure.Figure``
        (no pyplot, no display) that Jupyter shows as an image; ``fig.savefig(path)``
        works anywhere. See ``fastcheck.views.plot.plot_taylor``.

        Parameters
        ----------
        title : str or None, optional
            Title of the axes (default: the verdict and the rate).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .views.plot import plot_taylor

        return plot_taylor(self, title)


# -- the plan ---------------------------------------------------------------------------
def _direction(direction: Any, problem: Problem, seed: Any
               ) -> tuple[np.ndarray, int | None, np.random.Generator | None]:
    """The flat direction d, the seed that drew it and the generator of further random
    directions (both None when ``direction`` was given)."""
    if direction is None:
        used_seed = resolve_seed(seed)
        rng = np.random.default_rng(used_seed)
        return _random_direction(rng, problem.theta), used_seed, rng
    d = normalise_grad(direction, problem.layout, problem.params_kind, "direction")
    if not np.all(np.isfinite(d)):
        raise ValueError("direction must be finite, but some entries are NaN or inf")
    if not np.any(d):
        raise ValueError("direction must not be zero")
    return d, None, None


def _random_direction(rng: np.random.Generator, theta: np.ndarray) -> np.ndarray:
    """Normal entries scaled like the finite-difference steps, ``z_i * max(1, |theta_i|)``."""
    return rng.standard_normal(theta.shape[0]) * np.maximum(1.0, np.abs(theta))


def _explicit_steps(steps: Any) -> np.ndarray:
    try:
        h = np.asarray(steps, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"steps must be a sequence of positive floats, got {steps!r}") from None
    if h.size < MIN_POINTS or not np.all(np.isfinite(h)) or np.any(h <= 0):
        raise ValueError(f"steps must hold at least {MIN_POINTS} positive finite values, "
                         f"got {h.size} value(s): {h[:5]}")
    h = np.unique(h)[::-1]
    if h.size < MIN_POINTS:
        raise ValueError(f"steps must hold at least {MIN_POINTS} distinct values")
    return h


# -- evaluation ---------------------------------------------------------------------------
class _Remainders:
    """Evaluates r(h) on a private copy of theta."""

    def __init__(self, problem: Problem, d: np.ndarray):
        self.problem, self.d = problem, d
        self.x = problem.theta.copy()
        self.call = problem.make_call(self.x)
        self.h: list[float] = []
        self.r: list[float] = []
        self.floor: list[float] = []

    def add(self, h: float) -> None:
        p = self.problem
        target = p.theta + h * self.d
        self.x[:] = target
        try:
            j = scalar_cost(self.call(), f"at theta + h*d (h = {h:.3e})")
        except (KeyboardInterrupt, CostEvaluationError, TypeError):
            raise
        except Exception as exc:  # the user's cost failed: say where
            raise CostEvaluationError(
                f"cost raised {type(exc).__name__}: {exc} -- at theta + h*d with h = {h:.3e} "
                f"(Taylor test); pass smaller steps= if the cost has a limited domain"
            ) from exc
        ensure_unmodified(self.x, target)
        with np.errstate(invalid="ignore", over="ignore"):
            linear = float(p.analytic @ (target - p.theta))  # the step actually stored
            r = abs(j - p.j0 - linear)
        self.h.append(h)
        self.r.append(r if math.isfinite(r) else math.nan)
        scale = max(abs(p.j0), abs(j)) if math.isfinite(j) else abs(p.j0)
        roundoff = max(ROUNDOFF_FACTOR * EPS_MACHINE * scale, NOISE_FACTOR * p.noise)  # float32
        self.floor.append(roundoff + EPS_MACHINE * abs(linear))

    def at_floor_run(self) -> int:
        k = 0
        for r, f in zip(reversed(self.r), reversed(self.floor)):
            if not (math.isfinite(r) and r <= f):
                break
            k += 1
        return k

    def linear_run(self) -> int:
        r = np.asarray(self.r)
        slopes = _local_slopes(np.asarray(self.h), r)
        k = 0
        for s in slopes[::-1]:
            if not (math.isfinite(s) and abs(s - 1.0) <= 0.1):
                break
            k += 1
        return k


def _local_slopes(h: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Slope of log r between consecutive steps (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(r[:-1] / r[1:]) / np.log(h[:-1] / h[1:])


#: Steps this many octaves below the first are "tiny": a remainder there is noise plus at
#: most 2**-NOISE_OCTAVES of the signal the larger steps show.
NOISE_OCTAVES = 30


def _observed_noise(h: np.ndarray, r: np.ndarray) -> float:
    """The noise the remainders show at tiny steps (0 when the steps never got tiny).

    The floor ``eps * |J|`` assumes the roundoff of J is relative to |J(theta)|. When
    J(theta) is ~0 by cancellation of O(1) terms the real noise is far above it, and the
    fit would read that noise as a slope. At steps ``2**-NOISE_OCTAVES`` below the first
    one the Taylor remainder of a right gradient (~h^2) is far below roundoff and that
    of a wrong one (~h) is ``2**-NOISE_OCTAVES`` of its value at the first step, so the
    largest remainder there is a floor that hides no slope above it: a wrong gradient
    still shows rate 1 over the steps between.
    """
    if h.shape[0] == 0:
        return 0.0
    tiny = (h <= h[0] * 2.0 ** -NOISE_OCTAVES) & np.isfinite(r)
    if np.count_nonzero(tiny) < 3:
        return 0.0
    return float(np.max(r[tiny]))


# -- the fit ------------------------------------------------------------------------------
def _fit(h: np.ndarray, r: np.ndarray, floor: np.ndarray
         ) -> tuple[float, float, np.ndarray, str]:
    """Rate, its standard error, the mask of fitted steps and a note."""
    usable = np.isfinite(r) & (r > FIT_MARGIN * floor)
    used = np.zeros(h.shape[0], dtype=bool)
    if not np.any(usable):
        return math.nan, math.nan, used, ""
    # The asymptotic range: the run of usable steps ending at the smallest usable one.
    end = int(np.flatnonzero(usable)[-1])
    start = end
    while start > 0 and usable[start - 1]:
        start -= 1
    if end - start + 1 < 2:
        return math.nan, math.nan, used, ""
    lo = max(start, end - MIN_POINTS + 1)
    slopes = _local_slopes(h, r)
    logh, logr = np.log(h), np.log(r)
    rate = _regress(logh[lo:end + 1], logr[lo:end + 1])[0]
    while lo > start and abs(slopes[lo - 1] - rate) <= SLOPE_TOLERANCE:
        lo -= 1
        rate = _regress(logh[lo:end + 1], logr[lo:end + 1])[0]
    used[lo:end + 1] = True
    rate, stderr = _regress(logh[used], logr[used])
    note = ""
    if used.sum() < MIN_POINTS:
        note = "only two steps above the roundoff floor: the rate rests on one pair"
    return rate, stderr, used, note


def _regress(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.shape[0] == 2:
        return float((y[0] - y[1]) / (x[0] - x[1])), math.nan
    import scipy.stats  # lazily: 0.5 s, and only the fit of three or more steps needs it

    fit = scipy.stats.linregress(x, y)
    return float(fit.slope), float(fit.stderr)


# -- the public function ------------------------------------------------------------------
def taylor_test(
    cost: Callable[..., Any],
    grad: Any,
    params: np.ndarray | Mapping[str, np.ndarray],
    args: tuple = (),
    *,
    direction: np.ndarray | Mapping[str, np.ndarray] | None = None,
    steps: Any = None,
    seed: int | None = None,
    layout: Layout | None = None,
) -> TaylorResult:
    """The Taylor test: does ``J(theta + h d) - J(theta) - h g.d`` fall like h^2?

    Parameters
    ----------
    cost, grad, params, args
        As for :func:`fastcheck.check` (``grad`` an array, mapping, callable or True).
    direction : ndarray, mapping or None, optional
        The direction d, flat or shaped like ``params`` (keys ``W1`` or ``dW1``). Default:
        a random normal vector scaled like the finite-difference steps,
        ``d_i = z_i * max(1, |theta_i|)``, drawn with ``seed``; further ones are drawn
        from the same generator while the first leaves a block of the gradient unresolved
        or a 10 % error too likely to pass (a noisy cost), up to ``MAX_DIRECTIONS``. A
        given direction is used alone.
    steps : sequence of float or None, optional
        The steps h. Default: ``h0 = 0.1 * max(1, ||theta||_inf) / ||d||_inf`` halved until
        the remainder reaches the roundoff floor (at most ``MAX_STEPS`` steps).
    seed : int or None, optional
        Seed of the random direction; a fresh one is drawn (and recorded) when None.
    layout : Layout or None, optional
        Block names of a flat ``params`` (only needed for a mapping ``direction``).

    Returns
    -------
    TaylorResult
        ``rate`` (about 2 for a right gradient, 1 for a wrong one), ``passed``
        (``rate >= 1.8``, or every remainder at the roundoff floor, along every
        direction), the ``residuals`` and ``steps``, the mask ``used`` of the fitted
        steps, what it could not see (``detection_limit``, ``unresolved``,
        ``miss_probability``, ``conclusive``), ``summary()``, ``plot()``.

    Warns
    -----
    UserWarning
        When the test passed but is not conclusive: the roundoff or noise of the cost
        hides errors large enough to matter (a factor 2 in a block); ``fc.check`` has no
        such blind spot.

    Raises
    ------
    ValueError, TypeError
        Bad input, as for :func:`fastcheck.check`, or a zero or non-finite direction.

    Examples
    --------
    >>> import numpy as np, fastcheck as fc
    >>> cost = lambda x: float(np.sum(np.sin(x)))
    >>> fc.taylor_test(cost, np.cos, np.array([0.1, 0.2, 0.3]), seed=0).passed
    True
    """
    problem = prepare(cost, grad, params, args, layout)
    d, used_seed, rng = _direction(direction, problem, seed)
    explicit = None if steps is None else _explicit_steps(steps)
    blas = single_threaded_blas() if is_jitted(problem.cost) else contextlib.nullcontext()
    groups = _groups(problem)
    with blas:
        runs = [_along(problem, d, explicit)]
        best = _Resolution(groups, _scaled_norm(problem))
        best.add(runs[-1])
        while rng is not None:
            verdict = _verdict(runs, problem.noise > 0)
            pending = verdict is None  # an ambiguous failure waiting for a second direction
            # Further random directions while a block that a random direction can resolve
            # (its scaled gradient norm above the limit) was not, or a 10 % error could too
            # easily have passed (a noisy cost), or an ambiguous failure needs confirming.
            if verdict is False or len(runs) >= MAX_DIRECTIONS + pending or not (
                    pending or best.wanting(runs[-1].limit) or best.miss > MISS_TARGET):
                break
            runs.append(_along(problem, _random_direction(rng, problem.theta), explicit))
            best.add(runs[-1])
    passed = _verdict(runs, problem.noise > 0 and rng is not None) is not False
    shown = next(run for run in runs if run.passed is passed)
    unresolved = best.unresolved()
    miss = best.miss if rng is not None else math.nan
    note = shown.note
    outvoted = [k for k, run in enumerate(runs) if not run.passed]
    if passed and outvoted:
        k = outvoted[0]
        note = (note + "; " if note else "") + (
            f"along random direction {k + 1} the rate was {runs[k].rate:.2f} from "
            f"{int(np.count_nonzero(runs[k].used))} steps (the cost's noise leaves few to "
            "fit, where higher-order terms still bend the curve); the next direction did not "
            "confirm a failure")
    if passed:
        blind = _blind_notes(best, unresolved, miss, len(runs))
        if blind:
            note = "; ".join([note] + blind if note else blind)
    result = TaylorResult(
        rate=float(shown.rate), passed=passed, residuals=shown.r, steps=shown.h,
        used=shown.used, direction=shown.d, floor=shown.floor, stderr=float(shown.stderr),
        slope=float(problem.analytic @ shown.d), j0=float(problem.j0), note=note,
        evaluations=int(2 + sum(run.h.size for run in runs)), seed=used_seed,
        rates=np.array([run.rate for run in runs]), unresolved=unresolved,
        miss_probability=float(miss),
    )
    if result.passed and not result.conclusive:
        warnings.warn(f"fastcheck: taylor_test passed, but {_blind_spot(result)}",
                      UserWarning, stacklevel=2)
    return result


def _ambiguous(run: _Run) -> bool:
    """A failure whose rate is neither about 1 nor about 2, or rests on few steps."""
    return not run.passed and math.isfinite(run.rate) and (
        AMBIGUOUS_RATE <= run.rate or int(np.count_nonzero(run.used)) <= MIN_POINTS)


def _verdict(runs: list[_Run], confirm: bool) -> bool | None:
    """True (pass), False (fail), or None while one ambiguous failure awaits confirmation.

    Along some directions the noise of a noisy cost leaves only two or three steps above
    it, at the largest steps, where higher-order terms still bend the curve: a right
    gradient then shows a rate between 1 and 2, or even about 1 (3 in 1000 random
    directions on float32 MLPs; every such fit rested on at most ``MIN_POINTS`` steps). So,
    with random directions and a noisy cost (``confirm``), such a failure (a rate in
    ``[AMBIGUOUS_RATE, PASS_RATE)``, or a fit of at most ``MIN_POINTS`` steps) counts only
    when a second direction fails too; any other failure fails at once.
    """
    failed = [run for run in runs if not run.passed]
    if not failed:
        return True
    if not confirm or len(failed) > 1 or not _ambiguous(failed[0]):
        return False
    later = runs.index(failed[0]) + 1 < len(runs)
    return True if later else None


def _blind_notes(best: _Resolution, unresolved: tuple[str, ...], miss: float,
                 n_runs: int) -> list[str]:
    """What a passing test could not see, one sentence per reason (none when conclusive)."""
    notes = []
    if unresolved:
        them = "its" if len(unresolved) == 1 else "their"
        notes.append(
            f"not resolved: {best.describe(unresolved)}, so an "
            f"error as large as {them} gradient (a factor 2, a wrong sign) could go unseen "
            f"along the {n_runs} direction(s) tried")
    if miss > MISS_TARGET:
        notes.append(
            f"an error of {MISS_ERROR:.0%} of the gradient (scaled norm) would have passed "
            f"all {n_runs} random direction(s) with probability {miss:.0%}: the cost's "
            "roundoff or noise swamps its directional derivatives")
    return notes


def _blind_spot(result: TaylorResult) -> str:
    """Why a passing result is not a clean pass, in one sentence (warning and summary)."""
    n = max(1, result.rates.size)
    why = []
    if result.unresolved:
        why.append(f"a factor-2 error in the gradient of {', '.join(result.unresolved)} "
                   "could pass")
    if result.miss_probability > MISS_TARGET:
        why.append(f"an error of {MISS_ERROR:.0%} of the gradient would pass with "
                   f"probability {result.miss_probability:.0%}")
    return (f"it is not a clean pass: along the {n} direction(s) tried the roundoff floor "
            f"and the h^2 term hid errors in g.d below the detection limit "
            f"(~{result.detection_limit:.1e} along the direction shown), so "
            f"{' and '.join(why)}. fc.check compares every component and has no such blind "
            "spot")


# -- one direction ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Run:
    """The remainders and the fit along one direction."""

    d: np.ndarray
    h: np.ndarray
    r: np.ndarray
    floor: np.ndarray
    rate: float
    stderr: float
    used: np.ndarray
    passed: bool
    note: str
    limit: float


def _along(problem: Problem, d: np.ndarray, steps: np.ndarray | None) -> _Run:
    """The Taylor test along ``d``: the steps, the remainders, the fit and the verdict."""
    rem = _Remainders(problem, d)
    if steps is None:
        h = 0.1 * max(1.0, float(np.max(np.abs(problem.theta)))) / float(np.max(np.abs(d)))
        for _ in range(MAX_STEPS):
            rem.add(h)
            if rem.at_floor_run() >= FLOOR_RUN or rem.linear_run() >= LINEAR_RUN:
                break
            h /= 2.0
    else:
        for h in steps:
            rem.add(float(h))
    hs, r, floor = np.array(rem.h), np.array(rem.r), np.array(rem.floor)
    floor = np.maximum(floor, _observed_noise(hs, r))
    rate, stderr, used, note = _fit(hs, r, floor)
    finite = np.isfinite(r)
    if np.any(used):
        passed = bool(rate >= PASS_RATE)
    elif np.any(finite):
        passed = True
        note = ("every remainder is at (or near) the roundoff floor: J is linear along d, or "
                "g exact, to machine precision; nothing fails, but no rate can be fitted")
    else:
        passed = False
        note = "every step gave a non-finite cost: try smaller steps= or another direction"
    if np.any(~finite):
        note = (note + "; " if note else "") + (
            f"{int(np.count_nonzero(~finite))} step(s) gave a non-finite cost and were left out")
    return _Run(d, hs, r, floor, float(rate), float(stderr), used, passed, note,
                _detection_limit(used, r, hs, floor))


def _detection_limit(used: np.ndarray, residuals: np.ndarray, steps: np.ndarray,
                     floor: np.ndarray) -> float:
    """r/h at the smallest fitted step (see ``TaylorResult.detection_limit``)."""
    if np.any(used):
        k = int(np.flatnonzero(used)[-1])
        return float(residuals[k] / steps[k])
    finite = np.isfinite(residuals)
    if not np.any(finite):
        return math.nan
    k = int(np.flatnonzero(finite)[-1])
    return float(floor[k] / steps[k])


# -- what the directions resolved ---------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Group:
    """A block (or the whole gradient): its slice, analytic gradient and scaled size."""

    label: str
    where: slice
    grad: np.ndarray
    #: ``||g_B * max(1, |theta_B|)||_2``: the standard deviation of ``g_B . d_B`` along a
    #: default random direction.
    size: float


def _scaled_norm(problem: Problem) -> float:
    """``||g * max(1, |theta|)||_2``: the standard deviation of ``g . d`` along a default
    random direction."""
    return float(np.linalg.norm(problem.analytic * np.maximum(1.0, np.abs(problem.theta))))


def _groups(problem: Problem) -> list[_Group]:
    """The blocks, and the whole gradient when there are several, that have a size of their
    own (a gradient not zero to roundoff)."""
    layout, g = problem.layout, problem.analytic
    whole = [(WHOLE, slice(0, layout.size))] if len(layout) > 1 else []
    scaled = g * np.maximum(1.0, np.abs(problem.theta))
    total = float(np.linalg.norm(scaled))
    out = []
    for label, where in [(n, layout.block_slice(n)) for n in layout.names] + whole:
        size = float(np.linalg.norm(scaled[where]))
        if total > 0 and size > NEGLIGIBLE * total:
            out.append(_Group(label, where, g[where], size))
    return out


class _Resolution:
    """For each group, the best ratio ``|g_B . d_B| / limit`` over the directions tried."""

    def __init__(self, groups: list[_Group], size: float):
        self.groups = groups
        #: The probability that an error of scaled norm ``MISS_ERROR * size`` passed every
        #: direction so far (NaN for a zero gradient).
        self.miss = 1.0 if size > 0 else math.nan
        self.error = MISS_ERROR * size
        self.ratio = {grp.label: 0.0 for grp in groups}
        self.part = {grp.label: 0.0 for grp in groups}  # |g_B . d_B| at the best ratio
        self.limit = {grp.label: math.nan for grp in groups}

    def add(self, run: _Run) -> None:
        if math.isfinite(self.miss):
            limit = run.limit if math.isfinite(run.limit) else math.inf
            self.miss *= math.erf(limit / (math.sqrt(2.0) * self.error))
        for grp in self.groups:
            part = abs(float(grp.grad @ run.d[grp.where]))
            if not math.isfinite(run.limit):
                ratio = 0.0
            elif run.limit == 0.0:
                ratio = math.inf if part > 0 else 0.0
            else:
                ratio = part / run.limit
            if ratio >= self.ratio[grp.label]:
                self.ratio[grp.label], self.part[grp.label] = ratio, part
                self.limit[grp.label] = run.limit

    def unresolved(self) -> tuple[str, ...]:
        """The groups no direction resolved, in block order."""
        return tuple(grp.label for grp in self.groups
                     if self.ratio[grp.label] < RESOLVE_FACTOR)

    def wanting(self, limit: float) -> bool:
        """Is some unresolved group large enough for a random direction to resolve it?

        Along ``d = z * max(1, |theta|)`` the contribution ``g_B . d_B`` is normal with
        standard deviation ``grp.size``; below ``RESOLVE_FACTOR * limit`` a further
        direction would rarely resolve it, and none is drawn for it.
        """
        if not math.isfinite(limit):
            return False
        return any(self.ratio[grp.label] < RESOLVE_FACTOR
                   and grp.size >= RESOLVE_FACTOR * limit for grp in self.groups)

    def describe(self, labels: tuple[str, ...]) -> str:
        """How far each of ``labels`` got, in words."""
        parts = []
        for label in labels:
            what = "g.d itself was" if label == WHOLE else f"{label}'s part of g.d was"
            parts.append(f"{what} at most {self.part[label]:.1e} against a detection limit "
                         f"of {self.limit[label]:.1e}")
        return ", ".join(parts)
