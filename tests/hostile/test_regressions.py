"""Bugs the hostile suite found (fixed in f55cf10): regression tests."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastcheck as fc

from .conftest import (
    quad_cost,
    quad_grad,
)


# -- bugs the suite found, fixed in f55cf10 (regression tests) ---------------------------------
def test_layout_size_does_not_overflow():
    """A Layout whose size does not fit int64 is a ValueError, not a silent size of 0."""
    with pytest.raises(ValueError, match="Layout"):
        fc.Layout({"a": (2**40, 2**40)})


@pytest.mark.parametrize("block", [np.array([1 + 1j, 2]), np.array(["1", "2"])],
                         ids=["complex", "string"])
def test_layout_flatten_rejects_non_real_blocks(block):
    """flatten never drops an imaginary part or fails inside numpy: a TypeError naming
    the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="'a'"):
            fc.Layout({"a": (2,)}).flatten({"a": block})


def test_eps_below_the_spacing_of_theta_is_an_error():
    """eps so small that theta + h == theta is a ValueError naming eps, not a report of
    0/0 "failures" of a correct gradient."""
    with pytest.raises(ValueError, match="eps"):
        fc.check(quad_cost, quad_grad(np.ones(3)), np.ones(3), eps=1e-300)


def test_no_runtime_warning_from_fastcheck_on_a_nonfinite_block():
    """A block whose relative errors are all NaN warns nothing (``pytest -W error``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=RuntimeWarning, module=r"fastcheck\.")
        rep = fc.check(quad_cost, np.full(3, np.nan), np.ones(3))
    assert not rep.passed


def test_nonfinite_component_has_no_small_relative_error():
    """A NaN component's relative error is NaN, not 0 (which the bands counted as <1e-7)."""
    theta = np.linspace(-1.0, 1.0, 4)
    grad = quad_grad(theta)
    grad[1] = np.nan
    rep = fc.check(quad_cost, grad, theta)
    assert rep.kinds[1] == "nonfinite"
    assert not rep.rel_errors[1] < 1e-7


def test_evaluations_count_every_cost_call_with_grad_true():
    """``report.evaluations`` is the number of cost calls, also with grad=True."""
    calls = [0]

    def cost(x):
        calls[0] += 1
        return quad_cost(x), quad_grad(x)

    rep = fc.check(cost, True, np.linspace(-1.0, 1.0, 3))
    assert rep.evaluations == calls[0]
