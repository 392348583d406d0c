"""The MLP as a deep-learning course writes it: numpy, a dict of parameters, a hand backward.

This is the code most users bring to a gradient checker, and the baseline of the
benchmarks: parameters ``{"W1": (n1, n0), "b1": (n1, 1), "W2": ...}``, examples in
columns (``X`` is ``(n0, m)``), ``Z_l = W_l @ A_{l-1} + b_l``, ReLU on the hidden layers,
softmax cross-entropy averaged over the ``m`` examples, plus ``lambd / (2 m) * sum ||W_l||^2``
(biases are not regularised). ``backward`` returns ``dW1, db1, ...`` (and the ``dZ``/``dA``
caches a course keeps, which fastcheck ignores). ``classic_loop`` is the course's
``gradient_check_n``: dictionary to vector, perturb one component, vector back to a
dictionary, two costs.

The sizes match the numba model (``fastcheck.models.mlp.SIZES``): S ``[20, 16, 8, 3]``
(N = 499), M ``[64, 64, 32, 10]`` (N = 6,570), L ``[784, 128, 64, 10]`` (N = 109,386).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fastcheck.models.mlp import BATCH, SIZES

__all__ = ["CourseProblem", "make_course", "init_params", "make_data", "forward", "cost",
           "backward", "cost_and_grads", "dictionary_to_vector", "vector_to_dictionary",
           "classic_loop"]

#: L2 strength used by ``make_course``.
LAMBD = 0.1


def init_params(sizes: Sequence[int], seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised weights and small random biases (not zero: zero biases leave
    half of the gradient check trivial), ``W_l`` of shape ``(sizes[l], sizes[l-1])``."""
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])) \
            * np.sqrt(2.0 / sizes[l - 1])
        params[f"b{l}"] = 0.1 * rng.standard_normal((sizes[l], 1))
    return params


def make_data(sizes: Sequence[int], m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs ``X`` ``(sizes[0], m)`` and one-hot labels ``Y`` ``(sizes[-1], m)``."""
    rng = np.random.default_rng([seed, 1])
    X = rng.standard_normal((sizes[0], m))
    labels = rng.integers(0, sizes[-1], size=m)
    Y = np.zeros((sizes[-1], m))
    Y[labels, np.arange(m)] = 1.0
    return X, Y


def _n_layers(params: Mapping[str, np.ndarray]) -> int:
    return len(params) // 2


def forward(params: Mapping[str, np.ndarray], X: np.ndarray) -> tuple[np.ndarray, list]:
    """Softmax probabilities ``(classes, m)`` and the caches ``(A_prev, Z)`` per layer."""
    L = _n_layers(params)
    A = X
    caches = []
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        caches.append((A, Z))
        A = np.maximum(Z, 0) if l < L else Z
    Z = A - A.max(axis=0, keepdims=True)
    expZ = np.exp(Z)
    return expZ / expZ.sum(axis=0, keepdims=True), caches


def cost(params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray,
         lambd: float = LAMBD) -> float:
    """Softmax cross-entropy averaged over the examples, plus the L2 term."""
    m = X.shape[1]
    probs, _ = forward(params, X)
    data = -np.sum(Y * np.log(probs)) / m
    l2 = sum(np.sum(np.square(params[f"W{l}"])) for l in range(1, _n_layers(params) + 1))
    return float(data + lambd / (2 * m) * l2)


def backward(params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray,
             lambd: float = LAMBD) -> dict[str, np.ndarray]:
    """The gradients ``dW1, db1, ...`` (plus the ``dZ``/``dA`` a course also returns)."""
    m = X.shape[1]
    L = _n_layers(params)
    probs, caches = forward(params, X)
    grads: dict[str, np.ndarray] = {}
    dZ = (probs - Y) / m
    for l in range(L, 0, -1):
        A_prev, Z = caches[l - 1]
        grads[f"dZ{l}"] = dZ
        grads[f"dW{l}"] = dZ @ A_prev.T + lambd / m * params[f"W{l}"]
        grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True)
        if l > 1:
            dA = params[f"W{l}"].T @ dZ
            grads[f"dA{l - 1}"] = dA
            dZ = dA * (caches[l - 2][1] > 0)
    return grads


def cost_and_grads(params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray,
                   lambd: float = LAMBD) -> tuple[float, dict[str, np.ndarray]]:
    """``(cost, grads)`` in one call, for ``fc.check(..., grad=True)``."""
    return cost(params, X, Y, lambd), backward(params, X, Y, lambd)


def dictionary_to_vector(params: Mapping[str, np.ndarray]) -> np.ndarray:
    """The course's helper: every array of ``params``, flattened, one after another."""
    return np.concatenate([np.reshape(v, (-1,)) for v in params.values()])


def vector_to_dictionary(theta: np.ndarray, like: Mapping[str, np.ndarray]
                         ) -> dict[str, np.ndarray]:
    """The course's inverse helper: ``theta`` cut back into arrays shaped like ``like``."""
    out, start = {}, 0
    for name, value in like.items():
        out[name] = theta[start:start + value.size].reshape(value.shape)
        start += value.size
    return out


def classic_loop(cost: Callable[..., float], params: Mapping[str, np.ndarray],
                 args: tuple = (), indices: Sequence[int] | None = None,
                 epsilon: float = 1e-7) -> np.ndarray:
    """The course's ``gradient_check_n`` loop on a dict cost.

    Parameters
    ----------
    cost : callable
        ``cost(params, *args) -> float`` on a dict of arrays.
    params : mapping
        The point (not modified).
    args : tuple
        Extra arguments of ``cost`` (``X, Y, lambd``).
    indices : sequence of int, optional
        Flat components (in ``dictionary_to_vector`` order) to differentiate; all when None.
    epsilon : float
        The course's fixed step.

    Returns
    -------
    numpy.ndarray
        The numeric gradient at ``indices``.
    """
    values = dictionary_to_vector(params)
    idx = range(values.shape[0]) if indices is None else indices
    gradapprox = np.zeros(len(idx))
    for k, i in enumerate(idx):
        thetaplus = np.copy(values)
        thetaplus[i] += epsilon
        j_plus = cost(vector_to_dictionary(thetaplus, params), *args)
        thetaminus = np.copy(values)
        thetaminus[i] -= epsilon
        j_minus = cost(vector_to_dictionary(thetaminus, params), *args)
        gradapprox[k] = (j_plus - j_minus) / (2 * epsilon)
    return gradapprox


@dataclass(frozen=True)
class CourseProblem:
    """A course-style check: ``fc.check(cost, backward, params, args)``."""

    size: str
    sizes: tuple[int, ...]
    params: dict[str, np.ndarray]
    args: tuple  # (X, Y, lambd)

    @property
    def n_params(self) -> int:
        """N, the number of components."""
        return int(sum(v.size for v in self.params.values()))


def make_course(size: str = "M", seed: int = 0) -> CourseProblem:
    """The course network at a built-in size (``"S"``, ``"M"``, ``"L"``; see ``SIZES``)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    sizes = SIZES[size]
    X, Y = make_data(sizes, BATCH[size], seed)
    return CourseProblem(size, sizes, init_params(sizes, seed), (X, Y, LAMBD))
