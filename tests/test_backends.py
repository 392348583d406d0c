"""The numba, threads and serial backends compute the same numbers."""

import threading
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


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_a_short_launch_on_a_busy_machine_runs_on_one_thread(mlp_s, monkeypatch):
    """All threads of a launch wait for the slowest; after a short launch took far longer
    than its work (another process held a core), short launches run on one thread for a
    while and say why. Same numbers; threads= is obeyed."""
    from fastcheck.backends import numba_backend

    before = numba.get_num_threads()
    monkeypatch.setattr(numba_backend, "_one_thread_until", [0.0])
    monkeypatch.setattr(numba_backend, "CONTENDED_SLOWDOWN", 1e9)  # never slow enough
    quiet = _check(mlp_s, backend="numba")
    assert quiet.threads == min(2, numba.config.NUMBA_NUM_THREADS)
    assert not any("ran on 1 thread" in n for n in quiet.notes)
    monkeypatch.setattr(numba_backend, "CONTENDED_SLOWDOWN", 0.0)  # every launch is "slow"
    marked = _check(mlp_s, backend="numba")  # ran on 2 threads, and marks the machine busy
    assert marked.threads == quiet.threads and numba_backend._one_thread_until[0] > 0
    busy = _check(mlp_s, backend="numba")
    assert busy.threads == 1 and busy.passed
    assert any("ran on 1 thread instead of" in n for n in busy.notes), busy.notes
    assert busy.numeric.tobytes() == quiet.numeric.tobytes()
    assert numba.get_num_threads() == before
    asked = _check(mlp_s, backend="numba", threads=2)  # the user's choice stands
    assert asked.threads == min(2, numba.config.NUMBA_NUM_THREADS)
    numba_backend._one_thread_until[0] = 0.0  # the busy spell is over: all threads again
    monkeypatch.setattr(numba_backend, "CONTENDED_SLOWDOWN", 1e9)
    assert _check(mlp_s, backend="numba").threads == quiet.threads


def test_a_long_launch_keeps_every_thread_on_a_busy_machine(mlp_m, monkeypatch):
    from fastcheck.backends import numba_backend

    monkeypatch.setattr(numba_backend, "_one_thread_until", [float("inf")])
    monkeypatch.setattr(numba_backend, "CONTENDED_LAUNCH_SECONDS", 1e-9)
    assert _check(mlp_m, backend="numba").threads == min(2, numba.config.NUMBA_NUM_THREADS)


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


def test_threads_backend_catches_a_race_that_zeroes_the_difference():
    # A cost object whose bias is only updated from the main thread: on the pool's threads
    # it ignores every perturbation of the bias, so J+ == J- there and the numeric
    # derivative is 0, exactly what a missing (all-zero) bias gradient says.
    class Model:
        def __init__(self, theta):
            self.bias = theta[:3].copy()

        def __call__(self, x):
            if threading.current_thread() is threading.main_thread():
                self.bias = x[:3].copy()
            return float(np.sum(np.sin(x[3:])) + np.sum(self.bias**2))

    theta = np.linspace(0.5, 1.5, 400)
    missing_bias = np.concatenate([np.zeros(3), np.cos(theta[3:])])
    with pytest.raises(fc.ThreadSafetyError, match="serial"):
        fc.check(Model(theta), missing_bias, theta, backend="threads", threads=2)
    # serially the same cost and gradient fail plainly, in the bias
    report = fc.check(Model(theta), missing_bias, theta, backend="serial")
    assert list(report.failed) == [0, 1, 2]


def test_threads_backend_zero_gradients_of_a_safe_cost_pass():
    theta = np.linspace(-1.0, 1.0, 30)

    def cost(x):  # the second half of theta is not used: gradient exactly 0 there
        return float(np.sum(np.sin(x[:15])))

    grad = np.concatenate([np.cos(theta[:15]), np.zeros(15)])
    report = fc.check(cost, grad, theta, backend="threads", threads=2)
    assert report.passed
    # the 15 exact zeros were re-verified serially (2 evaluations each) besides the picks
    assert report.evaluations >= 2 + 2 * 30 + 2 * 15


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


def test_thread_safety_error_names_the_side_that_differed():
    """The message shows the value that changed (J+ or J-), as two different numbers."""
    from fastcheck._inputs import prepare
    from fastcheck.backends import create_backend

    theta = np.linspace(0.1, 1.0, 5)
    problem = prepare(lambda x: float(np.sum(x**2)), lambda x: 2 * x, theta, (), None)
    idx = np.array([2], dtype=np.int64)
    xp, xm = theta[idx] + 1e-3, theta[idx] - 1e-3
    with create_backend("threads", problem, 2) as runner:
        jp, jm = runner.evaluate(idx, xp, xm)
        with pytest.raises(fc.ThreadSafetyError) as caught:
            runner.verify(idx, xp, xm, jp, jm + 0.5)
    message = str(caught.value)
    assert "J(theta - h) at [2]" in message or "J(theta - h) at" in message
    assert f"{float(jm[0]):.17g} instead of {float(jm[0] + 0.5):.17g}" in message
    assert "np.float64" not in message
