"""The fast paths of the numba backend compute exactly what the plain kernel computes.

The disk-cached kernel (a generated module per importable cost), the load-balancing
chunks and the BLAS cap change speed only: these tests pin the numbers (bitwise), the
stale-cost protection of the cache, the fallbacks, and the absence of per-component
allocations. No timing assertions.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastcheck as fc
from fastcheck import _kernel_cache, _kernels
from fastcheck.backends.numba_backend import NumbaBackend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check(model, **kw):
    return fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                    backend="numba", **kw)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private kernel cache directory for the test."""
    path = tmp_path / "kernels"
    monkeypatch.setenv("FASTCHECK_CACHE_DIR", str(path))
    monkeypatch.delenv("FASTCHECK_KERNEL_CACHE", raising=False)
    return path


COST_V1 = """
import numpy as np
from numba import njit

from {helper} import weight


@njit
def cost(theta, scale):
    s = 0.0
    for i in range(theta.shape[0]):
        if theta[i] > 1e6:
            raise ValueError("theta too large")
        s += weight(i) * scale * theta[i] * theta[i]
    return s
"""
HELPER = """
from numba import njit


@njit
def weight(i):
    return {w} + 0.0 * i
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write, import and rewrite a small cost module (and a helper module it imports)."""
    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.syspath_prepend(str(src))
    tag = uuid.uuid4().hex[:8]
    name, helper = f"fc_cost_{tag}", f"fc_helper_{tag}"

    def write(*, factor="1.0", w="1.0"):
        (src / f"{helper}.py").write_text(HELPER.format(w=w))
        body = COST_V1.format(helper=helper).replace("scale * theta", f"{factor} * scale * theta")
        (src / f"{name}.py").write_text(body)
        importlib.invalidate_caches()
        for mod in (helper, name):  # re-import from the new source
            sys.modules.pop(mod, None)
        return importlib.import_module(name)

    write.name, write.src = name, src
    yield write
    for mod in (helper, name):
        sys.modules.pop(mod, None)


def _values(kernel_call, theta, n_chunks=2):
    idx = np.arange(theta.shape[0], dtype=np.int64)
    return kernel_call(idx, theta + 1e-3, theta - 1e-3, n_chunks)


# -- the cached kernel is the same kernel ----------------------------------------------
def test_cached_and_uncached_kernels_are_bitwise_identical(mlp_s, cache_dir):
    kernel = _kernel_cache.cached_kernel(mlp_s.cost)
    assert kernel is not None, "the built-in cost is importable: it must get a cached kernel"
    theta, args = mlp_s.theta, mlp_s.args
    idx = np.arange(theta.shape[0], dtype=np.int64)
    xp, xm = theta + 6e-6, theta - 6e-6
    for n_chunks in (1, 2, 3, 16):
        cached = kernel(theta, idx, xp, xm, n_chunks, args)
        plain = _kernels.central_values(mlp_s.cost, theta, idx, xp, xm, n_chunks, args)
        for a, b in zip(cached, plain):
            assert a.tobytes() == b.tobytes()


def test_report_identical_with_and_without_the_cache(mlp_s, cache_dir, monkeypatch):
    cached = _check(mlp_s, threads=2)
    monkeypatch.setenv("FASTCHECK_KERNEL_CACHE", "0")
    plain = _check(mlp_s, threads=2)
    assert cached.numeric.tobytes() == plain.numeric.tobytes()
    assert cached.verdict == plain.verdict == "pass"


@pytest.mark.parametrize("cache", ["1", "0"])
def test_threads_and_chunks_do_not_change_a_bit(mlp_m, cache_dir, monkeypatch, cache):
    monkeypatch.setenv("FASTCHECK_KERNEL_CACHE", cache)
    one = _check(mlp_m, threads=1, sample=600, seed=3)
    for threads in (2, 5):
        other = _check(mlp_m, threads=threads, sample=600, seed=3)
        assert other.numeric.tobytes() == one.numeric.tobytes()


def test_the_generated_module_is_the_kernel_with_the_cost_as_a_global():
    text = _kernel_cache._kernels.cached_kernel_source("pkg.mod", "cost", "abc")
    assert "import pkg.mod as _cost_module" in text and "_cost = _cost_module.cost" in text
    assert "@njit(parallel=True, cache=True)" in text
    assert "def central_values(theta, indices, x_plus, x_minus, n_chunks, args)" in text
    assert text.count("_cost(x, *args)") == 2
    compile(text, "generated", "exec")


