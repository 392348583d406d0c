"""Small plain-numpy models written the way classic course code writes them."""

from __future__ import annotations

import numpy as np


def init_params(sizes, seed=0):
    """dict W1, b1, W2, b2, ... with W_l of shape (n_l, n_{l-1}) as in the course."""
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.normal(size=(sizes[l], sizes[l - 1])) * np.sqrt(2 / sizes[l - 1])
        params[f"b{l}"] = rng.normal(size=(sizes[l], 1)) * 0.1
    return params


def make_data(sizes, m=8, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(sizes[0], m))
    labels = rng.integers(0, sizes[-1], size=m)
    Y = np.eye(sizes[-1])[:, labels]
    return X, Y


def forward(params, X, act="tanh"):
    L = len(params) // 2
    A = X
    cache = [(None, X)]
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        if l < L:
            A = np.tanh(Z) if act == "tanh" else np.maximum(Z, 0)
        else:
            Z = Z - Z.max(axis=0, keepdims=True)
            E = np.exp(Z)
            A = E / E.sum(axis=0, keepdims=True)
        cache.append((Z, A))
    return A, cache


def cost(params, X, Y, lam=0.1, act="tanh"):
    m = X.shape[1]
    A, _ = forward(params, X, act)
    data = -np.sum(Y * np.log(A)) / m
    reg = lam / (2 * m) * sum(np.sum(params[k] ** 2) for k in params if k.startswith("W"))
    return data + reg


def backward(params, X, Y, lam=0.1, act="tanh"):
    """Classic backprop returning dW1, db1, ... and the dZ/dA intermediates."""
    m = X.shape[1]
    L = len(params) // 2
    A, cache = forward(params, X, act)
    grads = {}
    dZ = A - Y
    for l in range(L, 0, -1):
        A_prev = cache[l - 1][1]
        grads[f"dW{l}"] = dZ @ A_prev.T / m + lam / m * params[f"W{l}"]
        grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True) / m
        grads[f"dZ{l}"] = dZ
        if l > 1:
            dA = params[f"W{l}"].T @ dZ
            grads[f"dA{l - 1}"] = dA
            Z_prev = cache[l - 1][0]
            dZ = dA * (1 - np.tanh(Z_prev) ** 2) if act == "tanh" else dA * (Z_prev > 0)
    return grads
