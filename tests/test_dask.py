"""The dask backend on a LocalCluster of 2 worker processes (loopback only)."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import fastcheck as fc  # noqa: E402
from fastcheck import backends  # noqa: E402
from fastcheck._inputs import prepare  # noqa: E402
from fastcheck.backends.dask import client as dask_client  # noqa: E402
from fastcheck.backends.dask import worker as dask_worker  # noqa: E402
from fastcheck.backends.numba_backend import NumbaBackend  # noqa: E402
from fastcheck.models import make_mlp  # noqa: E402
from tests import _dask_costs as costs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

REPORT_ARRAYS = ("indices", "analytic", "numeric", "abs_errors", "rel_errors", "kinds",
                 "failed")


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread each, on 127.0.0.1, no dashboard."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        try:  # the workers inherit sys.path, so they import the test costs by name
            client.run(importlib.import_module, costs.__name__)
        except ImportError:
            client.run(lambda root: sys.path.insert(0, root), str(ROOT))
        yield cluster, client


@pytest.fixture
def client(cluster):
    """The module's client, once both workers are there (one may be restarting)."""
    c = cluster[1]
    c.wait_for_workers(2, timeout=30)
    return c


def assert_same_report(a, b):
    for name in REPORT_ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.relative_error == b.relative_error
    assert a.verdict == b.verdict


