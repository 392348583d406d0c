"""Precision as API.md states it: no false alarms from floating-point noise, also from a
cost that computes in float32 inside while params are float64."""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc

from . import _course as c
from .test_check_contract import _Counter


def _cost32(p, X, Y, lambd):
    q = {k: v.astype(np.float32) for k, v in p.items()}
    return c.cost(q, X.astype(np.float32), Y.astype(np.float32), np.float32(lambd))


def test_float64_params_with_a_cost_computing_in_float32_inside_no_false_alarm():
    """API.md: no false alarms from floating-point noise. A cost that casts to float32
    inside and returns a Python float (its precision invisible to fastcheck) must not make
    a correct gradient "almost certainly a bug"; real bugs still fail, in their blocks."""
    params, args = c.problem()
    counted = _Counter(_cost32)
    with pytest.warns(UserWarning, match="float64"):
        r = fc.check(counted, c.backward, params, args, backend="serial")
    assert r.passed, r.summary()
    assert "bug" not in r.summary().splitlines()[0]
    assert r.evaluations == counted.n
    for bug in ("factor-2", "missing-regularization", "transposed"):
        with pytest.warns(UserWarning, match="float64"):
            bad = fc.check(_cost32, c.backward_bug(bug), params, args, backend="serial")
        assert set(bad.failing_blocks()) == c.AFFECTED[bug]


def test_a_failing_float64_check_measures_no_noise_and_counts_right():
    params, args = c.problem()
    counted = _Counter(c.cost)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a float64 cost: no low-precision warning
        r = fc.check(counted, c.backward_bug("factor-2"), params, args, backend="serial")
    assert r.failing_blocks() == ["b1"] and r.evaluations == counted.n
