"""Resource bounds: memory of sampled and full checks, absurd thread counts."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

import fastcheck as fc

from .conftest import (
    JIT,
    nb_grad,
    nb_hostile,
    quad_cost,
    quad_grad,
    record,
)


# -- resource bounds --------------------------------------------------------------------------
@pytest.mark.slow
def test_sampled_check_of_50m_parameters_uses_memory_of_theta_not_n_per_sample():
    """sample=2000 of 50M parameters (a numpy cost reading 1,001 of them).

    Allowed, beyond the caller's own theta and grad: fastcheck's private copy of theta
    (1x), the analytic gradient flattened into a new vector (1x), the serial backend's
    work vector that it perturbs (1x), a boolean temporary of N bytes (0.125x: the
    ``np.array_equal`` of ``ensure_unmodified``) and O(sample) for the results -- about
    3.13x theta (1.25 GB for a 400 MB theta); measured 3.126x. The copies made to call the
    cost and grad at theta are freed before the backend's work vector exists.
    """
    n = 50_000_000
    layout = fc.Layout({"W1": (5000, 8000), "b1": (5000,), "W2": (2000, 4997),
                        "b2": (1000,)})
    assert layout.size == n
    stride = n // 1000
    w = np.linspace(0.5, 1.5, 1000)
    theta = np.linspace(-1.0, 1.0, n)
    grad = np.zeros(n)
    grad[::stride] = 2 * w * theta[::stride]
    grad[-1] += 3 * theta[-1] ** 2

    def cost(x):
        return float(np.dot(w, x[::stride] ** 2)) + float(x[-1] ** 3)

    tracemalloc.start()
    try:
        rep = fc.check(cost, grad, theta, layout=layout, sample=2000, seed=0,
                       backend="serial")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.passed and rep.n_checked == 2000
    allowed = 3 * theta.nbytes + n + 32 * 2**20
    record("memory", f"50M sampled: peak {peak / theta.nbytes:.3f} x theta")
    assert peak < allowed, f"peak {peak / 2**20:.0f} MiB = {peak / theta.nbytes:.2f} x theta"


@pytest.mark.parametrize("backend", ["serial", "threads"])
def test_full_check_memory_is_linear_in_n(backend):
    """A full check of 5,000 components allocates O(N) in all, not O(N) per component
    (which would be 5,000 x 40 kB = 200 MB here)."""
    n = 5_000
    theta = np.linspace(-1.0, 1.0, n)
    grad = quad_grad(theta)

    def cost(x):
        return float(np.dot(x, x) + np.sum(x))

    tracemalloc.start()
    try:
        rep = fc.check(cost, grad, theta, backend=backend, threads=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.passed
    assert peak < 64 * theta.nbytes, f"peak {peak / theta.nbytes:.1f} x theta"


# -- known bugs, pinned (each reported on issue 8) --------------------------------------------
def test_threads_backend_caps_an_absurd_thread_count():
    rep = fc.check(quad_cost, quad_grad(np.ones(5)), np.ones(5), backend="threads",
                   threads=100_000)
    assert rep.threads <= 2 * (os.cpu_count() or 1)


@pytest.mark.skipif(not JIT, reason="the numba kernel's chunking only matters under the JIT")
def test_numba_backend_caps_an_absurd_thread_count():
    theta = np.linspace(-1, 1, 5)
    args = (np.ones(5), 0, np.inf, 0)
    rep = fc.check(nb_hostile, nb_grad(theta, *args), theta, args, backend="numba",
                   threads=2**40)
    assert rep.passed
