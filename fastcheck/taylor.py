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

Kinks. At a kink of the cost at theta along d (``|w|`` at ``w = 0``: a lasso with weights at
exactly 0, a ReLU whose input is exactly 0) the remainder falls like h for *every*
subgradient, so a failing rate is judged again with the mirrored steps ``J(theta - h d)``
(see ``_taylor_fit``): when ``J(theta + h d) + J(theta - h d) - 2 J(theta)`` falls like h
(not h^2) the direction crosses a kink, and it fails only when g.d lies outside the
one-sided directional derivatives (with their error, which shrinks with h); inside, it
counts in ``TaylorResult.kinks``, not as a failure, and its rate says nothing. An error
that keeps g.d inside goes unseen there, so the detection limit along such a direction is
the width of that interval. Random directions are drawn while every one so far crossed a
kink (up to ``MAX_DIRECTIONS``): each is a further chance to catch a wrong subgradient, and
a smooth one gives a rate. When every direction tried crossed a kink the pass is
inconclusive (never a clean pass; a failure only for a g.d outside the interval).
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
from ._inputs import (
    Problem,
    may_hide_low_precision,
    measure_hidden_low_precision,
    normalise_grad,
    prepare,
)
from ._lazy import is_jitted
from ._plan import resolve_seed
from ._taylor_blind import AMBIGUOUS_RATE as AMBIGUOUS_RATE
from ._taylor_blind import MISS_ERROR as MISS_ERROR
from ._taylor_blind import (
    MISS_TARGET,
    _blind_notes,
    _blind_spot,
    _groups,
    _Resolution,
    _scaled_norm,
    _verdict,
)
from ._taylor_blind import NEGLIGIBLE as NEGLIGIBLE
from ._taylor_blind import RESOLVE_FACTOR as RESOLVE_FACTOR
from ._taylor_blind import WHOLE as WHOLE
from ._taylor_fit import FIT_MARGIN as FIT_MARGIN
from ._taylor_fit import FLOOR_RUN as FLOOR_RUN
from ._taylor_fit import LINEAR_RUN as LINEAR_RUN
from ._taylor_fit import MAX_STEPS as MAX_STEPS
from ._taylor_fit import MIN_POINTS, PASS_RATE, _along, _detection_limit
from ._taylor_fit import NOISE_OCTAVES as NOISE_OCTAVES
from ._taylor_fit import SLOPE_TOLERANCE as SLOPE_TOLERANCE
from .layout import Layout

__all__ = ["taylor_test", "TaylorResult", "PASS_RATE"]

# The constants of the fit (``_taylor_fit``) and of the resolution (``_taylor_blind``) live
# next to the code that uses them; the redundant aliases above re-export them, so they
# read as before: ``taylor.PASS_RATE``, ``taylor.MISS_TARGET``, ...

#: At most this many random directions are tried (see the module docstring).
MAX_DIRECTIONS = 5


@dataclass(frozen=True, eq=False)
class TaylorResult:
    """The outcome of :func:`taylor_test`.

    Attributes
    ----------
    rate : float
        Fitted slope of log r against log h (about 2 when the gradient is right, 1 when
        it is wrong); NaN when fewer than two steps are above the roundoff floor.
    passed : bool
        Along every direction tried, ``rate >= PASS_RATE``, or every remainder at the
        roundoff floor (see ``note``), or a kink of the cost at theta along which g.d is a
        subgradient value (see ``kinks``); for a noisy cost, one ambiguous failure that a
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
    kinks : int
        Directions tried that cross a kink of the cost at theta (the mirrored steps show
        ``J(theta + h d) + J(theta - h d) - 2 J(theta)`` falling like h, not h^2) and along
        which g.d lies between the one-sided directional derivatives: not failures, and
        their rate (about 1) says nothing. When every direction tried is one, the pass is
        inconclusive.
    interval : tuple of float or None
        When the direction shown crosses a kink: the one-sided directional derivatives
        (widened by their estimation error) that g.d was compared with; g.d outside them
        fails. None otherwise.
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
    kinks: int = 0
    interval: tuple[float, float] | None = None

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
        ``0.8 * limit / ||e * max(1, |theta|)||_2``. See also ``unresolved``. At a kink
        (``interval`` set) it is the width of the interval g.d had to lie in.
        """
        if self.interval is not None:
            return float(self.interval[1] - self.interval[0])
        return _detection_limit(self.used, self.residuals, self.steps, self.floor)

    @property
    def conclusive(self) -> bool:
        """False when some block of the gradient was not resolved (see ``unresolved``), a
        10 % error could have passed with a probability above 1 % (``miss_probability``),
        or every direction tried crossed a kink (``kinks``).
        """
        all_kinks = self.kinks > 0 and self.kinks >= self.rates.size
        return (not self.unresolved and not self.miss_probability > MISS_TARGET
                and not all_kinks)

    def summary(self) -> str:
        """The verdict, the fit and what it could not see, in a few lines."""
        from .views.text import taylor_summary

        lines = taylor_summary(self).split("\n")
        if self.interval is not None:
            lines = self._kink_lines(lines)
        if self.passed and not self.conclusive:
            lines[0] = lines[0].replace("Taylor test PASS", "Taylor test PASS, INCONCLUSIVE", 1)
            lines.insert(1, f"warning: {_blind_spot(self)}")
        if self.rates.size > 1:
            rates = ", ".join(f"{r:.2f}" for r in self.rates)
            lines.insert(-1, f"{self.rates.size} random directions tried (rates {rates}): "
                             "more are drawn while the earlier ones could miss a bug")
        if self.kinks:
            lines.insert(-1, f"{self.kinks} of {max(1, self.rates.size)} direction(s) cross a "
                             "kink of the cost at theta, where g.d is a subgradient value "
                             "(see the note): no failure, and no rate")
        return "\n".join(lines)

    def _kink_lines(self, lines: list[str]) -> list[str]:
        """The summary's head and limit lines for a direction shown that crosses a kink."""
        lo, hi = self.interval  # type: ignore[misc]
        if self.passed:
            head = ("Taylor test PASS: d crosses a kink of the cost at theta, where the "
                    f"remainder falls like h for any subgradient (rate {self.rate:.2f}); g.d "
                    "lies between the one-sided directional derivatives")
            limit = (f"g.d = {self.slope:.6e}, one-sided derivatives (with their error) "
                     f"[{lo:.6e}, {hi:.6e}]: an error in g.d that keeps it inside goes unseen")
        else:
            head = ("Taylor test FAIL: d crosses a kink of the cost at theta, and g.d lies "
                    "outside the one-sided directional derivatives: the gradient is wrong "
                    "along d (not a subgradient)")
            limit = (f"g.d = {self.slope:.6e}, one-sided derivatives (with their error) "
                     f"[{lo:.6e}, {hi:.6e}]")
        out = [head]
        for line in lines[1:]:
            out.append(limit if line.startswith("g.d = ") else line)
        return out

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
                            "conclusive": self.conclusive, "kinks": self.kinks,
                            "interval": (None if self.interval is None
                                         else list(self.interval))})}

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



