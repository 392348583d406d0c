"""A ReLU multilayer perceptron on a flat parameter vector, in numba, with injectable bugs.

Blocks ``W1, b1, W2, b2, ...`` (``W_l`` of shape ``(fan_in, fan_out)``) are laid out one
after another in ``theta``, each in C order. ``Z_l = A_{l-1} @ W_l + b_l``, ReLU on the
hidden layers, softmax cross-entropy averaged over the batch of ``m`` rows, plus
``lam / (2 m) * sum_l ||W_l||^2`` (biases are not regularised).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from fastcheck.layout import Layout

__all__ = ["SIZES", "BATCH", "BUGS", "MLPProblem", "make_mlp", "mlp_layout", "affected_blocks",
           "cost", "cost_python", "grad"]

SIZES: dict[str, tuple[int, ...]] = {
    "S": (20, 16, 8, 3), "SQ": (16, 16, 16, 4), "M": (64, 64, 32, 10), "L": (784, 128, 64, 10),
}
BATCH: dict[str, int] = {"S": 32, "SQ": 32, "M": 64, "L": 64}
_DEFAULT_BATCH = 32

BUGS: dict[str, str] = {
    "missing-regularization": "the gradient omits the lam/m * W term (every W block)",
    "bias-factor-2": "db1 is doubled (b1)",
    "sign-flip": "dW2 is negated (W2)",
    "one-element": "dW2[1, 3] += 1e-3 (one element of W2)",
    "transposed": "dW1 is written back as dW1.T.ravel() (W1)",
    "wrong-relu-mask": "the ReLU mask of the first hidden layer is omitted: dZ1 = dA1 (W1, b1)",
    "mean-vs-sum": "the data term is summed over the batch instead of averaged (every block)",
    "clipped": "dW1 is clipped to +-c, c = 0.5 * max|dW1| at the initial point (W1)",
    "swapped": "db1 and db2 are exchanged; needs sizes[1] == sizes[2], e.g. 'SQ' (b1, b2)",
}
_CODES = {name: code for code, name in enumerate(BUGS, start=1)}
(_MISSING_REG, _BIAS2, _SIGN, _ONE, _TRANSPOSED, _RELU, _SUM, _CLIP, _SWAP) = range(1, 10)


# -- numba kernels ----------------------------------------------------------------------
@numba.njit(cache=True)
def _offsets(theta, X, Y, sizes):
    """Flat offsets of the layers ``(W_l, b_l)``, after checking the shapes of the inputs."""
    L = sizes.shape[0] - 1
    offs = np.zeros(L + 1, dtype=np.int64)
    for l in range(L):
        offs[l + 1] = offs[l] + sizes[l] * sizes[l + 1] + sizes[l + 1]
    if theta.shape[0] != offs[L]:
        raise ValueError("mlp: theta has the wrong length for these layer sizes")
    if X.shape[1] != sizes[0] or Y.shape[1] != sizes[L] or Y.shape[0] != X.shape[0]:
        raise ValueError("mlp: X must be (m, sizes[0]) and Y (m, sizes[-1])")
    return offs


@numba.njit(cache=True)
def _forward(theta, X, sizes, offs):
    """Logits of the last layer and the list of hidden activations ``A_1 .. A_{L-1}``."""
    L = sizes.shape[0] - 1
    acts = []
    Z = np.empty((0, 0))
    for l in range(L):
        fi, fo, off = sizes[l], sizes[l + 1], offs[l]
        W = theta[off:off + fi * fo].reshape((fi, fo))  # a C-contiguous view, no copy
        b = theta[off + fi * fo:offs[l + 1]]
        if l == 0:  # separate calls: X may be read-only, the activations are not
            Z = np.dot(X, W)
        else:
            Z = np.dot(acts[l - 1], W)
        for i in range(Z.shape[0]):
            for j in range(fo):
                z = Z[i, j] + b[j]
                Z[i, j] = z if (l == L - 1 or z > 0.0) else 0.0
        if l < L - 1:
            acts.append(Z)
    return Z, acts


@numba.njit(cache=True)
def _logsumexp_rows(Z):
    """log(sum_k exp(Z[i, k])) per row, shifted by the row maximum."""
    out = np.empty(Z.shape[0])
    for i in range(Z.shape[0]):
        zmax = Z[i, 0]
        for k in range(1, Z.shape[1]):
            zmax = max(zmax, Z[i, k])
        s = 0.0
        for k in range(Z.shape[1]):
            s += np.exp(Z[i, k] - zmax)
        out[i] = zmax + np.log(s)
    return out


@numba.njit(cache=True)
def cost(theta, X, Y, sizes, lam):
    """Regularised softmax cross-entropy of the MLP (see the module docstring).

    Parameters
    ----------
    theta : numpy.ndarray
        Flat float64 parameter vector, C-contiguous, length ``mlp_layout(sizes).size``.
    X : numpy.ndarray
        ``(m, sizes[0])`` float64 inputs, C-contiguous.
    Y : numpy.ndarray
        ``(m, sizes[-1])`` float64 one-hot labels.
    sizes : numpy.ndarray
        int64 layer sizes ``(d_in, hidden..., classes)``.
    lam : float
        L2 regularisation strength.

    Returns
    -------
    float
        The cost J. Pure (no global state): safe to call from many numba threads at once.
    """
    offs = _offsets(theta, X, Y, sizes)
    Z, _ = _forward(theta, X, sizes, offs)
    lse = _logsumexp_rows(Z)
    data = 0.0
    for i in range(Z.shape[0]):
        for k in range(Z.shape[1]):
            data += Y[i, k] * (lse[i] - Z[i, k])
    reg = 0.0
    for l in range(sizes.shape[0] - 1):
        for t in range(offs[l], offs[l] + sizes[l] * sizes[l + 1]):
            reg += theta[t] * theta[t]
    m = X.shape[0]
    return data / m + lam / (2.0 * m) * reg


@numba.njit(cache=True)
def _backprop(theta, X, Y, sizes, lam, bug_code):
    """Backprop gradient of ``cost``; ``bug_code`` injects the bugs that change the pass.

    Written with loops and ``np.dot`` only: axis reductions, boolean masks and ``np.clip``
    each add 0.2-1.7 s of compilation to the first run, for no speed at these sizes. The
    bugs that only edit a finished block are applied in NumPy by ``_edit_blocks``.
    """
    offs = _offsets(theta, X, Y, sizes)
    L, m = sizes.shape[0] - 1, X.shape[0]
    Z, acts = _forward(theta, X, sizes, offs)
    lse = _logsumexp_rows(Z)
    dZ = np.empty_like(Z)
    scale = 1.0 if bug_code == _SUM else 1.0 / m
    for i in range(m):  # d(data)/dZ_L = ((sum_k Y_ik) softmax(Z_i) - Y_i) / m
        ysum = 0.0
        for k in range(Z.shape[1]):
            ysum += Y[i, k]
        for k in range(Z.shape[1]):
            dZ[i, k] = (ysum * np.exp(Z[i, k] - lse[i]) - Y[i, k]) * scale
    reg = 0.0 if bug_code == _MISSING_REG else lam / m
    g = np.empty_like(theta)
    for l in range(L - 1, -1, -1):
        fi, fo, off = sizes[l], sizes[l + 1], offs[l]
        W = theta[off:off + fi * fo].reshape((fi, fo))
        gW = g[off:off + fi * fo].reshape((fi, fo))
        if l == 0:
            np.dot(X.T, dZ, gW)  # BLAS writes straight into g
        else:
            np.dot(acts[l - 1].T, dZ, gW)
        for i in range(fi):
            for j in range(fo):
                gW[i, j] += reg * W[i, j]
        gb = g[off + fi * fo:offs[l + 1]]
        for j in range(fo):
            s = 0.0
            for i in range(dZ.shape[0]):
                s += dZ[i, j]
            gb[j] = s
        if l > 0:
            dZ = np.dot(dZ, W.T)  # dA_{l-1}, then through the ReLU mask
            if not (bug_code == _RELU and l == 1):
                A = acts[l - 1]
                for i in range(dZ.shape[0]):
                    for j in range(dZ.shape[1]):
                        if not A[i, j] > 0.0:
                            dZ[i, j] *= 0.0  # as a 0/1 mask would (keeps NaN)
    return g


def _edit_blocks(g, sizes, bug_code, clip):
    """Apply in place the bugs that edit a finished block of the gradient ``g``."""
    if bug_code not in (_BIAS2, _SIGN, _ONE, _TRANSPOSED, _CLIP, _SWAP):
        return g
    offs = np.concatenate(([0], np.cumsum(sizes[:-1] * sizes[1:] + sizes[1:])))
    s0, s1 = sizes[0], sizes[1]
    if bug_code == _BIAS2:
        g[s0 * s1:offs[1]] *= 2.0
    elif bug_code == _SIGN:
        g[offs[1]:offs[1] + s1 * sizes[2]] *= -1.0
    elif bug_code == _ONE:
        g[offs[1] + 1 * sizes[2] + 3] += 1e-3
    elif bug_code == _TRANSPOSED:
        g[:s0 * s1] = g[:s0 * s1].reshape((s0, s1)).T.ravel()
    elif bug_code == _CLIP:
        np.clip(g[:s0 * s1], -clip, clip, out=g[:s0 * s1])
    elif bug_code == _SWAP:
        b1 = g[s0 * s1:offs[1]].copy()
        g[s0 * s1:offs[1]] = g[offs[2] - sizes[2]:offs[2]]
        g[offs[2] - sizes[2]:offs[2]] = b1
    return g


# -- Python front -----------------------------------------------------------------------
def _sizes_tuple(sizes: Any) -> tuple[int, ...]:
    if isinstance(sizes, str):
        if sizes not in SIZES:
            raise ValueError(f"unknown MLP size {sizes!r}; presets are {sorted(SIZES)}")
        return SIZES[sizes]
    dims = tuple(int(s) for s in np.asarray(sizes).ravel())
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"MLP sizes must be >= 2 positive ints (input, ..., classes), got {sizes}")
    return dims


def _check_bug(bug: str | None, dims: tuple[int, ...]) -> None:
    if bug is None:
        return
    if bug not in BUGS:
        raise ValueError(f"unknown bug {bug!r}; valid names are {list(BUGS)}")
    need_w2 = bug in ("sign-flip", "one-element", "wrong-relu-mask", "swapped")
    if need_w2 and len(dims) < 3:
        raise ValueError(f"bug {bug!r} needs at least one hidden layer, got sizes {dims}")
    if bug == "one-element" and (dims[1] < 2 or dims[2] < 4):
        raise ValueError(f"bug 'one-element' needs W2 of shape >= (2, 4), got sizes {dims}")
    if bug == "transposed" and min(dims[0], dims[1]) < 2:
        raise ValueError(f"bug 'transposed' needs W1 with both sides >= 2, got sizes {dims}")
    if bug == "swapped" and dims[1] != dims[2]:
        raise ValueError(f"bug 'swapped' exchanges db1 and db2, which needs sizes[1] == sizes[2]"
                         f" (b1, b2 of the same shape), got sizes {dims}; try size 'SQ'")


def mlp_layout(sizes: Any) -> Layout:
    """The Layout ``W1, b1, W2, b2, ...`` of an MLP (``sizes``: preset name or ints)."""
    dims = _sizes_tuple(sizes)
    shapes: dict[str, tuple[int, ...]] = {}
    for l in range(len(dims) - 1):
        shapes[f"W{l + 1}"] = (dims[l], dims[l + 1])
        shapes[f"b{l + 1}"] = (dims[l + 1],)
    return Layout(shapes)


def affected_blocks(bug: str | None, sizes: Any, *, lam: float = 0.1) -> set[str]:
    """Names of the gradient blocks that ``bug`` makes wrong (the cost is never changed).

    Parameters
    ----------
    bug : str or None
        A key of ``BUGS``; ``None`` gives the empty set.
    sizes : str or sequence of int
        Preset name or layer sizes.
    lam : float, optional
        Regularisation strength: with ``lam == 0`` 'missing-regularization' changes nothing.

    Returns
    -------
    set of str
        Assumes a batch of more than one row (with m == 1, 'mean-vs-sum' changes nothing).
    """
    dims = _sizes_tuple(sizes)
    _check_bug(bug, dims)
    names = set(mlp_layout(dims).names)
    return {
        None: set(),
        "missing-regularization": {n for n in names if n.startswith("W")} if lam else set(),
        "bias-factor-2": {"b1"}, "sign-flip": {"W2"}, "one-element": {"W2"},
        "transposed": {"W1"}, "wrong-relu-mask": {"W1", "b1"}, "mean-vs-sum": names,
        "clipped": {"W1"}, "swapped": {"b1", "b2"},
    }[bug]


def grad(theta, X, Y, sizes, lam, bug: str | None = None, clip: float | None = None):
    """Backprop gradient of ``cost``, optionally with one bug of ``BUGS`` injected.

    Parameters
    ----------
    theta, X, Y, sizes, lam
        As for ``cost``.
    bug : str or None, optional
        Name of the bug to inject.
    clip : float or None, optional
        The bound c of 'clipped'; ``None``: half the largest |dW1| at this ``theta``.

    Returns
    -------
    numpy.ndarray
        New flat float64 gradient, same length as ``theta``.
    """
    sizes, lam = np.ascontiguousarray(sizes, dtype=np.int64), float(lam)
    if bug is not None:
        _check_bug(bug, _sizes_tuple(sizes))
    code = 0 if bug is None else _CODES[bug]
    if bug == "clipped" and clip is None:
        g0 = _backprop(theta, X, Y, sizes, lam, 0)
        clip = 0.5 * float(np.max(np.abs(g0[:sizes[0] * sizes[1]])))
    g = _backprop(theta, X, Y, sizes, lam, code)
    return _edit_blocks(g, sizes, code, 0.0 if clip is None else float(clip))


def cost_python(theta, X, Y, sizes, lam) -> float:
    """``cost`` in plain NumPy (no numba), for the Python backends and benchmarks.

    Complex-safe: with a complex ``theta`` (``method="complex"``) it returns a complex
    number (ReLU and the max of the log-sum-exp compare real parts, as NumPy does).
    """
    dims = _sizes_tuple(sizes)
    theta = np.asarray(theta)
    if theta.dtype.kind != "c":
        theta = theta.astype(np.float64, copy=False)
    p = mlp_layout(dims).unflatten(theta)
    L = len(dims) - 1
    A = np.asarray(X, dtype=np.float64)
    for l in range(1, L + 1):
        A = A @ p[f"W{l}"] + p[f"b{l}"]
        if l < L:
            A = np.maximum(A, 0.0)
    zmax = A.max(axis=1, keepdims=True)
    lse = zmax + np.log(np.exp(A - zmax).sum(axis=1, keepdims=True))
    m = A.shape[0]
    reg = sum(np.sum(p[f"W{l}"] * p[f"W{l}"]) for l in range(1, L + 1))
    value = np.sum(Y * (lse - A)) / m + lam / (2.0 * m) * reg
    return complex(value) if theta.dtype.kind == "c" else float(value)


@dataclass(frozen=True, eq=False)
class MLPProblem:
    """A ready-to-check MLP: ``cost(theta, *args)`` and ``grad(theta, *args)``."""

    cost: Callable[..., float]
    grad: Callable[..., np.ndarray]
    theta: np.ndarray
    args: tuple
    layout: Layout
    sizes: tuple[int, ...]
    bug: str | None
    name: str

    def params(self) -> dict[str, np.ndarray]:
        """Copies of the blocks of ``theta`` by name."""
        return {k: v.copy() for k, v in self.layout.unflatten(self.theta).items()}

    def affected(self) -> set[str]:
        """The blocks the injected bug makes wrong (see ``affected_blocks``)."""
        return affected_blocks(self.bug, self.sizes, lam=self.args[3])


def make_mlp(size: Any = "S", *, bug: str | None = None, seed: int = 0, lam: float = 0.1,
             batch: int | None = None) -> MLPProblem:
    """Build an MLP problem: data, He-initialised ``theta``, cost and (buggy) gradient.

    Parameters
    ----------
    size : str or sequence of int, optional
        A key of ``SIZES`` or layer sizes ``(d_in, hidden..., classes)``.
    bug : str or None, optional
        A key of ``BUGS`` injected into the gradient (never into the cost).
    seed : int, optional
        Seed of ``np.random.default_rng``: draws theta, then X, then the labels.
    lam : float, optional
        L2 regularisation strength.
    batch : int or None, optional
        Rows m of X; default ``BATCH[size]`` (32 for custom sizes).

    Returns
    -------
    MLPProblem
    """
    dims = _sizes_tuple(size)
    _check_bug(bug, dims)
    if batch is None:
        batch = BATCH.get(size, _DEFAULT_BATCH) if isinstance(size, str) else _DEFAULT_BATCH
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    layout = mlp_layout(dims)
    rng = np.random.default_rng(seed)
    blocks = {}
    for l in range(len(dims) - 1):
        blocks[f"W{l + 1}"] = rng.standard_normal((dims[l], dims[l + 1])) * np.sqrt(2 / dims[l])
        blocks[f"b{l + 1}"] = 0.1 * rng.standard_normal(dims[l + 1])
    theta = layout.flatten(blocks)
    X = rng.standard_normal((batch, dims[0]))
    Y = np.eye(dims[-1])[rng.integers(0, dims[-1], size=batch)]
    args = (X, Y, np.array(dims, dtype=np.int64), float(lam))
    g = grad
    if bug is not None:
        clip = None
        if bug == "clipped":
            clip = 0.5 * float(np.max(np.abs(grad(theta, *args)[layout.block_slice("W1")])))
        g = functools.partial(grad, bug=bug, clip=clip)
    name = f"mlp-{size}" if isinstance(size, str) else "mlp-" + "x".join(map(str, dims))
    return MLPProblem(cost, g, theta, args, layout, dims, bug, name)
