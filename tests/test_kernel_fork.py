"""The first check of an importable njit cost compiles its kernel in a forked child.

Each case runs a fresh interpreter on a fresh ``NUMBA_CACHE_DIR`` (the test process has
compiled and cached long before), on a small cost written as a module of its own. The
child process prints what it saw as JSON: forks, the kernel's disk-cache hits and misses
(a miss is an in-process compile), a digest of the numeric gradient, whether any child
process is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastcheck import _kernel_fork

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not _kernel_fork._AVAILABLE, reason="fork: Linux only")

COST_MODULE = """
import numpy as np
from numba import njit


@njit
def cost(theta, a):
    s = 0.0
    for i in range(theta.shape[0]):
        s += a * np.sin(theta[i]) * theta[i] + 0.5 * theta[i] ** 2
    return s


@njit
def raising(theta, a):
    if theta[0] > 100.0:
        raise ValueError("theta[0] is too large")
    return np.sum(theta ** 2)


@njit
def raising_late(theta, a):
    if theta[0] > 100.0:
        raise ValueError("theta[0] is too large")
    return np.sum(theta ** 2)
"""

#: Prepended to each case: counts forks, reports, checks that no child is left.
PRELUDE = """
import hashlib, json, os, signal, sys, time
import numpy as np
import fastcheck as fc
from fastcheck import _kernel_cache, _kernel_fork
from fastcheck.backends.numba_backend import NumbaBackend
from forkcost import cost, raising, raising_late

out = {"forks": 0, "parallel": 0}
_fork = _kernel_fork._fork


def counted_fork(kernel, types):
    child = _fork(kernel, types)
    out["forks"] += child is not None
    return child


_kernel_fork._fork = counted_fork
_parallel = NumbaBackend._parallel


def counted_parallel(self, *a):
    out["parallel"] += 1
    return _parallel(self, *a)


NumbaBackend._parallel = counted_parallel
theta = np.linspace(-1.0, 1.0, 400)
grad = 2.0 * (np.cos(theta) * theta + np.sin(theta)) + theta


def children_left():
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:  # this process has no child at all
        return False
    return True


