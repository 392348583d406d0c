"""Write a small package of njit costs into a directory and check them in new processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])

SUB = """
import numba
import numpy as np
from numba.extending import register_jitable


@register_jitable
def ract(t):
    return {k} * np.tanh(t)


@numba.njit
def act(t):
    return {k} * np.tanh(t)


@numba.vectorize(["float64(float64)"])
def vact(t):
    return {k} * np.tanh(t)
"""

COSTS = {
    # the helper reached through a module alias one level deep
    "c_alias": "import helpers.sub as hs\n\n\n@numba.njit\ndef cost(theta):\n"
               "    return np.sum(hs.act(theta))\n",
    # the helper reached as package.module.function
    "c_pkgattr": "import helpers\n\n\n@numba.njit\ndef cost(theta):\n"
                 "    return np.sum(helpers.sub.act(theta))\n",
    # a constant imported from another module (numba freezes it into the kernel)
    "c_const": "from config import SCALE\n\n\n@numba.njit\ndef cost(theta):\n"
               "    return SCALE * np.sum(np.tanh(theta))\n",
    # a numba.extending.register_jitable helper
    "c_rj": "from helpers.sub import ract\n\n\n@numba.njit\ndef cost(theta):\n"
            "    return np.sum(ract(theta))\n",
    # a numba.vectorize helper
    "c_vec": "from helpers.sub import vact\n\n\n@numba.njit\ndef cost(theta):\n"
             "    return np.sum(vact(theta))\n",
}

CHILD = """
import json, sys
import numpy as np
import fastcheck as fc
sys.path.insert(0, sys.argv[1])
mod = __import__(sys.argv[2])
theta = np.linspace(-1.0, 1.0, 12)
rep = fc.check(mod.cost, 1 - np.tanh(theta) ** 2, theta, backend="numba", threads=1)
print(json.dumps({"passed": rep.passed, "backend": rep.backend, "n0": float(rep.numeric[0])}))
"""


def write(src: Path, k: str = "1.0") -> None:
    """(Re)write the package with the helpers' factor ``k`` (1.0 right, 2.0 a bug)."""
    (src / "helpers").mkdir(parents=True, exist_ok=True)
    (src / "helpers" / "__init__.py").write_text("from . import sub  # noqa: F401\n")
    (src / "helpers" / "sub.py").write_text(SUB.format(k=k))
    (src / "config.py").write_text(f"SCALE = {k}\n")
    for name, body in COSTS.items():
        (src / f"{name}.py").write_text("import numba\nimport numpy as np\n" + body)


def child(src: Path, cache: Path, module: str) -> dict:
    env = dict(os.environ, FASTCHECK_CACHE_DIR=str(cache), PYTHONPATH=ROOT,
               NUMBA_CACHE_DIR=str(cache / "numba"))
    out = subprocess.run([sys.executable, "-c", CHILD, str(src), module], env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
