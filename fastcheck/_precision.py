"""float32 models: which of the two honest checks applies, the cost's noise, the steps.

A float32 model is checked one of two ways (``_inputs.prepare`` decides):

- the cost *follows its input's dtype* (numpy code does): fastcheck's private copy of the
  parameters is float64, so the cost runs in float64 and the check is the ordinary one;
  the report says that float64, not the model's float32 arithmetic, was checked.
- the cost *computes in float32 whatever it is given*: finite differences then carry its
  noise, so the step and the roundoff floor of the verdict come from the measured noise
  ``sigma`` of J instead of ``eps64 * |J|``.

The noise is measured the way ECnoise (Moré & Wild) does: the cost at a few equally
spaced points along a line, whose 4th differences remove the smooth part and leave
noise with variance ``70 * sigma**2``.

A high measured noise alone does not say "float32": a ReLU/max kink crossed by the probe
lines leaves 4th differences as large (``jump * spacing``, 1e-8..1e-5 |J|), and a float64
cost taken for a float32 one is checked with a floor loose enough to pass a wrong
gradient. :func:`classify` therefore rests the verdict on evidence a kink cannot give:

1. the value returned for float64 parameters is a float32 number (its dtype);
2. the value does not change at all when the parameters move by less than half a float32
   ulp (:func:`rounds_input_to_float32`): the cost rounds its input to float32. A float64
   cost changes by ``g . delta``, kink or no kink;
3. otherwise (a float32 computation plus float64 terms that do see such moves) the
   noise must not shrink with the probe spacing (:func:`spacing_ratio`): float32
   rounding noise is the same at any spacing, a kink's 4th differences scale with it.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)

#: Relative noise of J above which the cost is taken to compute in low precision: ~450x
#: float64 roundoff (~1e-16), far more than the float64 check's roundoff floor covers
#: (32 eps |J| / h), and below float32's (~1e-8 .. 1e-7) even when a large constant term
#: inflates |J|: float(loss_in_float32) + 1e4 has a noise of 4e-12..1.4e-11 |J| (it was 1e-11,
#: which classed that cost as float64 and failed its correct gradient).
LOW_PRECISION_NOISE = 1e-13
#: Spacing of the probe points, relative to max(1, |theta_i|): hundreds of float32 ulps,
#: so each point is a distinct float32 input, and small enough that the 4th differences of
#: a smooth J (spacing**4 * J'''') are far below any noise.
PROBE_SPACING = 1e-5
#: Points per probe line (8 points give 4 fourth differences).
PROBE_POINTS = 8
#: Probe lines: single components (a perturbation like the check's own) and random
#: directions through all components (noise from every part of the model).
PROBE_COMPONENTS = 6
PROBE_DIRECTIONS = 2
#: A relative noise above this is capped when choosing steps (J ~ 0 at theta).
MAX_RELATIVE_NOISE = 1e-3
#: Points at which the rounding probe evaluates J, each within an eighth of a float32 ulp
#: of the float32-rounded parameters (plus one at those parameters unless theta is one).
ROUNDING_POINTS = 2
#: Each component of a rounding-probe point moves by this fraction of its float32 ulp
#: (the upward one; the one below a power of two is half of it, still 4x this): every
#: component rounds back to the same float32 number.
ROUNDING_OFFSET = 0.125
#: The spacing-ratio probe repeats the noise probe at ``PROBE_SPACING / FINE_SPACING``
#: (still ~10 float32 ulps of a unit-scale component, so its points are distinct float32
#: inputs). Noise measures the same there; a kink's 4th differences 1/FINE_SPACING. (At
#: 1/32, a float32 loss plus a float64 term is too flat along single components to show
#: its noise, and some kinks seen at the coarse spacing are no longer crossed.)
FINE_SPACING = 8.0
#: Fine over coarse noise estimate (:func:`spacing_ratio`) at or above which the noise is
#: read as noise; below it, as kinks. Measured over 60 seeds: ReLU kinks 0.04..0.19; a
#: float32 tanh MLP plus a float64 L2 term 0.15..1.4 (3 of 60 below: read as kinks, so
#: checked in float64, the side on which no wrong gradient passes).
NOISE_LIKE_RATIO = 1.0 / 3.0


@dataclass(frozen=True)
class Precision:
    """What the float32 probes found.

    ``low``: the cost computes in float32 (check with ``noise``); ``noise``: the measured
    ``sigma`` of one evaluation (0 when ``low`` is False); ``evidence``: the reason, said
    in the report; ``evaluations``: cost calls spent.
    """

    low: bool
    noise: float
    evidence: str
    evaluations: int


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller of this function point
    at the first frame outside fastcheck (the user's ``fc.check`` or ``fc.check_layer``)."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def is_float32(value: Any) -> bool:
    """True for a float32 array or scalar (a 0-d or 1-element float32 result too)."""
    return getattr(value, "dtype", None) == np.float32


def line_estimates(value_at: Callable[[np.ndarray], float], theta: np.ndarray,
                   spacing: float = PROBE_SPACING, only: np.ndarray | None = None
                   ) -> tuple[np.ndarray, float, list[bool], int]:
    """Per probe line, ``rms(4th differences) / sqrt(70)`` (NaN for a line along which J is
    exactly constant, or not probed); the largest ``|J|`` seen; which lines were constant;
    the evaluations used.

    The lines (always the same: a fixed seed) are ``PROBE_COMPONENTS`` single components
    and ``PROBE_DIRECTIONS`` random sign vectors through all of them, each with
    ``PROBE_POINTS`` points ``spacing * max(1, |theta_i|)`` apart; ``only`` (a mask over
    the lines) skips the others.
    """
    rng = np.random.default_rng(0)  # the probe is part of the method: always the same
    n = theta.shape[0]
    scale = np.maximum(1.0, np.abs(theta))
    lines = [np.eye(1, n, int(i)).reshape(-1)
             for i in rng.choice(n, size=min(n, PROBE_COMPONENTS), replace=False)]
    lines += [rng.choice((-1.0, 1.0), size=n) for _ in range(PROBE_DIRECTIONS if n > 1 else 0)]
    offsets = np.arange(PROBE_POINTS) - PROBE_POINTS // 2
    estimates, largest, constant, used = [], 0.0, [], 0
    for k, direction in enumerate(lines):
        if only is not None and not only[k]:
            estimates.append(math.nan)
            constant.append(False)
            continue
        step = spacing * scale * direction
        values = np.array([value_at(theta + j * step) for j in offsets])
        used += PROBE_POINTS
        largest = max(largest, float(np.max(np.abs(values))))
        constant.append(bool(np.all(values == values[0])))
        fourth = np.diff(values, n=4)
        estimates.append(math.nan if constant[-1] else
                         math.sqrt(float(np.mean(fourth**2)) / 70.0))
    return np.array(estimates), largest, constant, used


def estimate_noise(value_at: Callable[[np.ndarray], float], theta: np.ndarray
                   ) -> tuple[float, float, int]:
    """The noise ``sigma`` of one evaluation of J near ``theta``, the largest ``|J|`` seen,
    and the evaluations used.

    The median over probe lines (:func:`line_estimates`) of ``rms(4th differences) /
    sqrt(70)``, robust to a line that crosses a kink (not to kinks on most lines: see
    :func:`classify`). A line along which J is exactly constant (a component without
    influence: a dead ReLU unit, a dropped-out input) says nothing and is left out. When
    J is constant even along the random directions through every component, it is
    *quantized* coarser than its changes at this spacing (a float32 cost with a large
    value, J = loss + 1e4: its float32 spacing ~1e-3 hides every probe step): the noise is
    then the rounding of J to float32, ``0.5 * eps32 * |J|``. (This probe runs for float32
    models only; before, such a cost measured 0 noise, was checked as float64, and a
    correct gradient failed.)
    """
    estimates, largest, constant, used = line_estimates(value_at, theta)
    return _noise_of(estimates, largest, constant), largest, used


def _noise_of(estimates: np.ndarray, largest: float, constant: list[bool]) -> float:
    """:func:`estimate_noise` from the line estimates."""
    seen = estimates[~np.isnan(estimates)]
    noise = float(np.median(seen)) if seen.size else 0.0
    through_all = constant[-PROBE_DIRECTIONS:] if len(constant) > 1 else constant
    if all(through_all) and largest > 0:  # quantized: see the docstring
        noise = max(noise, 0.5 * EPS32 * largest)
    return noise


def rounding_points(theta: np.ndarray, count: int = ROUNDING_POINTS
                    ) -> tuple[np.ndarray, list[np.ndarray]]:
    """``theta`` rounded to float32 and ``count`` points that round to it again.

    Each point moves every component by ``+-ROUNDING_OFFSET`` of its float32 ulp (random
    signs, always the same). A component that is 0 (or subnormal in float32) cannot move
    so (its ulp is ~1e-45) and stays as it is.
    """
    rng = np.random.default_rng(1)  # part of the method: always the same
    with np.errstate(over="ignore"):  # a float64 block beyond float32's range: inf
        rounded32 = theta.astype(np.float32)
    rounded = rounded32.astype(np.float64)
    ulp = np.spacing(np.abs(rounded32)).astype(np.float64)
    ulp[np.abs(rounded32) < np.finfo(np.float32).tiny] = 0.0
    points = [rounded + ROUNDING_OFFSET * ulp * rng.choice((-1.0, 1.0), size=theta.shape[0])
              for _ in range(count)]
    return rounded, points


def rounds_input_to_float32(value_at: Callable[[np.ndarray], float], theta: np.ndarray,
                            j_theta: float) -> tuple[bool | None, int]:
    """Does J see its input only rounded to float32? And the evaluations used.

    J at points that round to the same float32 parameters as ``theta`` (see
    :func:`rounding_points`): a cost that casts its input to float32 returns exactly the
    same value at all of them; a float64 cost returns ``J + g . delta`` (a change of
    ~1e-8 |g| |theta|, a million float64 ulps of a unit J), on a kink too. ``None`` when
    no component can move (all 0) or one is beyond float32's range (a float64 block): the
    probe then says nothing. ``j_theta``: J at ``theta``, reused when ``theta`` is already
    a float32 number.
    """
    rounded, points = rounding_points(theta)
    if not np.all(np.isfinite(rounded)) or not np.any(points[0] != rounded):
        return None, 0
    used = 0
    if np.array_equal(rounded, theta):
        reference = j_theta
    else:
        reference, used = value_at(rounded), 1
    for x in points:
        used += 1
        if value_at(x) != reference:
            return False, used
    return True, used


def spacing_ratio(value_at: Callable[[np.ndarray], float], theta: np.ndarray,
                  coarse: np.ndarray, floor: float) -> tuple[float, int]:
    """How the probe's noise changes at ``PROBE_SPACING / FINE_SPACING``, and the
    evaluations used.

    ~1 for float32 noise, which does not depend on the spacing; ~1/FINE_SPACING for a
    kink, whose 4th differences scale with it. Over the probe lines loud at both spacings
    (estimate above ``floor``; a line quiet at the fine spacing says nothing: a float32
    term too flat to change there, or a kink left behind), the ratio of the pooled
    estimates (root mean square over the lines) is taken separately for the single
    components and the random directions, and the smaller one returned (0 when no line
    is loud). Separately, because each group misleads one way: along a random direction,
    kinks of several components with opposite jumps partly cancel at the coarse spacing
    and separate at the fine one (a ReLU layer's inputs near 0: ratios up to 2); along a
    single component with a small gradient, a float32 term changes by less than its ulp
    at the fine spacing and looks quieter than its noise. ``coarse``: the line estimates
    at ``PROBE_SPACING`` (:func:`line_estimates`).
    """
    with np.errstate(invalid="ignore"):
        loud = coarse > floor  # the others say nothing: not probed again
    fine, _, _, used = line_estimates(value_at, theta, PROBE_SPACING / FINE_SPACING, loud)
    with np.errstate(invalid="ignore"):
        loud &= fine > floor
    components = min(theta.shape[0], PROBE_COMPONENTS)
    ratios = [math.sqrt(float(np.mean(fine[group][loud[group]] ** 2)
                              / np.mean(coarse[group][loud[group]] ** 2)))
              for group in (slice(0, components), slice(components, None))
              if np.any(loud[group])]
    return (min(ratios) if ratios else 0.0), used


def classify(value_at: Callable[[np.ndarray], float], theta: np.ndarray, j0: float,
             returned_float32: bool) -> Precision:
    """Does the cost compute in float32 whatever it is given, and with what noise?

    ``value_at(x)``: J at ``x`` as a float; ``j0``: J at ``theta``; ``returned_float32``:
    the cost returned a float32 value for float64 parameters. See the module docstring for
    the evidence, tried in order; the noise probe always runs (its ``sigma`` sets the
    steps), the others only when its noise is above float64 roundoff.
    """
    lines, largest, constant, used = line_estimates(value_at, theta)
    noise = _noise_of(lines, largest, constant)
    if returned_float32:  # at least the rounding of the returned value
        noise = max(noise, 0.5 * EPS32 * abs(j0))
        return Precision(True, noise, "it returned a float32 value", used)
    rel = relative_noise(noise, j0)
    floor = LOW_PRECISION_NOISE * max(abs(j0), largest)
    if not noise > floor:
        return Precision(False, 0.0, f"measured noise sigma/|J| = {rel:.1e}, float64-level",
                         used)
    rounds, more = rounds_input_to_float32(value_at, theta, j0)
    used += more
    if rounds:
        return Precision(True, noise, "its value does not change when the parameters move "
                         "by less than a float32 ulp, and its measured noise sigma/|J| = "
                         f"{rel:.1e} is far above float64 roundoff", used)
    ratio, more = spacing_ratio(value_at, theta, lines, floor)
    used += more
    finer = f"at a {FINE_SPACING:g}x smaller spacing"
    if ratio >= NOISE_LIKE_RATIO:
        return Precision(True, noise, f"its measured noise sigma/|J| = {rel:.1e} is far "
                         f"above float64 roundoff and the same {finer}", used)
    shrinks = f"shrink {1 / ratio:.0f}x" if ratio > 0 else "vanish"
    return Precision(False, 0.0, "its value changes when the parameters move by less than "
                     "a float32 ulp, and the 4th differences along the probe lines "
                     f"(sigma/|J| = {rel:.1e}) {shrinks} {finer}: ReLU/max kinks, not float32 "
                     "noise", used)


def relative_noise(noise: float, j0: float) -> float:
    """``sigma / |J|``, capped for a J that is ~0 at theta."""
    if noise <= 0:
        return 0.0
    return min(MAX_RELATIVE_NOISE, noise / abs(j0)) if j0 != 0 else MAX_RELATIVE_NOISE


def noise_steps(theta_at: np.ndarray, noise: float, j0: float) -> np.ndarray:
    """Steps for a noisy cost: ``cbrt(sigma / |J|) * max(1, |theta_i|)``, rounded down to a
    power of two.

    The float64 rule ``cbrt(eps) * max(1, |theta_i|)`` with the measured relative noise in
    place of eps: it balances truncation (h**2) against noise (sigma / h). A power of two
    far above a float32 ulp of theta_i keeps ``theta_i +- h`` (and the re-examination's
    ``theta_i +- h/4``, ``h/16``, ``h/64``) exactly representable in float32 when theta_i is, so a
    cost that rounds its input to float32 moves by exactly the step it is divided by.
    """
    rel = max(EPS64, relative_noise(noise, j0))
    return np.exp2(np.floor(np.log2(rel ** (1.0 / 3.0) * np.maximum(1.0, np.abs(theta_at)))))


def describe(float32_blocks: list[str], precision: Precision, j0: float,
             noise_factor: float) -> tuple[str, str]:
    """A note for the report and a shorter warning, both saying what happened (and why,
    from ``precision.evidence``)."""
    noise = precision.noise
    what = (f"float32 parameters ({', '.join(float32_blocks)})" if float32_blocks
            else "a cost that returns float32")
    rel = relative_noise(noise, j0)
    unchanged = " The caller's float32 arrays are unchanged." if float32_blocks else ""
    why = precision.evidence
    if not precision.low:
        note = (f"{what}: the cost follows its input's dtype ({why}), so it was checked in "
                "float64 on fastcheck's float64 copy; this checks the math of the gradient, "
                "not the model's float32 rounding." + unchanged)
        warning = (f"fastcheck: {what} were checked in float64 (the cost follows its "
                   "input's dtype); the caller's float32 arrays are unchanged")
        return note, warning
    h = 2.0 ** math.floor(math.log2(max(EPS64, rel) ** (1.0 / 3.0)))
    floor = noise_factor * noise / h
    note = (f"{what}: the cost computes in float32 whatever it is given ({why}), so it "
            "could not be checked in float64. Steps h ~ cbrt(sigma/|J|)*max(1,|theta|) "
            f"(a power of two, {h:.1e} for |theta| <= 1) and a roundoff floor of "
            f"{noise_factor:g}*sigma/h (sigma = {noise:.2e}: about {floor:.1e} at the "
            "nominal step) were derived from the measured noise of the cost; smaller "
            "errors cannot be told from float32 noise. Ng's bands assume float64, so they do "
            "not decide the verdict here: a correct float32 gradient's relative error sits "
            "at the noise level (often 1e-5..1e-3); only failed components point to a "
            "bug." + unchanged)
    warning = (f"fastcheck: {what} cannot be checked in float64 (the cost computes in "
               f"float32); tolerances come from its measured noise (sigma = {noise:.1e})")
    return note, warning