# -- which costs get a cached kernel --------------------------------------------------
def test_importable_name(mlp_s):
    from numba import njit

    assert _kernel_cache.importable_name(mlp_s.cost) == ("fastcheck.models.mlp", "cost")

    @njit
    def local(theta):
        return theta.sum()

    assert _kernel_cache.importable_name(local) is None  # <locals>: not importable
    assert _kernel_cache.importable_name(lambda t: 0.0) is None  # not a dispatcher
    main_cost = njit(lambda t: t.sum())
    main_cost.__module__ = "__main__"
    assert _kernel_cache.importable_name(main_cost) is None


def test_unwritable_cache_falls_back(mlp_s, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FASTCHECK_CACHE_DIR", str(blocker / "kernels"))
    monkeypatch.setattr(_kernel_cache, "_loaded", {})
    monkeypatch.setattr(_kernel_cache, "_kernel_of", {})
    assert _kernel_cache.cached_kernel(mlp_s.cost) is None
    assert _check(mlp_s, sample=50, seed=0).passed


# -- a changed cost never runs a stale kernel -----------------------------------------
def test_changed_cost_or_helper_gets_a_new_kernel(user_module, cache_dir):
    theta = np.linspace(-1.0, 1.0, 7)
    seen = {}
    for version, kw in (("v1", {}), ("factor", {"factor": "2.0"}), ("helper", {"w": "3.0"})):
        mod = user_module(**kw)
        key = _kernel_cache.code_key(mod.cost)
        kernel = _kernel_cache.cached_kernel(mod.cost)
        assert kernel is not None
        jp, _, _ = _values(lambda i, xp, xm, c, k=kernel: k(theta, i, xp, xm, c, (1.0,)), theta)
        plain, _, _ = _values(lambda i, xp, xm, c, m=mod: _kernels.central_values(
            m.cost, theta, i, xp, xm, c, (1.0,)), theta)
        assert jp.tobytes() == plain.tobytes(), version
        seen[version] = (key, jp)
    keys = [k for k, _ in seen.values()]
    assert len(set(keys)) == 3
    np.testing.assert_allclose(seen["factor"][1], 2 * seen["v1"][1], rtol=1e-15)
    np.testing.assert_allclose(seen["helper"][1], 3 * seen["v1"][1], rtol=1e-15)
    assert len(list(cache_dir.glob("fastcheck_kernel_*.py"))) == 3


def test_code_key_does_not_change_when_the_cost_compiles(user_module):
    """The key is computed before (first process) and after (later ones) the cost compiles:
    it must be the same, or the first process's kernel is never found again."""
    mod = user_module()
    before = _kernel_cache._code_key(mod.cost)
    mod.cost(np.ones(3), 1.0)
    assert _kernel_cache._code_key(mod.cost) == before


_CHILD = """
import json, sys
import numpy as np
import fastcheck as fc
from fastcheck import _kernel_cache
started = []
_start = _kernel_cache.KernelCompile.start
_kernel_cache.KernelCompile.start = lambda self: started.append(1) or _start(self)
sys.path.insert(0, sys.argv[1])
mod = __import__(sys.argv[2])
theta = np.linspace(-1.0, 1.0, 7)
grad = 2.0 * float(sys.argv[3]) * theta
rep = fc.check(mod.cost, grad, theta, (1.0,), backend="numba", threads=2)
k = _kernel_cache.cached_kernel(mod.cost)
print(json.dumps({"passed": rep.passed, "numeric": rep.numeric.tolist(),
                  "hits": sum(k.stats.cache_hits.values()), "threads_started": len(started)}))
"""


def test_stale_kernel_protection_across_processes(user_module, cache_dir):
    """Process 1 caches v1; the source changes; process 2 must run v2, process 3 loads it."""
    env = dict(os.environ, FASTCHECK_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT)

    def child(factor):
        out = subprocess.run([sys.executable, "-c", _CHILD, str(user_module.src),
                              user_module.name, factor], env=env, capture_output=True,
                             text=True, timeout=240)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    user_module()
    first = child("1.0")
    assert first["passed"] and first["hits"] == 0
    assert first["threads_started"] == 1  # compiled on a thread while the check ran
    user_module(factor="2.0")
    second = child("2.0")  # the gradient of the new cost: passes only with the new kernel
    assert second["passed"] and second["hits"] == 0
    np.testing.assert_allclose(second["numeric"], 2 * np.asarray(first["numeric"]), rtol=1e-9)
    third = child("2.0")
    assert third["passed"] and third["hits"] >= 1  # loaded from disk, not compiled
    # ... on the calling thread: a thread waiting for the GIL after each LLVM call took
    # several times longer
    assert third["threads_started"] == 0


# -- the kernel compiles in the background while the first components run serially ----
def test_serial_start_then_kernel_gives_the_same_bits(user_module, cache_dir, monkeypatch):
    """Components evaluated by the serial loop (kernel not ready) and by the kernel agree."""

    mod = user_module()
    release = threading.Event()
    calls = {"serial": 0, "parallel": 0}
    compile_kernel, serial, parallel = (_kernel_cache._compile_kernel, NumbaBackend._serial,
                                        NumbaBackend._parallel)

    def held_compile(kernel, types):
        assert release.wait(60)
        return compile_kernel(kernel, types)

    def counted_serial(self, *a):
        calls["serial"] += 1
        if calls["serial"] == 3:  # the kernel becomes ready after three serial slices
            release.set()
            self._pending.join()
        return serial(self, *a)

    def counted_parallel(self, *a):
        calls["parallel"] += 1
        return parallel(self, *a)

    monkeypatch.setattr(_kernel_cache, "_compile_kernel", held_compile)
    monkeypatch.setattr(NumbaBackend, "_serial", counted_serial)
    monkeypatch.setattr(NumbaBackend, "_parallel", counted_parallel)
    theta = np.linspace(-1.0, 1.0, 3000)
    mixed = fc.check(mod.cost, 2.0 * theta, theta, (1.0,), backend="numba", threads=2)
    assert calls["serial"] == 3 and calls["parallel"] >= 1
    assert mixed.passed and mixed.evaluations == 2 + 2 * theta.shape[0]
    calls.update(serial=0, parallel=0)
    warm = fc.check(mod.cost, 2.0 * theta, theta, (1.0,), backend="numba", threads=2)
    assert calls["serial"] == 0  # compiled now: the kernel from the start
    assert warm.numeric.tobytes() == mixed.numeric.tobytes()


def test_cost_raising_during_the_serial_start_is_named(user_module, cache_dir, monkeypatch):
    mod = user_module()
    monkeypatch.setattr(NumbaBackend, "_kernel_ready", lambda self: False)  # all serial
    theta = np.zeros(40)
    theta[17] = 1e6 - 1e-3
    with pytest.raises(fc.CostEvaluationError, match="flat index 17\\)"):
        fc.check(mod.cost, 2 * theta, theta, (1.0,), backend="numba", eps=1.0, threads=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("fastcheck")]


# -- behaviour kept on the cached path --------------------------------------------------
@pytest.mark.parametrize("cache", ["1", "0"])
@pytest.mark.parametrize("where", [0, 4, 39])
def test_exception_in_cost_names_the_component(user_module, cache_dir, monkeypatch, cache,
                                               where):
    """Wherever the raising component lands (calling thread or a worker), it is named."""
    monkeypatch.setenv("FASTCHECK_KERNEL_CACHE", cache)
    mod = user_module()
    theta = np.zeros(40)
    theta[where] = 1e6 - 1e-3  # theta + h crosses 1e6 at this component only
    with pytest.raises(fc.CostEvaluationError, match=f"flat index {where}\\)"):
        fc.check(mod.cost, 2 * theta, theta, (1.0,), backend="numba", eps=1.0, threads=2)


def test_blas_threads_and_numba_threads_restored(mlp_s):
    import numba

    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()
              if i["user_api"] == "blas"]
    numba_before = numba.get_num_threads()
    _check(mlp_s, threads=1, sample=30, seed=0)
    after = [(i["filepath"], i["num_threads"]) for i in threadpool_info()
             if i["user_api"] == "blas"]
    assert after == before and numba.get_num_threads() == numba_before