def record(report):
    kernel = _kernel_cache.cached_kernel(cost)
    out.update(passed=bool(report.passed), digest=hashlib.sha256(
        np.ascontiguousarray(report.numeric).tobytes()).hexdigest(),
        hits=sum(kernel.stats.cache_hits.values()),
        misses=sum(kernel.stats.cache_misses.values()), left=children_left())
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``run(code, cache=None, **env)``: the JSON (``out``) a fresh interpreter printed,
    on the numba cache directory ``cache`` (None: a fresh one)."""
    tmp_path = tmp_path_factory.mktemp("kernel_fork")
    (tmp_path / "forkcost.py").write_text(COST_MODULE)
    fresh = iter(range(1_000))

    def _run(code: str, cache: str | None = None, **env: str) -> dict:
        cache = cache or f"cache{next(fresh)}"
        script = PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
        env = {"FASTCHECK_KERNEL_FORK": "1", **env}  # fork even on a busy machine
        full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path)]),
                        NUMBA_CACHE_DIR=str(tmp_path / cache), **env)
        full_env.pop("FASTCHECK_CACHE_DIR", None)
        done = subprocess.run([sys.executable, "-c", script], env=full_env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    return _run


CHECK = "record(fc.check(cost, grad, theta, (2.0,)))"


@pytest.fixture(scope="module")
def reference(run):
    """The same first-run check with the fork off: compiled in process, never forked."""
    out = run(CHECK, FASTCHECK_KERNEL_FORK="0")
    assert out["passed"] and out["forks"] == 0 and out["misses"] == 1 and not out["left"]
    return out


def test_first_run_forks_once_and_the_next_process_loads_the_kernel(run, reference):
    first = run(CHECK + "\nrecord(fc.check(cost, grad, theta, (2.0,)))", cache="shared")
    assert first["passed"] and first["forks"] == 1 and not first["left"]
    assert first["misses"] == 0  # the parent never compiled the kernel itself
    again = run(CHECK, cache="shared")  # loaded from disk, nothing forked or compiled
    assert again["forks"] == 0 and again["misses"] == 0 and again["hits"] == 1
    assert again["digest"] == first["digest"] == reference["digest"]


def test_the_parent_switches_to_the_childs_kernel_and_the_bits_agree(run, reference):
    """The first serial slice waits until the child is done and the parent has loaded
    its kernel from the disk cache: the rest runs in parallel, with the numbers of a
    check that never forked."""
    slow = """
        _serial = NumbaBackend._serial
        def slow_serial(self, *a):
            if self._pending is not None:  # waits for the child, then loads its kernel
                self._pending.join()
            return _serial(self, *a)
        NumbaBackend._serial = slow_serial
    """
    forked = run(textwrap.dedent(slow) + CHECK)
    assert forked["forks"] == 1 and forked["parallel"] >= 1, forked
    assert forked["hits"] == 1 and forked["misses"] == 0 and not forked["left"]
    assert forked["digest"] == reference["digest"] and forked["passed"]


@pytest.mark.parametrize("death", ["exit", "killed"])
def test_a_child_that_fails_or_dies_leaves_the_parent_to_compile(run, reference, death):
    code = {
        "exit": "_kernel_fork._child = lambda *a: os._exit(1)",
        "killed": """
            _kernel_fork._child = lambda *a: (time.sleep(60), os._exit(0))
            def killing_fork(kernel, types):
                child = counted_fork(kernel, types)
                os.kill(child.pid, signal.SIGKILL)
                return child
            _kernel_fork._fork = killing_fork
        """,
    }[death]
    out = run(textwrap.dedent(code) + "\n" + CHECK)
    assert out["forks"] == 1 and out["misses"] == 1  # compiled in process instead
    assert out["passed"] and not out["left"]
    assert out["digest"] == reference["digest"]


def test_no_child_outlives_a_check_that_raises_or_is_interrupted(run):
    out = run("""
        fc_check = sys.modules["fastcheck.check"]
        try:  # raises at theta, in prepare(), before any backend saw the child
            fc.check(raising, 2.0 * theta, theta + 200.0, (2.0,))
        except Exception:
            pass
        out["after_error"] = children_left()
        _prepare = fc_check.prepare
        def interrupted(*a, **k):
            raise KeyboardInterrupt
        fc_check.prepare = interrupted
        try:  # Ctrl-C during the first compile
            fc.check(cost, grad, theta, (2.0,))
        except KeyboardInterrupt:
            pass
        out["after_interrupt"] = children_left()
        fc_check.prepare = _prepare
        try:  # raises at a perturbed point, in the backend, which waits for its child
            at = np.r_[100.0 - 1e-12, theta]
            fc.check(raising_late, 2.0 * at, at, (2.0,))
        except fc.CostEvaluationError:
            pass
        out["after_cost_error"] = children_left()
    """)
    assert out["forks"] == 3
    assert not out["after_error"] and not out["after_interrupt"]
    assert not out["after_cost_error"]


def test_warm_and_ineligible_checks_do_not_fork(run):
    out = run("""
        from numba import njit
        probes = []
        _probe = _kernel_fork._in_disk_cache
        def counted_probe(*a):
            probes.append(1)
            return _probe(*a)
        _kernel_fork._in_disk_cache = counted_probe

        @njit
        def local_cost(theta, a):  # defined in __main__: its kernel cannot be cached
            return a * np.sum(theta ** 2)

        fc.check(local_cost, 4.0 * theta, theta, (2.0,))  # starts numba's threads
        import numba
        out["layer"] = numba.threading_layer()
        fc.check(cost, grad, theta, (2.0,), backend="serial")
        fc.check(cost, grad, theta, (2.0,), mode="directional")
        out["ineligible"] = out["forks"]
        fc.check(cost, grad, theta, (2.0,))  # the first eligible one
        for _ in range(3):  # warm in this process: no fork, no look at the disk
            fc.check(cost, grad, theta, (2.0,))
        out["probes"] = len(probes)
        record(fc.check(cost, grad, theta, (2.0,)))
    """)
    assert out["ineligible"] == 0
    assert out["forks"] == 1 and out["probes"] == 1
    # forked after the parent's threading layer ran a parallel region (omp, here): the
    # child only compiled, and handed the kernel over
    assert out["misses"] == 0 and out["hits"] == 1 and out["passed"] and not out["left"]
    nojit = run("out['passed'] = bool(fc.check(cost, grad, theta, (2.0,)).passed)",
                NUMBA_DISABLE_JIT="1")
    assert nojit["forks"] == 0 and nojit["passed"]


def test_predicted_types_are_the_backends():
    """``_call_types`` must name the kernel's argument types as the backend makes them,
    else the child compiles a signature nobody uses."""
    import numba

    from fastcheck._inputs import prepare
    from fastcheck.backends.numba_backend import NumbaBackend

    theta = np.linspace(-1.0, 1.0, 7).astype(np.float32)
    args = [np.ones((2, 3)), (1, 2), 0.5]

    @numba.njit
    def cost(t, x, sizes, lam):
        return np.sum(t ** 2) + lam * x.sum() + sizes[0]

    with pytest.warns(UserWarning, match="float32"):  # float32 params: theta is float64
        problem = prepare(cost, 2.0 * theta.astype(np.float64), theta, args, None)
    backend = NumbaBackend(problem)
    one = np.zeros(1, dtype=np.int64)
    made = backend._kernel_args(one, problem.theta[:1].copy(), problem.theta[:1].copy())
    expected = tuple(numba.typeof(a) for a in made)
    if backend._cached is None:  # the argument-taking kernel: the cost comes first
        expected = expected[1:]
    assert _kernel_fork._call_types(theta, args) == expected


@pytest.fixture
def decide(monkeypatch, tmp_path):
    """``decide(setting, spare_core)``: would ``start`` fork? (``_fork`` only recorded)."""
    import numba

    monkeypatch.setenv("FASTCHECK_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_kernel_fork, "_in_disk_cache", lambda kernel, types: False)
    forks: list = []
    monkeypatch.setattr(_kernel_fork, "_fork", lambda kernel, types: forks.append(types))
    cost = numba.njit(_module_cost)
    monkeypatch.setitem(globals(), "_module_cost_jitted", cost)
    cost.__qualname__ = "_module_cost_jitted"  # importable: the kernel could be cached

    def _decide(setting: str, spare: bool) -> bool:
        monkeypatch.setenv(_kernel_fork.ENV_SWITCH, setting)
        monkeypatch.setattr(_kernel_fork, "_spare_core", lambda: spare)
        monkeypatch.setattr(_kernel_fork, "_considered", {})
        forks.clear()
        _kernel_fork.start(cost, None, np.zeros(3), (2.0,), "auto", "full")
        return len(forks) == 1

    return _decide


def _module_cost(theta, a):
    return a * np.sum(theta ** 2)


@pytest.mark.parametrize(("setting", "spare", "forks"), [
    ("auto", True, True), ("auto", False, False), ("", False, False),
    ("1", False, True), ("0", True, False), ("no", True, False)])
def test_the_switch_and_the_idle_core_decide(decide, setting, spare, forks):
    """Unset/"auto" forks only when a core looks idle (on a busy machine the child's
    duplicate compile of the cost made the first run slower); "1" always, "0" never."""
    assert decide(setting, spare) is forks
