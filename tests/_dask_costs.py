"""Costs for tests/test_dask.py, in a module the dask workers can import by name."""

from __future__ import annotations

import time

import numba
import numpy as np


@numba.njit
def quartic(theta, a):
    """``sum(a * theta**4) + sum(sin(theta))``: an ``@njit`` cost on a flat vector."""
    s = 0.0
    for i in range(theta.shape[0]):
        s += a[i] * theta[i] ** 4 + np.sin(theta[i])
    return s


def quartic_grad(theta, a):
    """The exact gradient of :func:`quartic`."""
    return 4.0 * a * theta**3 + np.cos(theta)


@numba.njit
def njit_raises(theta, bad):
    """Raises when component ``bad`` goes above 1 (theta[bad] is 1 at the check point)."""
    if theta[bad] > 1.0:
        raise ValueError("theta[bad] went above 1")
    return np.sum(theta**2)


def python_raises(theta, bad):
    """The plain-Python twin of :func:`njit_raises`."""
    if theta[bad] > 1.0:
        raise ValueError("theta[bad] went above 1")
    return float(np.sum(theta**2))


def squares_grad(theta, bad):
    """The gradient of both raising costs."""
    return 2.0 * theta


def dict_cost(p, X):
    """A Python cost on a mapping of parameters: ``sum(tanh(X @ W + b)**2)``."""
    return float(np.sum(np.tanh(X @ p["W"] + p["b"]) ** 2))


def dict_grad(p, X):
    """The gradient of :func:`dict_cost`, with backprop-style ``d`` keys."""
    t = np.tanh(X @ p["W"] + p["b"])
    dz = 2.0 * t * (1.0 - t**2)
    return {"dW": X.T @ dz, "db": dz.sum(axis=0)}


def slow_cost(theta, delay):
    """``sum(cos(theta))`` after sleeping ``delay`` seconds (same value for any delay)."""
    if delay > 0:
        time.sleep(delay)
    return float(np.sum(np.cos(theta)))


def slow_grad(theta, delay):
    """The gradient of :func:`slow_cost`."""
    return -np.sin(theta)
