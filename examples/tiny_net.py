"""A small network written the way the classic deep-learning course writes it.

Parameters live in a dict ``{"W1", "b1", "W2", "b2"}`` with column-vector biases; the
examples are the columns of ``X`` (shape ``(n_x, m)``), the labels a row ``Y`` of 0/1;
a tanh hidden layer, a sigmoid output, cross-entropy plus L2 regularisation. ``backward``
returns ``dW1, db1, ...`` (and the intermediate ``dZ``s, which fastcheck ignores).

Check it from the command line (from the repository root)::

    fastcheck check examples/tiny_net.py:cost examples/tiny_net.py:backward \\
        --params examples/tiny_net_params.npz --args examples/tiny_net_args.npz

``backward_buggy`` has a classic bug (the regularisation term of ``dW2`` is missing);
checking it instead of ``backward`` fails and names the ``W2`` block. The ``.npz`` files
are written by ``examples/make_npz.py``.
"""

import numpy as np


def init_params(n_x: int = 5, n_h: int = 8, seed: int = 0) -> dict:
    """Small random weights, zero biases (the course's initialisation)."""
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.standard_normal((n_h, n_x)) * 0.5,
        "b1": np.zeros((n_h, 1)),
        "W2": rng.standard_normal((1, n_h)) * 0.5,
        "b2": np.zeros((1, 1)),
    }


def make_data(n_x: int = 5, m: int = 12, seed: int = 1) -> tuple:
    """Inputs ``X`` (n_x, m) and 0/1 labels ``Y`` (1, m)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m))
    Y = (rng.random((1, m)) < 0.5).astype(np.float64)
    return X, Y


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward(params, X):
    """The activations, kept for the backward pass."""
    Z1 = params["W1"] @ X + params["b1"]
    A1 = np.tanh(Z1)
    Z2 = params["W2"] @ A1 + params["b2"]
    A2 = sigmoid(Z2)
    return {"A1": A1, "A2": A2}


def cost(params, X, Y, lambd):
    """Cross-entropy plus ``lambd / (2 m) * (||W1||^2 + ||W2||^2)``."""
    m = X.shape[1]
    A2 = forward(params, X)["A2"]
    cross_entropy = -np.sum(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)) / m
    l2 = lambd / (2 * m) * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))
    return cross_entropy + l2


def backward(params, X, Y, lambd):
    """The gradients of ``cost``: ``dW1, db1, dW2, db2`` (and ``dZ1, dZ2``)."""
    m = X.shape[1]
    cache = forward(params, X)
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y
    dW2 = dZ2 @ A1.T / m + lambd / m * params["W2"]
    db2 = np.sum(dZ2, axis=1, keepdims=True) / m
    dZ1 = (params["W2"].T @ dZ2) * (1 - A1 ** 2)
    dW1 = dZ1 @ X.T / m + lambd / m * params["W1"]
    db1 = np.sum(dZ1, axis=1, keepdims=True) / m
    return {"dZ2": dZ2, "dW2": dW2, "db2": db2, "dZ1": dZ1, "dW1": dW1, "db1": db1}


def backward_buggy(params, X, Y, lambd):
    """``backward`` with a classic bug: ``dW2`` forgets the regularisation term."""
    grads = backward(params, X, Y, lambd)
    grads["dW2"] = grads["dW2"] - lambd / X.shape[1] * params["W2"]
    return grads
