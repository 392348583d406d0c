"""``fc.check`` and ``fc.assert_gradient``: validate -> plan -> evaluate -> verdict -> Report."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from . import _driver, _kernel_fork, _methods, _plan, _steps, _verdict
from ._inputs import Problem, may_hide_low_precision, measure_hidden_low_precision, prepare
from ._methods import METHOD_NAMES
from ._options import (
    validate_choice,
    validate_eps,
    validate_fraction,
    validate_optional_count,
    validate_rtol,
)
from ._values import as_args
from .backends import BACKEND_NAMES, choose_backend, create_backend
from .layout import Layout
from .report import Report, Run

__all__ = ["check", "assert_gradient"]

BackendName = Literal["auto", "numba", "processes", "threads", "serial", "dask"]
MODES = ("full", "directional")


# -- the driver ---------------------------------------------------------------------------
class _Progress:
    """A tqdm bar over components, or cost evaluations (directional mode), or nothing."""

    def __init__(self, enabled: bool, total: int | None, unit: str = "comp"):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit=unit, desc="fastcheck", leave=False)

    def advance(self, n: int, n_failed: int) -> None:
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix(failed=n_failed, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


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
    target_rate: float = 1e-3,
    max_failures: int | None = None,
    method: Literal["central", "complex", "richardson"] = "central",
    mode: Literal["full", "directional"] = "full",
    client: Any = None,
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
    sample : int, float, "auto" or None
        None checks every component; an int that many, a float in (0, 1] that fraction,
        drawn at random and stratified so that every block gets at least one. ``"auto"``
        checks random chunks until a failure is confirmed or the upper confidence bound
        on the failure rate drops below ``target_rate``.
    seed : int or None
        Seed of the sample; a fresh one is drawn (and recorded) when None.
    backend : {"auto", "numba", "processes", "threads", "serial", "dask"}
        ``auto`` chooses numba for an ``@njit`` cost on a flat vector; for any other cost,
        ``processes`` (worker processes, each with its own copy of the cost) when the
        check is long enough to pay for starting them, else ``serial``
        (``report.notes`` says why when the choice was not obvious). ``threads`` suits
        only costs that release the GIL.
    threads : int or None
        Worker threads, or worker processes (None: all that numba or the OS report).
    progress : bool
        Show a progress bar on stderr.
    rtol : float
        Per-component relative tolerance, on top of the estimated finite-difference error.
    layout : Layout or None
        Block names for a flat ``params`` vector.
    confidence : float
        Level of ``report.failure_rate_bound`` (when a sample was checked).
    target_rate : float
        With ``sample="auto"``: the failure rate to rule out at ``confidence``.
    max_failures : int or None
        Stop once this many failures are confirmed (``report.stop_reason`` says so).
    method : {"central", "complex", "richardson"}
        ``"central"``: two-sided differences. ``"richardson"``: central differences at h and
        h/2 extrapolated to O(h^4), their difference used as an error estimate (4
        evaluations per component). ``"complex"``: the complex step ``Im J(θ + ihe_i)/h``,
        exact to machine precision for a cost that accepts complex input (1 evaluation
        per component); a cost that is not complex-analytic (abs, max, comparisons) is
        detected on a few components and checked with central differences instead, and
        the report says so.
    mode : {"full", "directional"}
        ``"full"`` compares component by component (2 evaluations each).
        ``"directional"`` compares ``g . u`` with central differences along a few random
        directions (2 evaluations each, whatever N is) and, when one fails, localizes the
        bad components by group testing (block, then halves): the fast check for big
        models, reporting the located components like a full check would. Its evaluations
        run one after the other on one thread: ``backend`` must be "auto" or "serial",
        ``threads`` None or 1, ``client``, ``sample`` and ``max_failures`` None (else
        ValueError); ``progress`` shows a bar over cost evaluations. A passing
        directional report states the smallest single-component error it could have
        missed (``report.directional.detection_limit``, relative to ``||g||``).
    client : dask.distributed.Client or None
        With ``backend="dask"``: the cluster to run on (None: the default client).

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
    args = as_args(args)  # once: a generator can be read only once
    eps = validate_eps(eps)
    rtol = validate_rtol(rtol)
    backend = validate_choice("backend", backend, BACKEND_NAMES)
    threads = validate_optional_count("threads", threads)
    confidence = validate_fraction("confidence", confidence)
    target_rate = validate_fraction("target_rate", target_rate)
    max_failures = validate_optional_count("max_failures", max_failures)
    mode = validate_choice("mode", mode, MODES)
    method = validate_choice("method", method, METHOD_NAMES)
    if mode == "directional" and method != "central":
        raise ValueError(f'mode="directional" uses central differences; got method={method!r}')
    # the first check of an njit cost may fork a child compiling its kernel: none outlives
    # the check
    with _kernel_fork.reaping(cost, grad, params, args, backend, mode):
        problem = prepare(cost, grad, params, args, layout)
        if mode == "directional":
            _directional_refusals(sample=sample, max_failures=max_failures, backend=backend,
                                  threads=threads, client=client)
            from .directional import run_directional

            bar = _Progress(bool(progress), None, unit="eval")
            used_seed = _plan.resolve_seed(seed)
            try:
                report = run_directional(problem, eps=eps, rtol=rtol, seed=used_seed,
                                         start_time=start, confidence=confidence,
                                         tick=lambda n: bar.advance(n, 0))
                # float32 noise read with float64 eyes: failures, or one-sided slopes that
                # differ (taken for kinks): measure it (see the full check below)
                if (report.verdict != "pass" or report.n_kinks) \
                        and may_hide_low_precision(problem):
                    problem, low = measure_hidden_low_precision(problem)
                    if low:  # noise taken for failures: again, with noise steps and floor
                        report = run_directional(
                            problem, eps=eps, rtol=rtol, seed=used_seed, start_time=start,
                            confidence=confidence, tick=lambda n: bar.advance(n, 0),
                            spent=report.evaluations - 2)
                return report
            finally:
                bar.close()
        adaptive = isinstance(sample, str) and sample == "auto"
        if adaptive:
            n_blocks = int(np.count_nonzero(np.diff(problem.layout.bounds)))
            sample = max(n_blocks, _plan.auto_sample_size(problem.layout.size, confidence,
                                                          target_rate))
        elif isinstance(sample, str):
            raise ValueError(f'sample must be None, an int, a float in (0, 1] or "auto", '
                             f'got {sample!r}')
        plan = _plan.choose_components(problem.layout, sample, seed)
        targets = _targets(problem, plan.indices, eps)
        may_stop = adaptive or max_failures is not None
        order = (_plan.processing_order(problem.layout, plan.indices, plan.seed) if may_stop
                 else np.arange(plan.indices.shape[0], dtype=np.int64))
        stop = _stop_rule(adaptive, max_failures, confidence, target_rate, problem.layout,
                          plan.indices, order)

        def run(problem: Problem, targets: _driver.Targets):
            chosen, why = choose_backend(backend, problem, plan.indices.shape[0], method, threads)
            runner = create_backend(chosen, problem, threads, method=method, client=client)
            used = method
            bar = _Progress(bool(progress), plan.indices.shape[0])
            try:
                with runner:
                    notes: list[str] = list(problem.notes) + ([why] if why else [])
                    if method == "complex":
                        used, note = _complex_probe(runner, problem, targets, rtol)
                        notes.extend([note] if note else [])
                    quick = _one_launch(runner, problem, plan, stop is None and not progress)
                    state = _driver.run(runner, problem, targets, rtol, order, stop, bar.advance,
                                        method=used, small_first=not quick)
                    notes += runner.events() + _driver.off_hull_note(problem, state.off_hull)
            finally:
                bar.close()
            return state, runner, used, notes

        state, runner, used, notes = run(problem, targets)
        first_pass = 0
        if _may_hide_low_precision(problem, state):
            problem, low = measure_hidden_low_precision(problem)
            if low:  # noise taken for failures: check again with noise-based steps and floor
                first_pass = runner.evaluations
                targets = _targets(problem, plan.indices, eps)
                state, runner, used, notes = run(problem, targets)
        report = _build_report(problem, plan, targets, state, runner, eps, rtol, start,
                               confidence, used, tuple(notes), first_pass)
        if state.error is not None:
            try:
                state.error.partial_report = report
            except AttributeError:  # pragma: no cover - exceptions without a __dict__
                pass
            raise state.error
        return report


def _directional_refusals(**options: Any) -> None:
    """``mode="directional"`` chooses its own evaluations and runs them in order (each
    group test depends on the ones before): it honours ``progress`` (a bar over cost
    evaluations) and refuses the options it cannot honour."""
    allowed = {"sample": (None,), "max_failures": (None,), "backend": ("auto", "serial"),
               "threads": (None, 1), "client": (None,)}
    refused = {k: v for k, v in options.items()
               if not any(v is a or (type(v) is type(a) and v == a) for a in allowed[k])}
    if refused:
        given = ", ".join(f"{k}={v!r}" for k, v in refused.items())
        accepted = "; ".join(f"{k} " + " or ".join(repr(a) for a in allowed[k])
                             for k in refused)
        raise ValueError(
            f'mode="directional" chooses its own evaluations and runs them one after the '
            f"other on one thread (each group test depends on the ones before), so it cannot "
            f"honour {given}; accepted: {accepted} (or use mode=\"full\")")


#: A check expected to take less than this (cost time x evaluations) on a backend with a
#: launch cost per chunk runs as one launch: on the S network, two kernel launches instead
#: of one made a warm check several times its limit. Longer checks keep small first chunks,
#: so that Ctrl-C within one returns a partial report promptly.
QUICK_CHECK_SECONDS = 0.25


def _one_launch(runner, problem: Problem, plan, free: bool) -> bool:
    """Run the check as one chunk: nothing needs to hear early (``free``), the backend pays
    per launch, and the whole check is quick."""
    estimate = problem.cost_seconds * 2 * plan.indices.shape[0] / max(1, runner.threads)
    return free and runner.large_chunks and estimate < QUICK_CHECK_SECONDS


#: Components compared between the complex step and central differences before a check.
COMPLEX_PROBES = 8


def _complex_probe(runner, problem: Problem, targets: _driver.Targets, rtol: float
                   ) -> tuple[str, str | None]:
    """Is the cost complex-analytic? Compare both methods on a few components.

    Returns the method to use and a note for the report. A cost that cannot take complex
    input at all raises TypeError (from the backend).
    """
    n = targets.indices.shape[0]
    pos = np.unique(np.linspace(0, n - 1, min(COMPLEX_PROBES, n)).astype(np.int64))
    with_complex = _methods.complex_step(runner, problem, targets, pos)
    with_central = _methods.central(runner, problem, targets, pos)
    a, b = with_complex.numeric, with_central.numeric
    with np.errstate(invalid="ignore"):
        agree = np.abs(a - b) <= 10 * rtol * (np.abs(a) + np.abs(b)) + 4 * with_central.floor
    if np.all(agree):
        return "complex", None
    bad = targets.indices[pos[~agree]]
    label = problem.layout.label(int(bad[0]))
    return "central", (
        f"method='complex' was not used: the cost is not complex-analytic (at {label} the "
        f"complex step gives {a[~agree][0]:.6g} but central differences {b[~agree][0]:.6g}; "
        "abs, max, comparisons or real casts break the complex step), so every component "
        "was checked with central differences instead"
    )


def _targets(problem: Problem, indices: np.ndarray, eps) -> _driver.Targets:
    """Points, steps and analytic values of the chosen components."""
    theta_at = problem.theta[indices]
    h = problem.nominal_steps(theta_at, eps)
    x_plus, x_minus = _steps.perturbed_points(theta_at, h)
    flat = np.flatnonzero(x_plus == x_minus)
    if flat.size:
        label = problem.layout.label(int(indices[flat[0]]))
        raise ValueError(
            f"eps={eps!r} is below the spacing of floats at theta: theta + h == theta - h "
            f"for {flat.size:,} component(s), e.g. {label} = {theta_at[flat[0]]!r}; use "
            'eps="auto" or a larger step'
        )
    return _driver.Targets(indices, theta_at, h, x_plus, x_minus, problem.analytic[indices])


def _stop_rule(adaptive: bool, max_failures: int | None, confidence: float,
               target_rate: float, layout: Layout, indices: np.ndarray, order: np.ndarray):
    """The rule that may end a check early, or None. ``indices[order]``: the flat indices
    in processing order; with ``sample="auto"`` the bound is the report's own, stratified by
    block (``stats.stratified_upper``), not one pooled over a sample that gave every block
    a component."""
    if not adaptive and max_failures is None:
        return None
    from .stats import stratified_upper

    blocks = layout.block_of(indices[order])

    def stop(done: int, n_failed: int) -> str | None:
        if max_failures is not None and n_failed >= max_failures:
            return (f"max_failures={max_failures} reached: {n_failed} failure(s) confirmed "
                    f"after {done:,} components")
        if adaptive and n_failed:
            return f"sample='auto': a failure was confirmed after {done:,} components"
        if adaptive:
            checked = np.bincount(blocks[:done], minlength=len(layout)).tolist()
            bound = stratified_upper([0] * len(checked), checked, layout.sizes, confidence)
            if bound <= target_rate:
                return (f"sample='auto': 0 failures in {done:,} components puts the failure "
                        f"rate below target_rate={target_rate:g} at {confidence:.0%} "
                        f"confidence")
        return None

    return stop


def _may_hide_low_precision(problem: Problem, state) -> bool:
    """Could the failures or kinks of this float64 check be the noise of a cost that
    computes in float32 inside (``_inputs.may_hide_low_precision``)? Asked when the check
    ended without an error and a component failed with finite values or sat on a "kink":
    read with float64 floors, float32 noise also makes one-sided slopes differ, and a
    tanh network with a missing regularisation term read PASS with all 75 components
    "on kinks" (3 seeds of 200)."""
    if state.error is not None or not may_hide_low_precision(problem):
        return False
    kinds = state.kinds[state.finished_positions()]
    return bool(np.any((kinds == _verdict.FAIL) | (kinds == _verdict.KINK)))


def _build_report(problem: Problem, plan, targets: _driver.Targets, state, runner, eps,
                  rtol: float, start: float, confidence: float, method: str = "central",
                  notes: tuple = (), first_pass: int = 0) -> Report:
    """Assemble the Report of the finished part of the check (``first_pass``: cost
    evaluations of a pass run again, see ``_may_hide_low_precision``)."""
    pos = state.finished_positions()
    indices = targets.indices[pos]
    compile_seconds = float(runner.compile_seconds) + problem.cost_compile_seconds
    run = Run(
        seed=plan.seed, eps=eps, rtol=rtol, backend=runner.name, threads=runner.threads,
        seconds=max(0.0, time.perf_counter() - start - compile_seconds),
        compile_seconds=compile_seconds,
        # the two calls at theta, the noise probes of a float32 cost, then the backend's
        evaluations=2 + problem.probe_evaluations + first_pass + runner.evaluations,
        sampled=bool(plan.sampled or state.done < targets.indices.shape[0]),
        confidence=confidence, stop_reason=state.stop_reason, method=method, notes=notes,
        noise_floor=problem.noise > 0)
    return Report.from_components(
        problem.layout, indices, targets.analytic[pos], state.numeric[pos], state.kinds[pos],
        (targets.x_plus[pos] - targets.x_minus[pos]) / 2, problem.theta[indices], run,
        unresolved=state.unresolved[pos])


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
