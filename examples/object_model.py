"""Checking a model that keeps its parameters on itself, with ``fc.bind_params``.

``TwoLayerNet`` is written the way the classic assignment writes it: the parameters live
in ``self.params`` (a dict), and ``loss(X, y)`` reads them from there and returns
``(loss, grads)`` with ``grads`` keyed like ``params``. It takes no parameter argument,
so ``fc.check`` cannot pass it perturbed ones directly; ``fc.bind_params`` does it::

    b = fc.bind_params(model, "params", model.loss, grad=True)
    report = fc.check(b.cost, b.grad, b.params, (X, y))

Every evaluation puts the perturbed arrays into ``model.params`` and puts the model's own
arrays back afterwards, so the model is unchanged after the check (even if it fails or
raises). Run it (from the repository root)::

    python examples/object_model.py

It checks the correct model (PASS), then one whose ``db1`` forgets the ReLU mask (FAIL,
naming ``b1``), and shows that the model still holds its own arrays.
"""

import numpy as np

import fastcheck as fc


class TwoLayerNet:
    """affine - ReLU - affine - softmax, with L2 regularisation ``0.5 * reg * ||W||^2``."""

    def __init__(self, input_dim=6, hidden_dim=10, num_classes=3, reg=0.1, seed=0,
                 bug=False):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.standard_normal((input_dim, hidden_dim)) * 0.5,
            "b1": rng.standard_normal(hidden_dim) * 0.1,
            "W2": rng.standard_normal((hidden_dim, num_classes)) * 0.5,
            "b2": np.zeros(num_classes),
        }
        self.reg = reg
        self.bug = bug

    def loss(self, X, y):
        """The softmax loss of the batch ``X`` with labels ``y``, and its gradients."""
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        n = X.shape[0]
        z = X @ W1 + b1
        h = np.maximum(z, 0.0)
        scores = h @ W2 + b2
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(n), y]).mean()
        loss += 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

        dscores = probs.copy()
        dscores[np.arange(n), y] -= 1.0
        dscores /= n
        grads = {"W2": h.T @ dscores + self.reg * W2, "b2": dscores.sum(axis=0)}
        dh = dscores @ W2.T
        dz = dh * (z > 0)
        grads["W1"] = X.T @ dz + self.reg * W1
        grads["b1"] = (dh if self.bug else dz).sum(axis=0)  # the bug: no ReLU mask
        return loss, grads


def main() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 6))
    y = rng.integers(0, 3, size=8)

    model = TwoLayerNet()
    b = fc.bind_params(model, "params", model.loss, grad=True)
    print(fc.check(b.cost, b.grad, b.params, (X, y)).summary())

    buggy = TwoLayerNet(bug=True)
    own = dict(buggy.params)
    b = fc.bind_params(buggy, "params", buggy.loss, grad=True)
    report = fc.check(b.cost, b.grad, b.params, (X, y))
    print()
    print(report.summary())
    unchanged = all(buggy.params[k] is own[k] for k in own)
    print(f"\nafter the check the model holds its own arrays: {unchanged}")


if __name__ == "__main__":
    main()