# -- the public function ------------------------------------------------------------------
def _evaluations(runs: list) -> int:
    """Cost evaluations of the runs, the mirrored steps at kinks included."""
    return sum(run.h.size + run.mirrored for run in runs)


def _directions(problem: Problem, direction: Any, seed: Any, explicit: np.ndarray | None):
    """The Taylor runs along ``direction`` (or random ones from ``seed``): one, then more
    while a block that a random direction can resolve was not, or a 10 % error could too
    easily have passed (a noisy cost, or kinks), or an ambiguous failure needs confirming,
    or every direction so far crossed a kink."""
    d, used_seed, rng = _direction(direction, problem, seed)
    blas = single_threaded_blas() if is_jitted(problem.cost) else contextlib.nullcontext()
    with blas:
        runs = [_along(problem, d, explicit)]
        best = _Resolution(_groups(problem), _scaled_norm(problem))
        best.add(runs[-1])
        while rng is not None:
            verdict = _verdict(runs, problem.noise > 0)
            pending = verdict is None  # an ambiguous failure waiting for a second direction
            kinks_only = all(run.kink for run in runs)
            if verdict is False or len(runs) >= MAX_DIRECTIONS + pending or not (
                    pending or best.wanting(runs[-1].limit) or best.miss > MISS_TARGET
                    or kinks_only):
                break
            runs.append(_along(problem, _random_direction(rng, problem.theta), explicit))
            best.add(runs[-1])
    return d, used_seed, rng, runs, best


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
        (``rate >= 1.8``, or every remainder at the roundoff floor, or a kink at theta
        with g.d between the one-sided directional derivatives, along every direction),
        the ``residuals`` and ``steps``, the mask ``used`` of the fitted steps, the
        directions on a kink (``kinks``, ``interval``), what it could not see
        (``detection_limit``, ``unresolved``, ``miss_probability``, ``conclusive``),
        ``summary()``, ``plot()``.

    Warns
    -----
    UserWarning
        When the test passed but is not conclusive: the roundoff or noise of the cost
        hides errors large enough to matter (a factor 2 in a block), or every direction
        crossed a kink (where g.d is only bounded by the one-sided derivatives);
        ``fc.check`` has no such blind spot.

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
    explicit = None if steps is None else _explicit_steps(steps)
    d, used_seed, rng, runs, best = _directions(problem, direction, seed, explicit)
    passed = _verdict(runs, problem.noise > 0 and rng is not None) is not False
    first_pass = 0
    if not passed and may_hide_low_precision(problem):
        # a float64 problem whose cost may compute in float32 inside (as fc.check does)
        problem, low = measure_hidden_low_precision(problem)
        if low:  # its noise, taken for a wrong gradient: test again with the noise
            first_pass = _evaluations(runs)
            d, used_seed, rng, runs, best = _directions(problem, direction, used_seed,
                                                        explicit)
            passed = _verdict(runs, problem.noise > 0 and rng is not None) is not False
    # a passing smooth direction shows the rate; a kink only when every direction is one
    shown = min((run for run in runs if run.passed is passed),
                key=lambda run: passed and run.kink)
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
    kinks = sum(run.kink and run.passed for run in runs)
    if passed:
        blind = _blind_notes(best, unresolved, miss, len(runs), kinks)
        if blind:
            note = "; ".join([note] + blind if note else blind)
    result = TaylorResult(
        rate=float(shown.rate), passed=passed, residuals=shown.r, steps=shown.h,
        used=shown.used, direction=shown.d, floor=shown.floor, stderr=float(shown.stderr),
        slope=float(problem.analytic @ shown.d), j0=float(problem.j0), note=note,
        evaluations=int(2 + first_pass + _evaluations(runs)
                        + (problem.probe_evaluations if first_pass else 0)), seed=used_seed,
        rates=np.array([run.rate for run in runs]), unresolved=unresolved,
        miss_probability=float(miss), kinks=int(kinks), interval=shown.interval,
    )
    if result.passed and not result.conclusive:
        warnings.warn(f"fastcheck: taylor_test passed, but {_blind_spot(result)}",
                      UserWarning, stacklevel=2)
    return result
