"""backend="processes": bitwise serial's numbers on the costs people write, serial's
errors, no process left behind (errors, a dying worker, Ctrl-C), and auto's choice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import fastcheck as fc
from fastcheck.backends import choose_backend, process_worker, processes
from fastcheck.binding import bind_params
from fastcheck.models import course

REPO = Path(__file__).resolve().parent.parent
FORK = processes.START_METHOD == "fork"


def _workers() -> list[psutil.Process]:
    """Live child processes, except the resource trackers that multiprocessing and loky
    start once per session (they exit with this process)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and \
                    "resource_tracker" not in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.fixture(autouse=True)
def no_process_left():
    """Every test: the children this process had before are all it has after."""
    before = {p.pid for p in _workers()}
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [p for p in _workers() if p.pid not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == [], f"worker processes left: {left}"


@pytest.fixture(scope="module")
def small():
    """The course network at S (N = 499), dict params."""
    return course.make_course("S")


def _both(cost, grad, params, args=(), **kw):
    """The same check on serial and on processes (2 workers)."""
    serial = fc.check(cost, grad, params, args, backend="serial", seed=0, **kw)
    procs = fc.check(cost, grad, params, args, backend="processes", threads=2, seed=0, **kw)
    return serial, procs


def _assert_same(serial, procs):
    assert procs.backend == "processes" and procs.threads == 2
    assert serial.passed == procs.passed and serial.verdict == procs.verdict
    np.testing.assert_array_equal(serial.indices, procs.indices)
    # bitwise: the same loop on the same points, only in other processes
    assert serial.numeric.tobytes() == procs.numeric.tobytes()
    np.testing.assert_array_equal(serial.kinds, procs.kinds)
    assert serial.evaluations == procs.evaluations


# -- the numbers ---------------------------------------------------------------------------
def test_dict_cost_is_bitwise_serial(small):
    params = {k: v.copy() for k, v in small.params.items()}
    serial, procs = _both(course.cost, course.backward, params, small.args)
    _assert_same(serial, procs)
    assert procs.passed
    for name, value in small.params.items():  # the caller's arrays are untouched
        np.testing.assert_array_equal(params[name], value)


def test_grad_true_cost_is_bitwise_serial(small):
    _assert_same(*_both(course.cost_and_grads, True, small.params, small.args, sample=120))


def test_flat_numpy_cost_is_bitwise_serial(small):
    layout = fc.Layout({k: v.shape for k, v in small.params.items()})

    def flat_cost(theta, X, Y, lambd):
        return course.cost(course.vector_to_dictionary(theta, small.params), X, Y, lambd)

    def flat_grad(theta, X, Y, lambd):
        g = course.backward(course.vector_to_dictionary(theta, small.params), X, Y, lambd)
        return np.concatenate([g["d" + k].ravel() for k in small.params])

    theta = layout.flatten(small.params)
    _assert_same(*_both(flat_cost, flat_grad, theta, small.args, layout=layout, sample=150))


def test_bind_params_object_is_bitwise_serial_and_restored():
    class Net:  # parameters on the object, as assignment code keeps them
        def __init__(self):
            rng = np.random.default_rng(1)
            self.params = {"W": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)}
            self.X = rng.standard_normal((8, 5))

        def loss(self):
            z = np.tanh(self.X @ self.params["W"] + self.params["b"])
            dz = (1 - z ** 2) * 2 * z
            return float(np.sum(z ** 2)), {"W": self.X.T @ dz, "b": dz.sum(axis=0)}

    net = Net()
    before = {k: v.copy() for k, v in net.params.items()}
    b = bind_params(net, "params", net.loss, grad=True)
    _assert_same(*_both(b.cost, b.grad, b.params))
    for name, value in before.items():
        np.testing.assert_array_equal(net.params[name], value)


def test_richardson_and_complex_methods_are_bitwise_serial(small):
    _assert_same(*_both(course.cost, course.backward, small.params, small.args,
                        method="richardson", sample=60))
    theta = np.linspace(-1, 1, 80)
    serial, procs = _both(lambda x: np.sum(np.sin(x) * x ** 2),
                          lambda x: np.cos(x) * x ** 2 + 2 * x * np.sin(x), theta,
                          method="complex")
    _assert_same(serial, procs)
    assert procs.method == "complex" and procs.passed


