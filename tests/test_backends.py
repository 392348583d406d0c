"""The numba, threads and serial backends compute the same numbers."""

import time

import numba
import numpy as np
import pytest

import fastcheck as fc
from fastcheck.models import cost_python


def _check(model, **kw):
    return fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout, **kw)


def test_numba_threads_1_and_2_are_bitwise_identical(mlp_m):
    one = _check(mlp_m, backend="numba", threads=1)
    two = _check(mlp_m, backend="numba", threads=2)
    assert one.threads == 1 and two.threads == min(2, numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(one.numeric, two.numeric)
    assert one.numeric.tobytes() == two.numeric.tobytes()
    many = _check(mlp_m, backend="numba", threads=7)  # more chunks than threads
    assert many.numeric.tobytes() == one.numeric.tobytes()


def test_numba_serial_threads_agree(mlp_s):
    m = mlp_s
    reports = {name: _check(m, backend=name, threads=2) for name in ("numba", "serial", "threads")}
    base = reports["numba"].numeric
    for name, rep in reports.items():
        assert rep.backend == name and rep.passed, name
        np.testing.assert_allclose(rep.numeric, base, rtol=1e-12, atol=0, err_msg=name)


def test_python_cost_on_serial_and_threads_agree_with_numba(mlp_s):
    m = mlp_s
    base = _check(m, backend="numba").numeric
    for name in ("serial", "threads"):
        rep = fc.check(cost_python, m.grad, m.theta, m.args, layout=m.layout, backend=name,
                       threads=2)
        assert rep.passed and rep.backend == name
        # a different implementation of the same cost: equal up to roundoff / h
        np.testing.assert_allclose(rep.numeric, base, rtol=1e-6, atol=1e-9, err_msg=name)


def test_numba_thread_count_restored(mlp_s):
    before = numba.get_num_threads()
    _check(mlp_s, backend="numba", threads=1)
    assert numba.get_num_threads() == before


def test_numba_thread_count_restored_after_cost_error():
    @numba.njit
    def raising(x):
        if x[3] > 10.0:
            raise ValueError("too big")
        return np.sum(x * x)

    before = numba.get_num_threads()
    theta = np.full(8, 10.0 - 1e-7)
    with pytest.raises(fc.CostEvaluationError, match=r"theta\[3\]"):
        fc.check(raising, lambda x: 2 * x, theta, backend="numba", threads=1)
    assert numba.get_num_threads() == before
    assert np.all(theta == 10.0 - 1e-7)


def test_auto_picks_numba_for_njit_and_serial_otherwise(mlp_s):
    m = mlp_s
    assert _check(m).backend == "numba"
    rep = fc.check(cost_python, m.grad, m.theta, m.args, layout=m.layout)
    assert rep.backend == "serial"


def test_threads_backend_detects_thread_unsafe_cost():
    class Model:  # parameters kept on a shared object, as much public code does
        w = None

    model = Model()
    theta = np.linspace(0.1, 1.0, 200)

    def cost(x):
        model.w = x.copy()
        time.sleep(1e-4)  # lets another thread overwrite model.w, as real work would
        return float(np.sum(np.sin(model.w) ** 2))

    def grad(x):
        return 2 * np.sin(x) * np.cos(x)

    assert fc.check(cost, grad, theta, backend="serial").passed
    with pytest.raises(fc.ThreadSafetyError, match="serial"):
        fc.check(cost, grad, theta, backend="threads", threads=2)


def test_numba_backend_with_plain_function_is_compiled():
    def cost(x):
        return np.sum(x**3)

    rep = fc.check(cost, lambda x: 3 * x**2, np.linspace(-1, 1, 10), backend="numba")
    assert rep.backend == "numba" and rep.passed


def test_numba_backend_refuses_uncompilable_cost_cleanly():
    def cost(x):
        return float(np.sum(x**2)) + len({"a": object()})

    with pytest.raises(TypeError, match="numba") as info:
        fc.check(cost, lambda x: 2 * x, np.ones(4), backend="numba")
    assert len(str(info.value).splitlines()) <= 2


def test_numba_backend_refuses_mapping_params():
    with pytest.raises(TypeError, match="flat"):
        fc.check(lambda p: float(np.sum(p["w"] ** 2)), lambda p: {"w": 2 * p["w"]},
                 {"w": np.ones(3)}, backend="numba")