def test_backend_chunks_balance_and_never_tiny(mlp_s):
    from fastcheck._inputs import prepare

    problem = prepare(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, mlp_s.layout)
    backend = NumbaBackend(problem, threads=2)
    assert backend.n_chunks(1) == 1 and backend.n_chunks(2) == 2
    assert backend.n_chunks(4096) == 4 * backend.threads
    assert all(1 <= backend.n_chunks(n) <= n for n in (1, 3, 10, 100, 1000))
    huge = NumbaBackend(problem, threads=2**40)  # capped by the threads numba can run
    assert huge.n_chunks(5) <= 5 and huge.n_chunks(10**6) <= 4 * huge.threads


_ALLOC_CHILD = """
import numpy as np
from numba import njit
from numba.core.runtime import _nrt_python, rtsys
from fastcheck._kernels import central_values

@njit
def cost(theta):  # allocates nothing itself
    s = 0.0
    for i in range(theta.shape[0]):
        s += theta[i] * theta[i]
    return s

theta = np.ones(20000)
def allocations(n):
    idx = np.arange(n, dtype=np.int64)
    xp, xm = theta[:n] + 1e-3, theta[:n] - 1e-3
    before = rtsys.get_allocation_stats().alloc
    central_values(cost, theta, idx, xp, xm, 4, ())
    return rtsys.get_allocation_stats().alloc - before
central_values(cost, theta, np.arange(2), theta[:2], theta[:2], 4, ())  # compile
_nrt_python.memsys_enable_stats()
print(allocations(8), allocations(4000))
"""