def test_stateful_object_and_reseeding_costs_give_serials_verdict():
    class Model:  # writes the parameters onto itself, then reads them back
        w = None

        def cost(self, theta):
            self.w = theta.copy()
            time.sleep(0)  # a chance for another thread to run, were there one
            return float(np.sum(self.w ** 3))

    model = Model()
    theta = np.linspace(0.1, 1.0, 120)
    _assert_same(*_both(model.cost, lambda x: 3 * x ** 2, theta))

    def reseeding(x):  # a global RNG reseeded inside the cost (fixed "noise")
        np.random.seed(7)  # noqa: NPY002 - the legacy global RNG is the point
        return float(np.sum(x ** 2) + 1e-3 * np.random.standard_normal())  # noqa: NPY002

    serial, procs = _both(reseeding, lambda x: 2 * x, theta)
    _assert_same(serial, procs)
    assert procs.passed


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_blas_at_one_thread_in_the_workers_only():
    before = _blas_threads()

    def cost(x):  # at the perturbed points (in the workers), BLAS must be at one thread
        if np.any(x != 1.0) and any(n != 1 for n in _blas_threads()):
            raise RuntimeError(f"BLAS threads {_blas_threads()} in a worker")
        return float(np.sum(x ** 2))

    assert before, "no BLAS library loaded: nothing to check"
    report = fc.check(cost, lambda x: 2 * x, np.ones(6), backend="processes", threads=2)
    assert report.passed
    assert _blas_threads() == before  # the caller's setting is untouched
    if any(n != 1 for n in before):  # the detector works: serial runs at the caller's
        with pytest.raises(fc.CostEvaluationError, match="BLAS threads"):
            fc.check(cost, lambda x: 2 * x, np.ones(6), backend="serial")


def _threads_of_this_process() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not FORK or not Path("/proc/self/task").is_dir(),
                    reason="forked workers and /proc only")
def test_forked_workers_start_no_blas_threads(monkeypatch):
    """A forked worker sets BLAS to one thread without openblas_set_num_threads, which
    after a fork restarts OpenBLAS's thread pool (threads that spin ~25 ms each, stealing
    the evaluations' CPU), and a product large enough for several BLAS threads then runs
    on one: one thread per worker, before and after it."""
    big = np.random.default_rng(0).standard_normal((300, 300))

    def cost(x):  # at the perturbed points (in the workers): this process has one thread
        if np.any(x != 1.0):
            before = _threads_of_this_process()
            product = big @ big  # multi-threaded BLAS would start its pool here
            if before != 1 or _threads_of_this_process() != 1:
                raise RuntimeError(f"{before}, then {_threads_of_this_process()} "
                                   "threads in a worker")
            return float(np.sum(x ** 2) + 0.0 * product[0, 0])
        return float(np.sum(x ** 2))

    before = _blas_threads()
    report = fc.check(cost, lambda x: 2 * x, np.ones(8), backend="processes", threads=2)
    assert report.passed and _blas_threads() == before
    if any(n != 1 for n in before):  # the detector fires when a worker limits BLAS itself
        install = process_worker._install
        monkeypatch.setattr(process_worker, "_install",
                            lambda key, problem, forked=False: install(key, problem))
        with pytest.raises(fc.CostEvaluationError, match="threads in a worker"):
            fc.check(cost, lambda x: 2 * x, np.ones(8), backend="processes", threads=2)


def test_finding_the_blas_libraries_is_not_counted_as_start_up(monkeypatch):
    """The first check of a process imports scipy.linalg to find the BLAS libraries
    (~0.15 s): auto must not take that for the workers' start-up (here made 1 s)."""
    real, calls = processes._blas_controller, []

    def slow_first_time():
        if not calls:
            time.sleep(1.0)
        calls.append(1)
        return real()

    monkeypatch.setattr(processes, "_blas_controller", slow_first_time)
    monkeypatch.setattr(processes, "_measured_startup", {})
    fc.check(lambda x: float(np.sum(x ** 2)), lambda x: 2 * x, np.ones(8),
             backend="processes", threads=2)
    assert calls, "the BLAS libraries were not looked up"
    assert processes._measured_startup[processes.START_METHOD] < 0.4  # per worker


