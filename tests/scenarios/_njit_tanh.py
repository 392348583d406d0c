"""A student's tanh MLP on a flat theta: the cost in numba (so the ``numba`` backend runs it
inside the prange kernel), the backward in numpy with an injectable bug."""

from __future__ import annotations

import numba
import numpy as np

import fastcheck as fc


@numba.njit(cache=True)
def cost(theta, X, y, d, h, c, lam):
    o = 0
    W1 = theta[o:o + d * h].reshape((d, h))
    o += d * h
    b1 = theta[o:o + h]
    o += h
    W2 = theta[o:o + h * c].reshape((h, c))
    o += h * c
    b2 = theta[o:o + c]
    S = np.tanh(X @ W1 + b1) @ W2 + b2
    loss = 0.0
    for i in range(X.shape[0]):
        m = S[i].max()
        loss += m + np.log(np.exp(S[i] - m).sum()) - S[i, y[i]]
    return loss / X.shape[0] + 0.5 * lam * (np.sum(W1 * W1) + np.sum(W2 * W2))


def layout(d, h, c):
    return fc.Layout({"W1": (d, h), "b1": (h,), "W2": (h, c), "b2": (c,)})


def grad(theta, X, y, d, h, c, lam, bug=None):
    lay = layout(d, h, c)
    p = lay.unflatten(theta)
    n = X.shape[0]
    A = np.tanh(X @ p["W1"] + p["b1"])
    S = A @ p["W2"] + p["b2"]
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(n), y] -= 1
    dS = P / (1 if bug == "mean_vs_sum" else n)
    dA = dS @ p["W2"].T
    dZ = dA * ((1 - A) ** 2 if bug == "tanh_derivative" else 1 - A * A)
    g = {"W1": X.T @ dZ + lam * p["W1"], "b1": dZ.sum(axis=0),
         "W2": A.T @ dS + lam * p["W2"], "b2": dS.sum(axis=0)}
    if bug == "reg_missing":
        g["W1"] -= lam * p["W1"]
        g["W2"] -= lam * p["W2"]
    elif bug == "factor2":
        g["b2"] = 2 * g["b2"]
    return lay.flatten(g)


def problem(seed, d=6, h=5, c=3, n=10, lam=0.05):
    rng = np.random.default_rng(seed)
    lay = layout(d, h, c)
    theta = rng.normal(scale=0.5, size=lay.size)
    return theta, (rng.normal(size=(n, d)), rng.integers(0, c, size=n), d, h, c, lam), lay
