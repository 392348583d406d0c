"""The backend protocol (``backends/base.py``): defaults, capabilities, shared helpers."""

from __future__ import annotations

import numpy as np
import pytest

import fastcheck as fc
from fastcheck import backends
from fastcheck._inputs import prepare
from fastcheck.backends.base import Backend, ensure_unmodified, require, short_error

LOCAL = ("numba", "threads", "serial")


def _problem():
    theta = np.array([0.5, -1.0, 2.0])
    return prepare(lambda t: float(np.sum(t**2)), lambda t: 2 * t, theta, (), None)


@pytest.mark.parametrize("name", LOCAL)
def test_every_local_backend_is_a_backend_and_can_do_complex(name):
    cls = backends.backend_class(name)
    assert issubclass(cls, Backend) and cls.name == name
    require(cls, "complex")  # does not raise
    require(cls, "central")


def test_defaults_verify_nothing_report_no_events_and_close_on_exit():
    runner = backends.create_backend("serial", _problem(), None)
    idx = np.array([0], dtype=np.int64)
    closed = []
    runner.close = lambda: closed.append(True)  # the instance's close is what exit calls
    with runner as entered:
        assert entered is runner
        jp, jm = runner.evaluate(idx, np.array([0.6]), np.array([0.4]))
        assert runner.verify(idx, np.array([0.6]), np.array([0.4]), jp, jm) is None
        assert runner.events() == []
    assert closed == [True]


def test_a_backend_without_complex_is_refused_before_it_runs():
    class RealOnly(Backend):
        name = "real-only"

        def evaluate(self, indices, x_plus, x_minus):  # pragma: no cover - never reached
            raise AssertionError("a refused backend must not evaluate")

    with pytest.raises(ValueError, match=r"backend='real-only' cannot evaluate "
                                         r"method='complex'"):
        require(RealOnly, "complex")
    require(RealOnly, "central")
    require(RealOnly, "richardson")
    with pytest.raises(ValueError, match="method='complex'"):  # the default, if called
        RealOnly().evaluate_complex(np.zeros(1, dtype=np.int64), np.ones(1))
    with pytest.raises(NotImplementedError, match="evaluate"):
        Backend().evaluate(np.zeros(1, dtype=np.int64), np.ones(1), np.ones(1))


def test_a_class_outside_the_hierarchy_is_judged_by_what_it_defines():
    class WithComplex:
        name = "plain"

        def evaluate_complex(self, indices, steps):  # pragma: no cover - not called
            return steps

    class WithoutComplex:
        name = "plain"

    require(WithComplex, "complex")
    with pytest.raises(ValueError, match="backend='plain'"):
        require(WithoutComplex, "complex")


def test_dask_and_complex_are_refused_by_create_backend_without_a_cluster():
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match=r"backend='dask' cannot evaluate method='complex'"):
        backends.create_backend("dask", _problem(), None, method="complex", client=None)


def test_ensure_unmodified_restores_and_names_the_component():
    theta = np.array([1.0, 2.0, 3.0])
    x = theta.copy()
    ensure_unmodified(x, theta)  # unchanged: nothing happens
    x[2] = 7.0
    with pytest.raises(fc.FastcheckError, match="component 2 changed"):
        ensure_unmodified(x, theta)
    assert np.array_equal(x, theta)


def test_short_error_keeps_two_lines_without_numba_context():
    exc = RuntimeError("first\n\nDuring: typing\nsecond\nthird\n" + "x" * 400)
    assert short_error(exc) == "first second"
    assert len(short_error(RuntimeError("y" * 1000))) == 300
