"""A small course-style problem (numpy, dict params, ``dW1`` keys plus ``dZ``/``dA`` caches)
and realistic bugs injected into its backward, for the contract tests."""

from __future__ import annotations

import numpy as np

from fastcheck.models import course

SIZES = (5, 4, 4, 3)
M = 6
LAMBD = 0.7


def problem(seed: int = 0):
    """``params`` (a dict) and ``args`` (X, Y, lambd) of a tiny course MLP (N = 59)."""
    params = course.init_params(SIZES, seed)
    X, Y = course.make_data(SIZES, M, seed)
    return params, (X, Y, LAMBD)


def cost(params, X, Y, lambd):
    return course.cost(params, X, Y, lambd)


def backward(params, X, Y, lambd):
    return course.backward(params, X, Y, lambd)


def backward_bug(name: str):
    """``backward`` with one realistic bug injected (never into the cost)."""

    def buggy(params, X, Y, lambd):
        g = course.backward(params, X, Y, lambd)
        m = X.shape[1]
        if name == "missing-regularization":
            for l in (1, 2, 3):
                g[f"dW{l}"] = g[f"dW{l}"] - lambd / m * params[f"W{l}"]
        elif name == "factor-2":
            g["db1"] = 2 * g["db1"]
        elif name == "transposed":
            g["dW2"] = np.ascontiguousarray(g["dW2"].T).reshape(g["dW2"].shape)
        elif name == "swapped":
            g["db1"], g["db2"] = g["db2"], g["db1"]
        elif name == "sign-flip":
            g["dW2"] = -g["dW2"]
        elif name == "mean-vs-sum":
            for key in list(g):
                if key.startswith(("dW", "db")):
                    reg = lambd / m * params["W" + key[2:]] if key.startswith("dW") else 0.0
                    g[key] = (g[key] - reg) * m + reg
        else:
            raise KeyError(name)
        return g

    return buggy


BUGS = ("missing-regularization", "factor-2", "transposed", "swapped", "sign-flip",
        "mean-vs-sum")
AFFECTED = {"missing-regularization": {"W1", "W2", "W3"}, "factor-2": {"b1"},
            "transposed": {"W2"}, "swapped": {"b1", "b2"}, "sign-flip": {"W2"},
            "mean-vs-sum": {"W1", "b1", "W2", "b2", "W3", "b3"}}
