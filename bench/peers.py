"""What a user would otherwise run, and the physical limit, on the built-in MLP.

Every method has the signature ``method(model, indices)``: ``indices`` are the flat
components to differentiate (``None``: all of them). Methods that cannot differentiate a
subset (SciPy, PyTorch) accept only ``None``.
"""

from __future__ import annotations

import numpy as np

import fastcheck as fc
from fastcheck.backends.numba_backend import max_threads
from fastcheck.cli.bench import classic_loop, forward_seconds
from fastcheck.models import cost_python

__all__ = ["classic_loop", "forward_seconds", "fastcheck_numba", "fastcheck_python",
           "classic", "scipy_3point", "torch_available", "torch_gradcheck", "limit_loop",
           "THREADS"]

#: "All threads" of this machine, as fastcheck counts them.
THREADS = max_threads()


def _sample_of(model, indices):
    return None if indices is None else int(np.asarray(indices).shape[0])


def fastcheck_numba(model, indices, threads=THREADS, seed=0):
    """``fc.check`` on the numba backend (the njit cost); a sample when ``indices`` is set."""
    return fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                    sample=_sample_of(model, indices), seed=seed, backend="numba",
                    threads=threads)


def fastcheck_python(model, indices, backend="serial", seed=0):
    """``fc.check`` on a Python backend with the plain NumPy cost."""
    return fc.check(cost_python, model.grad, model.theta, model.args, layout=model.layout,
                    sample=_sample_of(model, indices), seed=seed, backend=backend,
                    threads=THREADS)


def classic(model, indices):
    """The course's loop (``fastcheck.cli.bench.classic_loop``) on the NumPy cost, eps 1e-7."""
    return classic_loop(cost_python, model.theta, model.args, indices)


def scipy_3point(model, indices):
    """SciPy's ``approx_derivative(method="3-point")`` of the NumPy cost.

    It lives in ``scipy.optimize._numdiff`` (``approx_fprime`` and ``check_grad`` are its
    public 2-point wrappers); the 3-point scheme is the one comparable to fastcheck's.
    """
    from scipy.optimize._numdiff import approx_derivative

    assert indices is None, "approx_derivative differentiates every component"
    return approx_derivative(cost_python, model.theta, method="3-point", args=model.args)


def limit_loop(model, n_evaluations, threads=THREADS):
    """The physical limit, run: the bare njit cost ``n_evaluations / threads`` times in an
    njit loop on one thread (one BLAS thread) — the time ``threads`` perfect workers need."""
    from fastcheck._blas import single_threaded_blas
    from fastcheck.cli.bench import repeat_cost

    repeat = repeat_cost()
    x = model.theta.copy()
    with single_threaded_blas():
        return repeat(model.cost, x, model.args, max(1, n_evaluations // threads))


def torch_available() -> bool:
    """True when PyTorch can be imported (the optional ``peers`` extra)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_cost(model):
    """The MLP cost in PyTorch (float64), on a flat parameter tensor."""
    import torch

    X = torch.from_numpy(model.args[0])
    Y = torch.from_numpy(model.args[1])
    sizes = [int(s) for s in model.args[2]]
    lam = float(model.args[3])
    m = X.shape[0]

    def cost(theta):
        A, off, reg = X, 0, 0.0
        L = len(sizes) - 1
        for layer in range(L):
            fi, fo = sizes[layer], sizes[layer + 1]
            W = theta[off:off + fi * fo].reshape(fi, fo)
            b = theta[off + fi * fo:off + fi * fo + fo]
            off += fi * fo + fo
            A = A @ W + b
            if layer < L - 1:
                A = torch.relu(A)
            reg = reg + (W * W).sum()
        lse = torch.logsumexp(A, dim=1, keepdim=True)
        return (Y * (lse - A)).sum() / m + lam / (2.0 * m) * reg

    return cost


def torch_gradcheck(model, indices):
    """``torch.autograd.gradcheck`` (slow mode: every component) of the same cost."""
    import torch

    assert indices is None, "gradcheck differentiates every component"
    theta = torch.from_numpy(model.theta.copy()).requires_grad_(True)
    return torch.autograd.gradcheck(_torch_cost(model), (theta,), eps=1e-6, atol=1e-5,
                                    rtol=1e-3, raise_exception=False, fast_mode=False)
