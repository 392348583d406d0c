"""Shared fixtures: the built-in models are built once per session (numba compiles once)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg.cython_blas  # noqa: F401

from fastcheck.models import make_mlp

# ``import fastcheck`` no longer imports scipy.stats/scipy.linalg, so SciPy's OpenBLAS (the
# one numba's np.dot calls) is first loaded by the first njit check. Load it here, before
# any test records the BLAS thread limits it expects to find restored (test_hostile):
# a library loaded during a check is not a limit left changed.


@pytest.fixture(scope="session")
def mlp_s():
    """The correct S-size MLP (N = 499)."""
    return make_mlp("S", seed=0)


@pytest.fixture(scope="session")
def mlp_m():
    """The correct M-size MLP (N = 6,570)."""
    return make_mlp("M", seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
