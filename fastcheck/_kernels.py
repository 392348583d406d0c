"""The numba kernels: arrays and scalars in, arrays out. No Python objects, no RNG.

The central-difference kernel splits the chosen components into ``n_chunks`` contiguous
chunks, one ``prange`` iteration each. A chunk copies theta once, then perturbs and
restores one component at a time in place, writing J(theta + h e_i) and J(theta - h e_i)
by index. Each value depends only on theta, the component and its step, never on which
thread ran it, so any number of threads gives bitwise-identical results.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True)
def central_values(cost, theta, indices, x_plus, x_minus, n_chunks, args):
    """J at ``theta`` with component ``indices[k]`` set to ``x_plus[k]`` and ``x_minus[k]``.

    Parameters
    ----------
    cost : numba dispatcher
        ``cost(x, *args) -> float`` on a flat vector.
    theta : float64[::1]
        The point; never written.
    indices : int64[::1]
        Flat components to perturb.
    x_plus, x_minus : float64[::1]
        The perturbed values of those components.
    n_chunks : int
        Number of contiguous chunks (one per thread).
    args : tuple
        Extra arguments of ``cost``.

    Returns
    -------
    (float64[::1], float64[::1])
        J+ and J- for each index.
    """
    n = indices.shape[0]
    j_plus = np.empty(n, dtype=np.float64)
    j_minus = np.empty(n, dtype=np.float64)
    for chunk in prange(n_chunks):
        lo = (n * chunk) // n_chunks
        hi = (n * (chunk + 1)) // n_chunks
        if hi > lo:
            x = theta.copy()
            for k in range(lo, hi):
                i = indices[k]
                x[i] = x_plus[k]
                j_plus[k] = cost(x, *args)
                x[i] = x_minus[k]
                j_minus[k] = cost(x, *args)
                x[i] = theta[i]
    return j_plus, j_minus
