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
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, eq=False)
class TaylorResult:
    """The outcome of :func:`taylor_test`.

    Attributes
    ----------
    rate : float
        Fitted slope of log r against log h (about 2 when the gradient is right, 1 when
        it is wrong); NaN when fewer than two steps are above the roundoff floor.
    passed : bool
        ``rate >= PASS_RATE``, or every remainder at the roundoff floor (see ``note``).
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
        Seed of the random direction (None when ``direction`` was given).
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

    # -- derived -----------------------------------------------------------------------
    @property
    def detection_limit(self) -> float:
        """The smallest error in ``g . d`` that would have shown as rate 1.

        At the smallest fitted step h the remainder r is what the h^2 term leaves; an
        error e adds ``h |e|``, so errors well below ``r / h`` stay hidden. NaN without a
        fit; the floor divided by the smallest step when every remainder is at the floor.
        """
        if np.any(self.used):
            k = int(np.flatnonzero(self.used)[-1])
            return float(self.residuals[k] / self.steps[k])
        finite = np.isfinite(self.residuals)
        if not np.any(finite):
            return math.nan
        k = int(np.flatnonzero(finite)[-1])
        return float(self.floor[k] / self.steps[k])

    def summary(self) -> str:
        """The verdict, the fit and what it could not see, in a few lines."""
        from .views.text import taylor_summary

        return taylor_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<TaylorResult {'pass' if self.passed else 'fail'}: rate={self.rate:.3f}, "
                f"{int(np.count_nonzero(self.used))}/{self.steps.size} steps fitted>")

    def to_dict(self) -> dict:
        """Everything as JSON-serialisable values (NaN and inf as None)."""
        from .views.json import taylor_dict

        return taylor_dict(self)

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
def _direction(direction: Any, problem: Problem, seed: Any) -> tuple[np.ndarray, int | None]:
    """The flat direction d and the seed that drew it (None when given)."""
    theta = problem.theta
    if direction is None:
        used_seed = resolve_seed(seed)
        z = np.random.default_rng(used_seed).standard_normal(theta.shape[0])
        return z * np.maximum(1.0, np.abs(theta)), used_seed
    d = normalise_grad(direction, problem.layout, problem.params_kind, "direction")
    if not np.all(np.isfinite(d)):
        raise ValueError("direction must be finite, but some entries are NaN or inf")
    if not np.any(d):
        raise ValueError("direction must not be zero")
    return d, None


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
        ``d_i = z_i * max(1, |theta_i|)``, drawn with ``seed``.
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
        (``rate >= 1.8``, or every remainder at the roundoff floor), the ``residuals``
        and ``steps``, the mask ``used`` of the fitted steps, ``summary()``, ``plot()``.

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
    d, used_seed = _direction(direction, problem, seed)
    rem = _Remainders(problem, d)
    blas = single_threaded_blas() if is_jitted(problem.cost) else contextlib.nullcontext()
    with blas:
        if steps is None:
            h = 0.1 * max(1.0, float(np.max(np.abs(problem.theta)))) / float(np.max(np.abs(d)))
            for _ in range(MAX_STEPS):
                rem.add(h)
                if rem.at_floor_run() >= FLOOR_RUN or rem.linear_run() >= LINEAR_RUN:
                    break
                h /= 2.0
        else:
            for h in _explicit_steps(steps):
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
    evaluations = 2 + hs.size
    return TaylorResult(
        rate=float(rate), passed=passed, residuals=r, steps=hs, used=used, direction=d,
        floor=floor, stderr=float(stderr), slope=float(problem.analytic @ d),
        j0=float(problem.j0), note=note, evaluations=int(evaluations), seed=used_seed,
    )