def test_no_allocation_per_component():
    """The kernel allocates per call and per chunk, never per component (numba's NRT count)."""
    env = dict(os.environ, NUMBA_NRT_STATS="1", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_ALLOC_CHILD)], env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    few, many = map(int, out.stdout.split())
    assert few == many < 32  # per call: results, parfor scheduling; per chunk: one theta


def _kernel_launches(monkeypatch) -> list[int]:
    """Record the number of components of every kernel launch of the numba backend."""
    launches: list[int] = []
    original = NumbaBackend._kernel

    def counting(self, indices, x_plus, x_minus):
        launches.append(int(indices.shape[0]))
        return original(self, indices, x_plus, x_minus)

    monkeypatch.setattr(NumbaBackend, "_kernel", counting)
    return launches


def test_a_quick_full_check_is_one_kernel_launch(mlp_s, monkeypatch):
    fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, layout=mlp_s.layout)  # warm
    launches = _kernel_launches(monkeypatch)
    report = fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, layout=mlp_s.layout)
    assert report.passed and report.backend == "numba"
    assert launches == [mlp_s.theta.size]  # 499 components, one launch (not 256 + 243)


def test_a_stop_rule_keeps_small_first_chunks(mlp_s, monkeypatch):
    fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, layout=mlp_s.layout)  # warm
    launches = _kernel_launches(monkeypatch)
    fc.check(mlp_s.cost, mlp_s.grad, mlp_s.theta, mlp_s.args, layout=mlp_s.layout,
             max_failures=1)
    assert launches[0] == 256 and len(launches) >= 2  # a failure would be heard early


def test_the_key_covers_what_numba_freezes_beyond_the_cost_file(tmp_path, monkeypatch):
    """An imported constant (numba freezes its value), a register_jitable helper and a
    helper reached through a module attribute chain each change the kernel's key when they
    change: a stale kernel would keep the old ones (fuzz3 found the constant kept)."""
    import sys
    import types

    tag = uuid.uuid4().hex[:8]
    src = tmp_path / "src"
    (src / f"pkg_{tag}").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(src))

    def load(scale: str, k: str, w: str):
        for name in [m for m in sys.modules if tag in m]:
            del sys.modules[name]
        (src / f"pkg_{tag}" / "__init__.py").write_text("from . import sub  # noqa: F401\n")
        (src / f"pkg_{tag}" / "sub.py").write_text(
            f"from numba import njit\n\n\n@njit\ndef act(t):\n    return {w} * t\n")
        (src / f"conf_{tag}.py").write_text(f"SCALE = {scale}\n")
        (src / f"rj_{tag}.py").write_text(
            "from numba.extending import register_jitable\n\n\n@register_jitable\n"
            f"def helper(t):\n    return {k} * t\n")
        (src / f"cost_{tag}.py").write_text(
            f"import numpy as np\nfrom numba import njit\nimport pkg_{tag}\n"
            f"from conf_{tag} import SCALE\nfrom rj_{tag} import helper\n\n\n@njit\n"
            f"def cost(theta):\n    return SCALE * np.sum(helper(pkg_{tag}.sub.act(theta)))\n")
        importlib.invalidate_caches()
        module = importlib.import_module(f"cost_{tag}")
        assert isinstance(module, types.ModuleType)
        return _kernel_cache._code_key(module.cost)

    base = load("1.0", "1.0", "1.0")
    assert load("1.0", "1.0", "1.0") == base  # the same code: the same key
    assert load("2.0", "1.0", "1.0") != base  # the imported constant
    assert load("1.0", "2.0", "1.0") != base  # the register_jitable helper
    assert load("1.0", "1.0", "2.0") != base  # pkg.sub.act, two attributes deep
