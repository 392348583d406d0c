"""Shared fixtures: the built-in models are built once per session (numba compiles once)."""

from __future__ import annotations

import numpy as np
import pytest

from fastcheck.models import make_mlp


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
