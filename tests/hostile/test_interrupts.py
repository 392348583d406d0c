"""SIGINT during a long check (in a subprocess): a partial report, and everything restored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import (
    JIT,
    REPO,
    record,
    watchdog,
)

# -- interrupts -------------------------------------------------------------------------------
INTERRUPT_SCRIPT = r'''
import json, signal, sys, threading, time
import numba, numpy as np
import fastcheck as fc

# A process started in the background of a non-interactive shell (as CI may run us)
# inherits SIGINT as ignored, and Python then leaves it ignored: restore the default
# handler so that the test measures fastcheck, not the shell.
signal.signal(signal.SIGINT, signal.default_int_handler)

backend = sys.argv[1]
REPEAT = 3000  # about 1 ms per evaluation of the njit cost

@numba.njit
def slow_njit(x):
    s = 0.0
    for r in range(1, REPEAT):
        for i in range(100):
            s += x[i] * x[i] / (r * r)
    return 1e-3 * s + np.sum(x * x)

def slow_python(x):
    time.sleep(0.001)
    return float(np.sum(x * x))

theta = np.linspace(-1.0, 1.0, 20000)
grad = 2 * theta
if backend == "numba":
    c = 1e-3 * sum(1.0 / (r * r) for r in range(1, REPEAT))
    grad[:100] += 2 * c * theta[:100]
    cost = slow_njit
    fc.check(cost, grad[:200].copy(), theta[:200].copy(), backend="numba", threads=2)
else:
    cost = slow_python
snapshot = (theta.copy(), grad.copy())
nb_threads = numba.get_num_threads()
print("READY", flush=True)
result = {}
try:
    fc.check(cost, grad, theta, backend=backend, threads=2)
    result["outcome"] = "finished"
except KeyboardInterrupt as exc:
    result["caught_at"] = time.monotonic()
    rep = getattr(exc, "partial_report", None)
    result.update(outcome="KeyboardInterrupt", partial=isinstance(rep, fc.Report),
                  n_checked=getattr(rep, "n_checked", None),
                  stop_reason=getattr(rep, "stop_reason", None))
except BaseException as exc:
    result.update(outcome=type(exc).__name__, message=str(exc)[:300],
                  caught_at=time.monotonic())
result["unchanged"] = bool(np.array_equal(theta, snapshot[0])
                           and np.array_equal(grad, snapshot[1]))
result["threads_left"] = [t.name for t in threading.enumerate()
                          if t is not threading.main_thread() and not t.daemon]
result["numba_threads_restored"] = numba.get_num_threads() == nb_threads
print(json.dumps(result), flush=True)
'''

@pytest.mark.parametrize("backend", ["serial", "threads", "numba"])
def test_sigint_during_long_check(tmp_path, backend):
    """SIGINT one second into a long check (a ~1 ms cost, 20,000 components): it ends within
    two seconds with KeyboardInterrupt and a partial report, inputs unchanged, numba's
    thread count restored, no thread left running."""
    if backend == "numba" and not JIT:
        pytest.skip("needs the JIT (the njit cost would take minutes in Python)")
    script = tmp_path / "long_check.py"
    script.write_text(INTERRUPT_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.Popen([sys.executable, str(script), backend], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        with watchdog(90):
            line = proc.stdout.readline()
            assert line.strip() == "READY", line + proc.stderr.read()
            time.sleep(1.0)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    record("sigint", f"{backend}: {result['outcome']}")
    assert result["outcome"] == "KeyboardInterrupt", (result, err)
    assert result["caught_at"] - sent < 2.0, f"took {result['caught_at'] - sent:.2f} s"
    assert result["partial"] and result["n_checked"] > 0
    assert "KeyboardInterrupt" in result["stop_reason"]
    assert result["unchanged"] and result["numba_threads_restored"]
    assert result["threads_left"] == []
    assert proc.returncode == 0, err
