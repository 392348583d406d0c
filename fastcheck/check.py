"""``fc.check`` and ``fc.assert_gradient``: validate -> plan -> evaluate -> verdict -> Report."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from . import _plan, _steps, _verdict
from ._analysis import enrich
from ._inputs import Problem, prepare
from .backends import BACKEND_NAMES, create_backend, resolve_backend
from .layout import Layout
from .report import Report, block_reports, global_relative_error, verdict_of

__all__ = ["check", "assert_gradient"]

BackendName = Literal["auto", "numba", "threads", "serial"]


# -- option validation ----------------------------------------------------------------------
def _validate_eps(eps: Any) -> float | str:
    if isinstance(eps, str):
        if eps != "auto":
            raise ValueError(f'eps must be "auto" or a positive float, got {eps!r}')
        return eps
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f'eps must be "auto" or a positive float, got {type(eps).__name__}')
    value = float(eps)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f'eps must be "auto" or a positive finite float, got {eps!r}')
    return value


def _validate_rtol(rtol: Any) -> float:
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
        raise TypeError(f"rtol must be a positive float, got {type(rtol).__name__}")
    value = float(rtol)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"rtol must be a positive finite float, got {rtol!r}")
    return value


def _validate_backend(backend: Any) -> str:
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {list(BACKEND_NAMES)}, got {backend!r}")
    return backend


def _validate_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be None or a positive int, got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads must be None or a positive int, got {threads}")
    return int(threads)


def _validate_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise TypeError(f"confidence must be a float in (0, 1), got {confidence!r}")
    value = float(confidence)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return value


# -- the driver ---------------------------------------------------------------------------
class _Progress:
    """A tqdm bar over components (or nothing)."""

    def __init__(self, enabled: bool, total: int):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="comp", desc="fastcheck", leave=False)

    def advance(self, n: int, n_failed: int) -> None:
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix(failed=n_failed, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _evaluate_all(backend, problem: Problem, indices: np.ndarray, x_plus: np.ndarray,
                  x_minus: np.ndarray, rtol: float, progress: _Progress):
    """Run the chosen components chunk by chunk; returns J+, J- and the suspect mask."""
    n = indices.shape[0]
    j_plus = np.empty(n, dtype=np.float64)
    j_minus = np.empty(n, dtype=np.float64)
    suspect = np.zeros(n, dtype=bool)
    for s in _plan.chunks(n):
        jp, jm = backend.evaluate(indices[s], x_plus[s], x_minus[s])
        j_plus[s], j_minus[s] = jp, jm
        first = _verdict.Differences(jp, jm, x_plus[s], x_minus[s])
        suspect[s] = _verdict.first_pass(problem.analytic[indices[s]], first, problem.j0, rtol)
        progress.advance(s.stop - s.start, int(np.count_nonzero(suspect[: s.stop])))
    return j_plus, j_minus, suspect


def check(
    cost: Callable[..., Any],
    grad: Any,
    params: np.ndarray | Mapping[str, np.ndarray],
    args: tuple = (),
    *,
    eps: float | Literal["auto"] = "auto",
    sample: int | float | None = None,
    seed: int | None = None,
    backend: BackendName = "auto",
    threads: int | None = None,
    progress: bool = False,
    rtol: float = 1e-5,
    layout: Layout | None = None,
    confidence: float = 0.95,
) -> Report:
    """Compare an analytic gradient with two-sided finite differences, component by component.

    Parameters
    ----------
    cost : callable
        ``cost(theta, *args) -> float``, the scalar cost including every term the gradient
        includes (regularisation). With a mapping ``params`` it receives a mapping of the
        same names (views of the perturbed vector). An ``@njit`` cost on a flat vector runs
        on the parallel numba kernel.
    grad : array, mapping, callable or True
        The analytic gradient: an array or mapping shaped like ``params`` (keys ``W1`` or
        ``dW1``; other keys are ignored), a callable ``grad(theta, *args)`` returning one,
        or ``True`` when ``cost`` returns ``(loss, grads)``.
    params : ndarray or mapping
        The point: a flat float64 vector, or a mapping ``name -> float64 array``.
    args : tuple
        Extra arguments passed to ``cost`` and a callable ``grad`` after theta.
    eps : float or "auto"
        The step: ``"auto"`` uses ``cbrt(eps_machine) * max(1, |theta_i|)`` per component.
    sample : int, float or None
        None checks every component; an int that many, a float in (0, 1] that fraction,
        drawn at random and stratified so that every block gets at least one.
    seed : int or None
        Seed of the sample; a fresh one is drawn (and recorded) when None.
    backend : {"auto", "numba", "threads", "serial"}
        ``auto`` chooses numba for an ``@njit`` cost on a flat vector, serial otherwise.
    threads : int or None
        Worker threads (None: all that numba or the OS report).
    progress : bool
        Show a progress bar on stderr.
    rtol : float
        Per-component relative tolerance, on top of the estimated finite-difference error.
    layout : Layout or None
        Block names for a flat ``params`` vector.
    confidence : float
        Level of ``report.failure_rate_bound`` (when a sample was checked).

    Returns
    -------
    Report
        Verdict, per-block and per-component results; see ``Report.summary()``.

    Raises
    ------
    ValueError, TypeError
        Bad input; the message names the argument, the expected and the actual value.
    NondeterministicCostError
        ``cost`` gave different values at the same theta (dropout left on?).
    CostEvaluationError
        ``cost`` raised at a perturbed point; the message names the component.

    Examples
    --------
    >>> import numpy as np, fastcheck as fc
    >>> cost = lambda p: float(np.sum(p["w"] ** 2))
    >>> grad = lambda p: {"dw": 2 * p["w"]}
    >>> fc.check(cost, grad, {"w": np.array([1.0, -2.0])}).passed
    True
    """
    start = time.perf_counter()
    eps = _validate_eps(eps)
    rtol = _validate_rtol(rtol)
    backend = _validate_backend(backend)
    threads = _validate_threads(threads)
    confidence = _validate_confidence(confidence)
    problem = prepare(cost, grad, params, args, layout)
    plan = _plan.choose_components(problem.layout, sample, seed)
    indices = plan.indices
    theta_at = problem.theta[indices]
    h = _steps.nominal_steps(theta_at, eps)
    x_plus, x_minus = _steps.perturbed_points(theta_at, h)
    analytic = problem.analytic[indices]

    runner = create_backend(resolve_backend(backend, problem), problem, threads)
    bar = _Progress(bool(progress), indices.shape[0])
    try:
        with runner:
            j_plus, j_minus, suspect = _evaluate_all(runner, problem, indices, x_plus,
                                                     x_minus, rtol, bar)
            numeric = _verdict.Differences(j_plus, j_minus, x_plus, x_minus).numeric()
            kinds = np.full(indices.shape[0], _verdict.OK, dtype="<U9")
            where = np.flatnonzero(suspect)
            if where.size and hasattr(runner, "verify"):
                runner.verify(indices[where], x_plus[where], x_minus[where],
                              j_plus[where], j_minus[where])
            if where.size:
                first = _verdict.Differences(j_plus[where], j_minus[where], x_plus[where],
                                             x_minus[where])

                def evaluate(positions, xp, xm):
                    return runner.evaluate(indices[where[positions]], xp, xm)

                outcome = _verdict.reexamine(analytic[where], theta_at[where], h[where],
                                             first, problem.j0, rtol, evaluate)
                kinds[where] = outcome.kinds
                numeric[where] = outcome.numeric
    finally:
        bar.close()

    abs_errors = np.abs(analytic - numeric)
    rel_errors = _verdict.relative_errors(analytic, numeric)
    failing = np.isin(kinds, (_verdict.FAIL, _verdict.NONFINITE))
    rel_global = global_relative_error(analytic, numeric)
    n_failed = int(np.count_nonzero(failing))
    blocks = block_reports(problem.layout, indices, analytic, numeric, rel_errors, kinds)
    evaluations = 2 + (1 if problem.cost_returns_grad else 0) + runner.evaluations
    compile_seconds = float(runner.compile_seconds) + problem.cost_compile_seconds
    report = Report(
        passed=n_failed == 0,
        verdict=verdict_of(n_failed, rel_global),
        relative_error=rel_global,
        n_params=problem.layout.size,
        n_checked=int(indices.shape[0]),
        indices=indices,
        analytic=analytic,
        numeric=numeric,
        abs_errors=abs_errors,
        rel_errors=rel_errors,
        kinds=kinds,
        steps=(x_plus - x_minus) / 2,
        failed=indices[failing],
        blocks=blocks,
        layout=problem.layout,
        seed=plan.seed,
        eps=eps,
        rtol=rtol,
        backend=runner.name,
        threads=runner.threads,
        seconds=time.perf_counter() - start - compile_seconds,
        compile_seconds=compile_seconds,
        evaluations=evaluations,
        sampled=plan.sampled,
    )
    return enrich(report, problem.theta[indices], confidence)


def assert_gradient(cost: Callable[..., Any], grad: Any, params: Any, args: tuple = (),
                    **check_kwargs: Any) -> Report:
    """Check the gradient and raise ``fc.GradientCheckError`` if it fails.

    Parameters
    ----------
    cost, grad, params, args
        As for :func:`check`.
    **check_kwargs
        Any keyword option of :func:`check`.

    Returns
    -------
    Report
        The (passing) report.

    Raises
    ------
    GradientCheckError
        An ``AssertionError`` whose message is the first lines of the summary: the
        verdict, the failing blocks and the worst components.
    """
    report = check(cost, grad, params, args, **check_kwargs)
    report.raise_if_failed()
    return report