# -- early stop and partial results ---------------------------------------------------------
def test_early_stop_matches_serial(small):
    def wrong(params, *args):  # the regularisation of W2 is missing
        g = course.backward(params, *args)
        g["dW2"] = g["dW2"] - course.LAMBD / args[0].shape[1] * params["W2"]
        return g

    serial, procs = _both(course.cost, wrong, small.params, small.args, max_failures=3)
    _assert_same(serial, procs)
    assert not procs.passed and "max_failures=3" in procs.stop_reason
    serial, procs = _both(course.cost, wrong, small.params, small.args, sample="auto")
    _assert_same(serial, procs)
    assert procs.stop_reason == serial.stop_reason


def _raising(x):
    if x[37] > 0.5 + 1e-9:
        raise ValueError("boom")
    return float(np.sum(x ** 2))


def test_cost_raising_in_a_worker_is_serials_error():
    theta = np.full(300, 0.5)
    errors = {}
    for backend in ("serial", "processes"):
        with pytest.raises(fc.CostEvaluationError) as info:
            fc.check(_raising, lambda x: 2 * x, theta, backend=backend, threads=2)
        errors[backend] = info.value
    procs, serial = errors["processes"], errors["serial"]
    assert str(procs) == str(serial) and "theta[37]" in str(procs)
    assert procs.flat_index == serial.flat_index == 37 and procs.name == serial.name
    assert isinstance(procs.__cause__, ValueError)
    assert procs.partial_report is not None
    assert np.all(theta == 0.5)


def test_cost_writing_into_theta_is_serials_error():
    def writes(x):
        x[0] = 3.0
        return float(np.sum(x))

    with pytest.raises(fc.FastcheckError, match="cost modified the parameters"):
        fc.check(writes, np.ones(50), np.zeros(50), backend="processes", threads=2)


def test_worker_dying_names_the_chunk_and_stops_the_others():
    def dies(x):
        if x[150] != 0.25:
            os._exit(1)
        time.sleep(0.0002)
        return float(np.sum(x ** 2))

    theta = np.full(400, 0.25)
    t0 = time.monotonic()
    with pytest.raises(fc.FastcheckError, match=r"worker process died \(exit code 1\)") as info:
        fc.check(dies, lambda x: 2 * x, theta, backend="processes", threads=2)
    assert time.monotonic() - t0 < 10
    assert "chunk of 256 component(s) theta[0] (flat index 0) to theta[255]" in str(info.value)
    assert info.value.partial_report is not None


def test_worker_killed_by_a_signal_is_named():
    def segfaults(x):
        if x[3] != 1.0:
            os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
        return float(np.sum(x))

    with pytest.raises(fc.FastcheckError, match="killed by signal SIGKILL"):
        fc.check(segfaults, np.ones(40), np.ones(40), backend="processes", threads=2)


# -- Ctrl-C ------------------------------------------------------------------------------
INTERRUPT_SCRIPT = r'''
import json, signal, sys, time
import numpy as np
import psutil
import fastcheck as fc

signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell ignores it

def slow(x):  # defined in __main__: the workers get it by fork, not by name
    time.sleep(0.002)
    return float(np.sum(x * x))

theta = np.linspace(-1.0, 1.0, 5000)
snapshot = theta.copy()
print("READY", flush=True)
result = {}
try:
    fc.check(slow, lambda x: 2 * x, theta, backend="processes", threads=2)
    result["outcome"] = "finished"
except KeyboardInterrupt as exc:
    result["caught_at"] = time.monotonic()
    rep = getattr(exc, "partial_report", None)
    result.update(outcome="KeyboardInterrupt", partial=isinstance(rep, fc.Report),
                  n_checked=getattr(rep, "n_checked", None))
result["unchanged"] = bool(np.array_equal(theta, snapshot))
result["children"] = [p.pid for p in psutil.Process().children(recursive=True)]
print(json.dumps(result), flush=True)
'''


