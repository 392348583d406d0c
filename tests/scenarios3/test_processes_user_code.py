"""backend="processes" with costs as users write them: a functools.partial, an object with
__call__, bound methods of a model, a lambda, a module global the caller changes between
checks, a cost that prints, and functions defined in the __main__ of a script run with
``python script.py``. Each gives serial's numbers bit for bit, fails a bug, and leaves no
process behind."""

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastcheck as fc

ROOT = str(Path(__file__).resolve().parents[2])
RNG = np.random.default_rng(7)
W0, X0 = RNG.normal(size=(6, 5)), RNG.normal(size=5)
SCALE = 1.0


def _cost_k(p, x, k):
    return k * float(np.sum(np.tanh(p["W"] @ x)))


def _grad_k(p, x, k=1.0):
    return {"W": k * np.outer(1 - np.tanh(p["W"] @ x) ** 2, x)}


def _cost_global(p, x):
    return SCALE * float(np.sum(np.tanh(p["W"] @ x)))


def _grad_global(p, x):
    return {"W": SCALE * np.outer(1 - np.tanh(p["W"] @ x) ** 2, x)}


class _Model:
    def __init__(self, k):
        self.k = k

    def loss(self, p, x):
        return _cost_k(p, x, self.k)

    def grad(self, p, x):
        return _grad_k(p, x, self.k)


class _CallableCost:
    def __call__(self, p, x):
        return _cost_k(p, x, 1.0)


def _bad(grad):
    def wrong(p, x):
        g = {k: v.copy() for k, v in grad(p, x).items()}
        g["W"][1, 2] *= 1.01
        return g
    return wrong


_MODEL = _Model(2.0)
CASES = {
    "partial": (functools.partial(_cost_k, k=1.0), _grad_k),
    "callable_object": (_CallableCost(), _grad_k),
    "bound_methods": (_MODEL.loss, _MODEL.grad),
    "lambda": (lambda p, x: float(np.sum(np.tanh(p["W"] @ x))), lambda p, x: _grad_k(p, x)),
}


def _children() -> str:
    out = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "pid=,comm="],
                         capture_output=True, text=True).stdout
    return "\n".join(ln for ln in out.splitlines() if "ps" not in ln.split())


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_cost_on_processes_is_serial_bit_for_bit_and_fails_a_bug(name):
    cost, grad = CASES[name]
    for g, right in ((grad, True), (_bad(grad), False)):
        serial = fc.check(cost, g, {"W": W0}, (X0,), backend="serial")
        procs = fc.check(cost, g, {"W": W0}, (X0,), backend="processes")
        assert procs.backend == "processes"
        assert serial.passed is procs.passed is right
        assert procs.numeric.tobytes() == serial.numeric.tobytes()
        assert procs.failed.tolist() == serial.failed.tolist() == ([] if right else [7])
    assert _children() == ""


def test_a_global_changed_between_checks_reaches_the_workers():
    global SCALE
    try:
        before = fc.check(_cost_global, _grad_global, {"W": W0}, (X0,), backend="processes")
        SCALE = 3.0
        after = fc.check(_cost_global, _grad_global, {"W": W0}, (X0,), backend="processes")
        # a gradient written for the old value is a bug of the new cost
        stale = fc.check(_cost_global, lambda p, x: {"W": _grad_global(p, x)["W"] / 3.0},
                         {"W": W0}, (X0,), backend="processes")
    finally:
        SCALE = 1.0
    assert before.passed and after.passed and not stale.passed
    np.testing.assert_allclose(after.numeric, 3.0 * before.numeric, rtol=1e-6, atol=1e-9)


SCRIPT = """
import os, subprocess, sys, time
import numpy as np
import fastcheck as fc

rng = np.random.default_rng(0)
W0, x = rng.normal(size=(40, 30)), rng.normal(size=30)
LAM = 0.0


def cost(p, x):
    print("evaluated")
    time.sleep(2e-4)  # slow enough that backend="auto" starts workers
    return float(np.sum(np.tanh(p["W"] @ x))) + LAM * float(np.sum(p["W"] ** 2))


def grad(p, x):
    return {"W": np.outer(1 - np.tanh(p["W"] @ x) ** 2, x) + 2 * LAM * p["W"]}


def forgot_lam(p, x):
    return {"W": np.outer(1 - np.tanh(p["W"] @ x) ** 2, x)}


if __name__ == "__main__":
    LAM = 0.05  # the script sets its global before checking
    backend = sys.argv[1]
    serial = fc.check(cost, grad, {"W": W0}, (x,), backend="serial")
    print("SERIAL", serial.evaluations, flush=True)
    good = fc.check(cost, grad, {"W": W0}, (x,), backend=backend)
    print("GOOD", good.evaluations, flush=True)
    bad = fc.check(cost, forgot_lam, {"W": W0}, (x,), backend=backend)
    kids = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "comm="],
                          capture_output=True, text=True).stdout.split()
    print("RESULT", good.backend, good.passed, bad.passed, bad.verdict,
          good.numeric.tobytes() == serial.numeric.tobytes(), [k for k in kids if k != "ps"])
"""


@pytest.mark.parametrize("backend", ["processes", "auto"])
def test_functions_in_the_main_of_a_script(tmp_path, backend):
    script = tmp_path / "mycheck.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = subprocess.run([sys.executable, str(script), backend], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT),
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    assert result == ["RESULT processes True False fail True []"], out.stdout[-500:]
    # every evaluation's print reaches the script's stdout, from the workers too
    lines = out.stdout.splitlines()
    serial_evals = int(next(ln for ln in lines if ln.startswith("SERIAL")).split()[1])
    good_evals = int(next(ln for ln in lines if ln.startswith("GOOD")).split()[1])
    printed = out.stdout.count("evaluated")
    assert printed >= serial_evals + good_evals


def _cost_big(p, x, table):
    return float(np.sum(np.tanh(p["W"] @ x))) + float(table[-1]) * 0.0


def _grad_big(p, x, table):
    return _grad_k(p, x)


def test_fifty_megabyte_args_are_not_copied_per_component():
    table = np.ones(6_250_000)  # 50 MB, read by every evaluation
    before = table.copy()
    serial = fc.check(_cost_big, _grad_big, {"W": W0}, (X0, table), backend="serial")
    procs = fc.check(_cost_big, _grad_big, {"W": W0}, (X0, table), backend="processes")
    assert procs.passed and procs.backend == "processes"
    assert procs.numeric.tobytes() == serial.numeric.tobytes()
    assert procs.seconds < 5.0
    assert np.array_equal(table, before)
    assert _children() == ""
