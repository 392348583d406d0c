"""float32 models: which of the two honest checks applies, the cost's noise, the steps.

A float32 model is checked one of two ways (``_inputs.prepare`` decides):

- the cost *follows its input's dtype* (numpy code does): fastcheck's private copy of the
  parameters is float64, so the cost runs in float64 and the check is the ordinary one;
  the report says that float64, not the model's float32 arithmetic, was checked.
- the cost *computes in float32 whatever it is given* (it returns a float32 value, or its
  measured noise is far above float64 roundoff): finite differences then carry that
  noise, so the step and the roundoff floor of the verdict come from the measured noise
  ``sigma`` of J instead of ``eps64 * |J|``.

The noise is measured the way ECnoise (Moré & Wild) does: the cost at a few equally
spaced points along a line, whose 4th differences remove the smooth part and leave
noise with variance ``70 * sigma**2``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
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


def estimate_noise(value_at: Callable[[np.ndarray], float], theta: np.ndarray
                   ) -> tuple[float, float, int]:
    """The noise ``sigma`` of one evaluation of J near ``theta``, the largest ``|J|`` seen,
    and the evaluations used.

    The median over probe lines of ``rms(4th differences) / sqrt(70)``, robust to a line
    that crosses a kink. A line along which J is exactly constant (a component without
    influence: a dead ReLU unit, a dropped-out input) says nothing and is left out. When
    J is constant even along the random directions through every component, it is
    *quantized* coarser than its changes at this spacing (a float32 cost with a large
    value, J = loss + 1e4: its float32 spacing ~1e-3 hides every probe step): the noise is
    then the rounding of J to float32, ``0.5 * eps32 * |J|``. (This probe runs for float32
    models only; before, such a cost measured 0 noise, was checked as float64, and a
    correct gradient failed.)
    """
    rng = np.random.default_rng(0)  # the probe is part of the method: always the same
    n = theta.shape[0]
    scale = np.maximum(1.0, np.abs(theta))
    lines = [np.eye(1, n, int(i)).reshape(-1)
             for i in rng.choice(n, size=min(n, PROBE_COMPONENTS), replace=False)]
    lines += [rng.choice((-1.0, 1.0), size=n) for _ in range(PROBE_DIRECTIONS if n > 1 else 0)]
    offsets = np.arange(PROBE_POINTS) - PROBE_POINTS // 2
    estimates, largest, constant = [], 0.0, []
    for direction in lines:
        step = PROBE_SPACING * scale * direction
        values = np.array([value_at(theta + k * step) for k in offsets])
        largest = max(largest, float(np.max(np.abs(values))))
        constant.append(bool(np.all(values == values[0])))
        if constant[-1]:
            continue
        fourth = np.diff(values, n=4)
        estimates.append(math.sqrt(float(np.mean(fourth**2)) / 70.0))
    noise = float(np.median(estimates)) if estimates else 0.0
    through_all = constant[-PROBE_DIRECTIONS:] if n > 1 else constant
    if all(through_all) and largest > 0:  # quantized: see the docstring
        noise = max(noise, 0.5 * EPS32 * largest)
    return noise, largest, len(lines) * PROBE_POINTS


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
    ``theta_i +- h/4``, ``h/16``) exactly representable in float32 when theta_i is, so a
    cost that rounds its input to float32 moves by exactly the step it is divided by.
    """
    rel = max(EPS64, relative_noise(noise, j0))
    return np.exp2(np.floor(np.log2(rel ** (1.0 / 3.0) * np.maximum(1.0, np.abs(theta_at)))))


def describe(float32_blocks: list[str], returned_float32: bool, noise: float, j0: float,
             low_precision: bool, noise_factor: float) -> tuple[str, str]:
    """A note for the report and a shorter warning, both saying what happened."""
    what = (f"float32 parameters ({', '.join(float32_blocks)})" if float32_blocks
            else "a cost that returns float32")
    rel = relative_noise(noise, j0)
    unchanged = " The caller's float32 arrays are unchanged." if float32_blocks else ""
    if not low_precision:
        note = (f"{what}: the cost follows its input's dtype (measured noise "
                f"sigma/|J| = {rel:.1e}, float64-level), so it was checked in float64 on "
                "fastcheck's float64 copy; this checks the math of the gradient, not the "
                "model's float32 rounding." + unchanged)
        warning = (f"fastcheck: {what} were checked in float64 (the cost follows its "
                   "input's dtype); the caller's float32 arrays are unchanged")
        return note, warning
    why = ("it returned a float32 value" if returned_float32 else
           f"its measured noise sigma/|J| = {rel:.1e} is far above float64 roundoff")
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