def test_ctrl_c_ends_within_two_seconds_and_leaves_no_process(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPT_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    workers: list[int] = []
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:  # the workers are busy
            workers = [p.pid for p in parent.children(recursive=True)]
            time.sleep(0.05)
        assert len(workers) >= 2, "the workers never started"
        time.sleep(1.5)  # the first chunk (256 components, ~0.5 s) is done
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outcome"] == "KeyboardInterrupt", (result, err)
    assert result["caught_at"] - sent < 2.0, f"took {result['caught_at'] - sent:.2f} s"
    assert result["partial"] and result["n_checked"] > 0
    assert result["unchanged"] and result["children"] == []
    assert not [pid for pid in workers if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert proc.returncode == 0, err


# -- auto ----------------------------------------------------------------------------------
def test_auto_stays_serial_on_a_tiny_check(small):
    report = fc.check(course.cost, course.backward, small.params, small.args, sample=20)
    assert report.backend == "serial"
    assert not any("backend='auto'" in n for n in report.notes)  # serial goes unsaid


def test_auto_says_why_a_long_check_stays_serial(small):
    import dataclasses

    problem = fc.check.__globals__["prepare"](course.cost, course.backward, small.params,
                                              small.args, None)
    slow = dataclasses.replace(problem, cost_seconds=1e-3)  # 1 s serially
    name, why = choose_backend("auto", slow, threads=2)
    assert name == "processes" and "chose processes" in why and "2 worker" in why
    # a start-up that costs more than the check saves: serial, and said so
    saved = dict(processes._measured_startup)
    try:
        processes._measured_startup[processes.START_METHOD] = 1.0
        name, why = choose_backend("auto", slow, threads=2)
    finally:
        processes._measured_startup.clear()
        processes._measured_startup.update(saved)
    assert name == "serial" and "too short to pay for starting worker processes" in why


def test_auto_picks_processes_for_a_long_check():
    def slow(x):  # ~2 ms: 600 evaluations are ~1.2 s serially
        time.sleep(0.002)
        return float(np.sum(x ** 2))

    report = fc.check(slow, lambda x: 2 * x, np.linspace(0, 1, 300), threads=2)
    assert report.backend == "processes" and report.passed
    assert any("chose processes" in n for n in report.notes)


def test_auto_estimate(small):
    import dataclasses

    problem = fc.check.__globals__["prepare"](course.cost, course.backward, small.params,
                                              small.args, None)
    fast = dataclasses.replace(problem, cost_seconds=1e-6)
    slow = dataclasses.replace(problem, cost_seconds=1e-3)
    assert choose_backend("auto", fast, threads=2)[0] == "serial"
    assert choose_backend("auto", slow, threads=2)[0] == "processes"
    assert choose_backend("auto", slow, threads=1)[0] == "serial"  # one core
    assert choose_backend("auto", slow, 10, threads=2)[0] == "serial"  # 10 components
    assert choose_backend("serial", slow) == ("serial", None)


def _check_in_a_pool_worker(backend):
    import dataclasses

    cost = lambda x: float(np.sum(x ** 2))  # noqa: E731
    if backend == "auto":  # a long check (1 ms per evaluation): processes, were it allowed
        problem = fc.check.__globals__["prepare"](cost, lambda x: 2 * x, np.ones(500), (),
                                                  None)
        return choose_backend("auto", dataclasses.replace(problem, cost_seconds=1e-3),
                              threads=2)
    return fc.check(cost, lambda x: 2 * x, np.ones(5), backend=backend).backend


def test_a_daemonic_process_stays_serial():
    import multiprocessing as mp

    if not FORK:
        pytest.skip("the pool below forks")
    with mp.get_context("fork").Pool(1) as pool:
        name, why = pool.apply(_check_in_a_pool_worker, ("auto",))
        assert name == "serial" and "daemonic" in why
        with pytest.raises(fc.FastcheckError, match="daemonic"):
            pool.apply(_check_in_a_pool_worker, ("processes",))


# -- where fork is not available: loky, cloudpickle -----------------------------------------
def test_unpicklable_cost_is_a_type_error_naming_it(monkeypatch):
    monkeypatch.setattr(processes, "START_METHOD", "loky")
    lock = threading.Lock()

    def cost(x, guard):
        with guard:
            return float(np.sum(x ** 2))

    with pytest.raises(TypeError, match=r"args\[0\] \(lock\) .*cannot be pickled"):
        fc.check(cost, lambda x, g: 2 * x, np.ones(10), args=(lock,), backend="processes",
                 threads=2)


def test_loky_workers_take_a_closure_bitwise_serial(monkeypatch):
    pytest.importorskip("loky")
    monkeypatch.setattr(processes, "START_METHOD", "loky")
    scale = 3.0
    theta = np.linspace(-1, 1, 64)
    try:
        serial, procs = _both(lambda x: scale * float(np.sum(x ** 3)),
                              lambda x: 3 * scale * x ** 2, theta)
        _assert_same(serial, procs)
    finally:
        processes.shutdown_workers()
