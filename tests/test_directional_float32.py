"""``mode="directional"`` on a cost that computes in float32: judged against its noise
(and the full check of a float32 cost hidden behind a Python float, whose noise looked
like kinks).

The same three float32 costs as the full check (``tests/test_float32.py``,
``tests/test_unresolved.py``), in directional mode: float32 parameters and value; float64
parameters with float32 inside behind a Python float (measured after a first pass that
failed or met "kinks", then checked again); and a large constant term, whose noise hides a
factor-2 error along every direction (WARN, never PASS). Correct gradients pass, bugs
fail, on every seed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastcheck as fc
from tests.test_float32 import grads, loss, make_mlp

SEEDS = range(12)


def _directional(seed: int, variant: str, bug: str | None):
    p, x, y = make_mlp(seed)
    if variant == "float32":
        def cost(q):
            return loss(q, x, y, np.float32)

        def grad(q):
            return grads(q, x, y, np.float32, bug=bug)
    elif variant == "hidden":  # float64 params, float32 inside, a Python float out
        p = {k: v.astype(np.float64) for k, v in p.items()}

        def cost(q):
            return float(loss(q, x, y, np.float32))

        def grad(q):
            return {k: v.astype(np.float64) for k, v in grads(q, x, y, np.float32, bug).items()}
    else:  # a large constant term: ~4 float32 digits left for the changes of J
        def cost(q):
            return loss(q, x, y, np.float32) + np.float32(1e3)

        def grad(q):
            return grads(q, x, y, np.float32, bug=bug)
    calls = [0]

    def counted(q):
        calls[0] += 1
        return cost(q)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the float32 warning, tested in test_float32
        report = fc.check(counted, grad, p, mode="directional", seed=seed)
    assert report.evaluations == calls[0]
    return report


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("variant", ["float32", "hidden"])
def test_a_correct_float32_gradient_passes_and_its_bugs_fail(seed, variant):
    right = _directional(seed, variant, None)
    assert right.verdict == "pass", right.summary()
    assert right.noise_floor and right.unresolved.size == 0
    first = right.summary().splitlines()[0]
    assert "PASS (directional)" in first and "measured noise" in first
    for bug in ("x2", "reg"):
        wrong = _directional(seed, variant, bug)
        assert not wrong.passed, (bug, wrong.summary())
        assert wrong.summary().startswith("fastcheck FAIL (directional)")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bug", [None, "x2", "reg"])
def test_noise_that_hides_a_factor_2_along_every_direction_never_passes(seed, bug):
    report = _directional(seed, "constant", bug)
    assert report.verdict == "warn", report.summary()
    assert report.passed  # nothing is called a failure without proof
    assert any("passed unresolved" in n and "float64" in n for n in report.notes)
    assert report.summary().startswith("fastcheck WARN (directional)")


def test_the_hidden_float32_cost_is_measured_only_after_a_failure_or_a_kink():
    """A first pass read with float64 floors, then the noise probes, then a second pass:
    every evaluation counted (``_directional`` asserts it), the noise note present."""
    report = _directional(0, "hidden", None)
    assert report.noise_floor
    assert any("float32" in n for n in report.notes)
    plain = _directional(0, "float32", None)
    assert report.evaluations > plain.evaluations


def test_float32_noise_taken_for_kinks_is_measured_too():
    """Seed 19: read with float64 floors, the noise of every direction looked like a kink
    (one-sided slopes that differ), the first pass located only "kinks" and read PASS with
    a missing regularisation term. Kinks found by a cost whose value is a float32 number
    now also send the check to measure the noise."""
    report = _directional(19, "hidden", "reg")
    assert not report.passed and report.n_kinks == 0, report.summary()


def _hidden_full(seed: int, bug: str | None):
    p, x, y = make_mlp(seed)
    p = {k: v.astype(np.float64) for k, v in p.items()}

    def grad(q):
        return {k: v.astype(np.float64) for k, v in grads(q, x, y, np.float32, bug).items()}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fc.check(lambda q: float(loss(q, x, y, np.float32)), grad, p)


@pytest.mark.parametrize("seed", [132, 160, 199])
def test_full_check_float32_noise_taken_for_kinks_no_longer_passes_a_bug(seed):
    """The full check too: with float64 floors these seeds put all 75 components of the
    tanh network "on kinks" and read PASS with the regularisation term missing."""
    report = _hidden_full(seed, "reg")
    assert not report.passed and report.noise_floor, report.summary()


@pytest.mark.parametrize("seed", [41, 42, 70, 98])
def test_full_check_float32_noise_taken_for_kinks_no_longer_warns_on_a_right_gradient(seed):
    """...and these read WARN "look again" on a correct gradient (73-74 "kinks")."""
    report = _hidden_full(seed, None)
    assert report.verdict == "pass" and report.n_kinks == 0, report.summary()
