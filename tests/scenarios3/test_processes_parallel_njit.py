"""A numpy cost that calls an @njit(parallel=True) helper, on backend="processes": the
parent runs GNU OpenMP threads (numba's omp layer) and libgomp aborts a forked worker that
uses them (fuzz3). Not fixed: the error names OpenMP and the way out, and the workqueue
threading layer it names does work. Each case runs in a fresh interpreter: OpenMP started
in the test process would stay started."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])

SCRIPT = """
import numba, numpy as np, fastcheck as fc

@numba.njit(parallel=True)
def rows(W, x):
    out = np.zeros(W.shape[0])
    for i in numba.prange(W.shape[0]):
        out[i] = np.tanh(W[i] @ x)
    return out

cost = lambda p, x: float(np.sum(rows(p["W"], x)))
grad = lambda p, x: {"W": np.outer(1 - rows(p["W"], x) ** 2, x)}
rng = np.random.default_rng(2)
params, x = {"W": rng.normal(size=(30, 20))}, rng.normal(size=20)
assert fc.check(cost, grad, params, (x,), backend="serial").passed
try:
    report = fc.check(cost, grad, params, (x,), backend="processes")
    print("PASSED" if report.passed else "FAILED")
except fc.FastcheckError as exc:
    print("ERROR", exc)
"""


def _run(**env):
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=240, env={**os.environ, "PYTHONPATH": ROOT, **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_the_worker_died_error_names_openmp_and_the_way_out():
    line = _run(NUMBA_THREADING_LAYER="omp")
    assert line.startswith("ERROR") and "OpenMP" in line and "NUMBA_THREADING_LAYER" in line


def test_the_workqueue_layer_it_names_works():
    assert _run(NUMBA_THREADING_LAYER="workqueue") == "PASSED"