def quartic_problem(n=600, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(n)
    a = rng.uniform(0.5, 2.0, n)
    return theta, (a,)


def test_evaluate_is_bitwise_equal_to_numba_in_many_tasks(client, monkeypatch):
    theta, args = quartic_problem()
    problem = prepare(costs.quartic, costs.quartic_grad, theta, args, None)
    idx = np.arange(theta.size, dtype=np.int64)
    x_plus, x_minus = theta + 1e-5, theta - 1e-5
    with NumbaBackend(problem) as local:
        expected = local.evaluate(idx, x_plus, x_minus)
    monkeypatch.setattr(dask_client, "TARGET_TASK_SECONDS", 1e-6)  # 256 tiny tasks
    with dask_client.DaskBackend(problem, client=client) as remote:
        got = remote.evaluate(idx, x_plus, x_minus)
        assert len(remote._task_bounds(theta.size)) - 1 == dask_client.MAX_TASKS
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert remote.threads == 2
    assert remote.lost_workers == 0 and remote.retries == 0


def test_mlp_report_is_bitwise_equal_to_numba(client):
    m = make_mlp("S", bug="one-element")
    kw = dict(layout=m.layout, seed=0)
    local = fc.check(m.cost, m.grad, m.theta, m.args, backend="numba", **kw)
    remote = fc.check(m.cost, m.grad, m.theta, m.args, backend="dask", client=client, **kw)
    assert remote.backend == "dask" and remote.threads == 2
    assert not remote.passed and remote.failed.size >= 1
    assert_same_report(local, remote)


def test_python_cost_on_a_mapping(client):
    rng = np.random.default_rng(1)
    params = {"W": rng.standard_normal((5, 4)), "b": rng.standard_normal(4)}
    X = rng.standard_normal((8, 5))
    local = fc.check(costs.dict_cost, costs.dict_grad, params, (X,), backend="serial")
    remote = fc.check(costs.dict_cost, costs.dict_grad, params, (X,), backend="dask",
                      client=client)
    assert remote.passed
    assert [b.name for b in remote.blocks] == ["W", "b"]
    assert_same_report(local, remote)


@pytest.mark.parametrize("cost, local_backend", [(costs.njit_raises, "numba"),
                                                 (costs.python_raises, "serial")],
                         ids=["njit", "python"])
def test_cost_raising_on_a_worker_names_the_component(client, cost, local_backend):
    theta = np.linspace(-1.0, 0.5, 40)
    theta[17] = 1.0
    errors = []
    for backend, c in ((local_backend, None), ("dask", client)):
        with pytest.raises(fc.CostEvaluationError) as info:
            fc.check(cost, costs.squares_grad, theta, (17,), backend=backend, client=c)
        errors.append(info.value)
    local, remote = errors
    assert remote.flat_index == local.flat_index == 17
    assert remote.name == local.name
    assert str(remote) == str(local)
    assert "theta[bad] went above 1" in str(remote)
    assert isinstance(remote.__cause__, ValueError)


def test_default_client_is_used_and_its_absence_explained(client):
    theta, args = quartic_problem(50)
    with pytest.raises(ValueError, match="client="):
        fc.check(costs.quartic, costs.quartic_grad, theta, args, backend="dask")
    with client.as_current():
        report = fc.check(costs.quartic, costs.quartic_grad, theta, args, backend="dask")
    assert report.passed and report.backend == "dask"


def test_client_with_another_backend_is_an_error(client):
    theta, args = quartic_problem(10)
    with pytest.raises(ValueError, match="backend='dask'"):
        fc.check(costs.quartic, costs.quartic_grad, theta, args, backend="numba",
                 client=client)


def test_a_cost_the_workers_cannot_import_is_explained(client, tmp_path, monkeypatch):
    (tmp_path / "only_here.py").write_text("def cost(t):\n    return float((t**2).sum())\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # this process only, not the workers
    only_here = importlib.import_module("only_here")
    with pytest.raises(fc.FastcheckError, match="importable on every worker"):
        fc.check(only_here.cost, lambda t: 2 * t, np.ones(3), backend="dask", client=client)


def test_cli_demo_on_a_running_scheduler(cluster, client, capsys):
    from fastcheck import cli

    args = ["demo", "--size", "S", "--bug", "sign-flip", "--backend", "dask"]
    assert cli.main([*args, "--scheduler", cluster[0].scheduler_address]) == cli.EXIT_FAIL
    out = capsys.readouterr().out
    assert "backend dask" in out and "W2" in out
    assert cli.main(["demo", "--scheduler", "tcp://127.0.0.1:1"]) == cli.EXIT_USAGE
    assert "--scheduler needs --backend dask" in capsys.readouterr().err


def test_without_dask_the_message_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    for name in ("fastcheck.backends.dask", "fastcheck.backends.dask.client"):
        monkeypatch.delitem(sys.modules, name)
    problem = prepare(costs.quartic, costs.quartic_grad, *quartic_problem(5), None)
    with pytest.raises(ImportError, match=r'pip install "fastcheck\[dask\]"'):
        backends.create_backend("dask", problem, None, client=None)


def test_complex_step_is_refused_with_a_clear_message(client):
    theta, args = quartic_problem(20)
    with pytest.raises(ValueError, match=r"backend='dask' cannot evaluate method='complex'"):
        fc.check(costs.quartic, costs.quartic_grad, theta, args, backend="dask",
                 client=client, method="complex")


def test_importing_fastcheck_does_not_import_dask():
    code = "import sys, fastcheck; print(sorted({'dask', 'distributed'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_assembly_rejects_missing_or_duplicated_components():
    part = dask_worker.TaskResult(0, np.zeros(2), np.zeros(2))
    with pytest.raises(fc.FastcheckError, match="1 component"):
        dask_client._assemble(3, [part])
    with pytest.raises(fc.FastcheckError, match="duplicated"):
        dask_client._assemble(2, [part, part])


def _kill_one_worker_when(client, monkeypatch, method: str, delay: float):
    """Kill (SIGKILL) one worker process ``delay`` s after DaskBackend.<method> first runs;
    returns the list that collects the backends made by fc.check."""
    victim = sorted(client.nthreads())[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    timer = threading.Timer(delay, os.kill, (pid, signal.SIGKILL))
    original = getattr(dask_client.DaskBackend, method)
    made = []

    def armed(self, *args, **kwargs):
        if not made:
            made.append(self)
            timer.start()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(dask_client.DaskBackend, method, armed)
    return made, timer


def _check_killing_one_worker(client, monkeypatch, method, delay, theta, seconds):
    """fc.check on dask of ``slow_cost`` (``seconds`` per evaluation) while one worker is
    killed; returns that report, the serial one, and the dask backend that ran."""
    made, timer = _kill_one_worker_when(client, monkeypatch, method, delay)
    try:
        remote = fc.check(costs.slow_cost, costs.slow_grad, theta, (seconds,), backend="dask",
                          client=client)
    finally:
        timer.cancel()
    local = fc.check(costs.slow_cost, costs.slow_grad, theta, (0.0,), backend="serial")
    (runner,) = made
    return remote, local, runner


def test_a_worker_killed_mid_check_still_gives_the_full_report(client, monkeypatch):
    """120 evaluations of 50 ms in 6 tasks on 2 workers; one is killed 0.5 s into them."""
    theta = np.random.default_rng(2).standard_normal(60)
    remote, local, runner = _check_killing_one_worker(client, monkeypatch, "evaluate", 0.5,
                                                      theta, 0.05)
    assert remote.n_checked == theta.size and remote.passed
    assert_same_report(local, remote)
    assert runner.lost_workers >= 1
    assert runner.retries >= 1  # the task running on the killed worker ran again
    (event,) = runner.events()
    assert "left the cluster" in event and "exactly once" in event


def test_a_worker_killed_while_the_data_is_shipped(client, monkeypatch):
    """Killed during the scatter or the warm-up: the check still completes, correctly."""
    theta = np.random.default_rng(3).standard_normal(40)
    remote, local, runner = _check_killing_one_worker(client, monkeypatch, "_scatter", 0.0,
                                                      theta, 0.02)
    assert_same_report(local, remote)
    assert runner.lost_workers >= 1
