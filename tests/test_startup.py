"""Start-up: ``import fastcheck`` loads nothing heavy, and a NumPy cost never loads numba.

Each case runs in a fresh interpreter (a subprocess) and reads its ``sys.modules``: inside
the test process numba and scipy are long imported by other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("numba", "llvmlite", "scipy", "matplotlib", "dask", "distributed", "tqdm",
         "threadpoolctl")


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; the heavy top-level packages it left loaded."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json as _json, sys as _sys
        print(_json.dumps(sorted(m for m in {HEAVY!r} if m in _sys.modules)))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_loads_no_numba_matplotlib_dask_or_tqdm():
    loaded = loaded_after("import fastcheck")
    assert not loaded & {"numba", "llvmlite", "matplotlib", "dask", "distributed", "tqdm"}


def test_import_loads_no_scipy():
    assert "scipy" not in loaded_after("import fastcheck")


NUMPY_CHECK = """
import numpy as np
import fastcheck as fc

def cost(theta, a):
    return float(np.sum(a * theta ** 3))

theta = np.linspace(-1.0, 1.0, 40)
report = fc.check(cost, lambda t, a: 3.0 * a * t ** 2, theta, (2.0,))
assert report.passed and report.backend == "serial", report.backend
report.summary()
"""


def test_check_of_a_numpy_cost_never_loads_numba():
    loaded = loaded_after(NUMPY_CHECK)
    assert not loaded & {"numba", "llvmlite", "matplotlib", "dask", "distributed"}


def test_a_jitted_cost_still_picks_the_numba_backend():
    """The lazy test of "is this a numba dispatcher" still sees one once numba is in use."""
    loaded = loaded_after("""
        import numpy as np
        from numba import njit
        import fastcheck as fc

        @njit
        def cost(theta):
            return np.sum(theta ** 3)

        theta = np.linspace(-1.0, 1.0, 40)
        report = fc.check(cost, 3.0 * theta ** 2, theta)
        assert report.passed and report.backend == "numba", report.backend
    """)
    assert "numba" in loaded


def test_lazy_helpers_do_not_import_numba():
    loaded = loaded_after("""
        from fastcheck._lazy import is_jitted, numba_errors
        assert is_jitted(len) is False and numba_errors() == ()
    """)
    assert "numba" not in loaded
