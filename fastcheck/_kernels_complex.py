"""The complex-step kernel (numba): ``Im J(theta + i*h*e_k) / h`` for chosen components.

Like the central-difference kernel: one contiguous chunk per ``prange`` iteration, one
complex copy of theta per chunk, perturb and restore in place, results written by index
(so the thread count never changes a value).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True)
def complex_step_values(cost, theta_c, indices, steps, n_chunks, args):
    """Complex-step derivatives of ``cost`` at ``theta_c`` (complex128) for ``indices``.

    Parameters
    ----------
    cost : numba dispatcher
        ``cost(x, *args) -> complex`` on a flat complex vector.
    theta_c : complex128[::1]
        The point (imaginary part 0); never written.
    indices : int64[::1]
        Flat components.
    steps : float64[::1]
        The imaginary step of each component.
    n_chunks : int
        Number of contiguous chunks (one per thread).
    args : tuple
        Extra arguments of ``cost``.

    Returns
    -------
    (float64[::1], bool[::1])
        The derivatives, and which chunks finished (a chunk whose cost raised in a worker
        thread does not).
    """
    n = indices.shape[0]
    out = np.empty(n, dtype=np.float64)
    finished = np.zeros(n_chunks, dtype=np.bool_)  # a cost raising in a worker is lost
    for chunk in prange(n_chunks):
        lo = (n * chunk) // n_chunks
        hi = (n * (chunk + 1)) // n_chunks
        if hi > lo:
            x = theta_c.copy()
            for k in range(lo, hi):
                i = indices[k]
                x[i] = theta_c[i] + 1j * steps[k]
                out[k] = cost(x, *args).imag / steps[k]
                x[i] = theta_c[i]
        finished[chunk] = True
    return out, finished
