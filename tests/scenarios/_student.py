"""Backprop code the way students write it (numpy, dict params, caches), each with the bugs
that real backprop code contains (REFERENCE.md). Our own code.

Every ``make_*`` returns ``(cost, grad, params, args)``; the bug is chosen by a name in the
last argument ``cfg`` (ignored by the cost), so costs and gradients are module-level and
pickle for the process backend.
"""

from __future__ import annotations

import numpy as np

from tests import _layers as L


def softmax_ce(scores, y):
    """Mean cross-entropy of the rows of ``scores`` and its gradient."""
    sh = scores - scores.max(axis=1, keepdims=True)
    logp = sh - np.log(np.exp(sh).sum(axis=1, keepdims=True))
    n = len(y)
    p = np.exp(logp)
    p[np.arange(n), y] -= 1
    return -logp[np.arange(n), y].mean(), p / n


def svm_loss(scores, y):
    """Mean multiclass hinge loss (margin 1) and its gradient."""
    n = scores.shape[0]
    m = np.maximum(0, scores - scores[np.arange(n), y][:, None] + 1.0)
    m[np.arange(n), y] = 0
    ind = (m > 0).astype(float)
    ind[np.arange(n), y] = -ind.sum(axis=1)
    return m.sum() / n, ind / n


_ACT = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def _act_back(act, z, a, da):
    if act == "relu":
        return da * (z > 0)
    if act == "tanh":
        return da * (1 - a * a)
    return da * a * (1 - a)


# -- a 3-layer MLP on a dict (W2 square, b1 and b2 the same shape) ---------------------------
def mlp_cost(p, X, y, reg, cfg):
    a = X
    for l in (1, 2):
        a = _ACT[cfg["act"]](a @ p[f"W{l}"] + p[f"b{l}"])
    loss, _ = softmax_ce(a @ p["W3"] + p["b3"], y)
    return loss + 0.5 * reg * sum(np.sum(p[f"W{l}"] ** 2) for l in (1, 2, 3))


def mlp_grad(p, X, y, reg, cfg):
    act, bug = cfg["act"], cfg.get("bug")
    z1 = X @ p["W1"] + p["b1"]
    a1 = _ACT[act](z1)
    z2 = a1 @ p["W2"] + p["b2"]
    a2 = _ACT[act](z2)
    _, ds = softmax_ce(a2 @ p["W3"] + p["b3"], y)
    dz2 = _act_back(act, z2, a2, ds @ p["W3"].T)
    dz1 = _act_back(act, z1, a1, dz2 @ p["W2"].T)
    g = {"dW3": a2.T @ ds, "db3": ds.sum(0), "dW2": a1.T @ dz2, "db2": dz2.sum(0),
         "dW1": X.T @ dz1, "db1": dz1.sum(0), "dZ1": dz1}  # dZ1: a cache, ignored
    if bug != "reg_missing":
        for l in (1, 2, 3):
            g[f"dW{l}"] = g[f"dW{l}"] + reg * p[f"W{l}"]
    if bug == "clip":  # clipped inside the function that returns it
        c = 0.5 * np.abs(g["dW1"]).max()
        g["dW1"] = np.clip(g["dW1"], -c, c)
    elif bug == "four_over_m":  # the deep-learning course's db1 = 4./m * np.sum(dZ1)
        g["db1"] = 4 * g["db1"]
    elif bug == "sign_flip":
        g["dW2"] = -g["dW2"]
    elif bug == "transposed":
        g["dW2"] = g["dW2"].T.copy()
    elif bug == "swapped":
        g["db1"], g["db2"] = g["db2"], g["db1"]
    elif bug == "one_element":
        g["dW1"] = g["dW1"].copy()
        g["dW1"][2, 3] += 1e-5  # relative error ~4e-5 in one of 99 components
    return g


def make_mlp(seed, bug=None, act="relu", n=8):
    rng = np.random.default_rng(seed)
    d, h, c = 5, 6, 3
    p = {"W1": rng.normal(scale=0.5, size=(d, h)), "b1": rng.normal(scale=0.1, size=h),
         "W2": rng.normal(scale=0.5, size=(h, h)), "b2": rng.normal(scale=0.1, size=h),
         "W3": rng.normal(scale=0.5, size=(h, c)), "b3": rng.normal(scale=0.1, size=c)}
    X, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
    return mlp_cost, mlp_grad, p, (X, y, 0.1, {"act": act, "bug": bug})


# -- the CS231n two-layer net (reg * ||W||^2), softmax or SVM, optionally on ReLU kinks -------
def tln_cost(p, X, y, reg, cfg):
    s = np.maximum(0, X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    loss = (svm_loss if cfg["svm"] else softmax_ce)(s, y)[0]
    return loss + reg * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))


def tln_grad(p, X, y, reg, cfg):
    bug = cfg.get("bug")
    z = X @ p["W1"] + p["b1"]
    h = np.maximum(0, z)
    _, ds = (svm_loss if cfg["svm"] else softmax_ce)(h @ p["W2"] + p["b2"], y)
    if bug == "svm_no_correct":  # the -count term of the correct class forgotten
        ds = np.where(ds < 0, 0.0, ds)
    dh = ds @ p["W2"].T
    if bug == "relu_ge":  # (z >= 0): a valid subgradient at z == 0, not a bug
        dz = dh * (z >= 0)
    elif bug == "leaky":  # a leaky slope left in the backward of a plain ReLU
        dz = dh * np.where(z > 0, 1.0, 0.01)
    else:
        dz = dh * (z > 0)
    rf = 1.0 if bug == "reg_half" else 2.0  # d/dW reg*||W||^2 = 2*reg*W
    return {"W1": X.T @ dz + rf * reg * p["W1"], "b1": dz.sum(0),
            "W2": h.T @ ds + rf * reg * p["W2"], "b2": ds.sum(0)}


def make_tln(seed, bug=None, svm=False, kink=None):
    """``kink="exact"``: example 0 has pre-activation exactly 0 at unit 0 (x_0 = 0, b1[0] = 0);
    ``kink="near"``: example 0 sits within ~1e-7 of the kink at every hidden unit."""
    rng = np.random.default_rng(seed)
    d, h, c, n = 4, 7, 3, 10
    p = {"W1": 0.5 * rng.normal(size=(d, h)), "b1": 0.05 * rng.normal(size=h),
         "W2": 0.5 * rng.normal(size=(h, c)), "b2": np.zeros(c)}
    X, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
    if kink == "exact":
        X[0] = 0.0
        p["b1"][0] = 0.0
    elif kink == "near":
        p["b1"] = -(X @ p["W1"])[0] + 1e-7 * rng.normal(size=h)
    return tln_cost, tln_grad, p, (X, y, 0.05, {"svm": svm, "bug": bug})


# -- a vanilla RNN through time: h_t = tanh(x_t Wx + h_{t-1} Wh + b), J = sum_t <h_t Wy, T_t>
def _rnn_states(p, x):
    prev = np.broadcast_to(p["h0"], (x.shape[0], p["h0"].size))
    hs = []
    for t in range(x.shape[1]):
        prev = np.tanh(x[:, t] @ p["Wx"] + prev @ p["Wh"] + p["b"])
        hs.append(prev)
    return hs


def rnn_cost(p, x, target, cfg):
    hs = _rnn_states(p, x)
    return sum(np.sum((h @ p["Wy"]) * target[:, t]) for t, h in enumerate(hs))


def rnn_grad(p, x, target, cfg):
    """``bug="t0"``: at t = 0 the backward reads h_0 (the new state) instead of h0;
    ``bug="truncated"``: each step's loss is backpropagated ``cfg["k"]`` steps only."""
    bug, T = cfg.get("bug"), x.shape[1]
    hs = _rnn_states(p, x)
    h0 = np.broadcast_to(p["h0"], hs[0].shape)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    k = cfg["k"] if bug == "truncated" else T
    for s in range(T):
        g["Wy"] += hs[s].T @ target[:, s]
        dh = target[:, s] @ p["Wy"].T
        for t in range(s, max(-1, s - k), -1):
            dz = dh * (1 - hs[t] ** 2)
            prev = hs[0] if (bug == "t0" and t == 0) else (hs[t - 1] if t > 0 else h0)
            g["Wx"] += x[:, t].T @ dz
            g["Wh"] += prev.T @ dz
            g["b"] += dz.sum(0)
            dh = dz @ p["Wh"].T
            if t == 0:
                g["h0"] += dh.sum(0)
    return g


def make_rnn(seed, bug=None, T=6, k=3, wh=0.3):
    rng = np.random.default_rng(seed)
    d, h, o, n = 3, 4, 2, 3
    p = {"Wx": rng.normal(scale=0.5, size=(d, h)), "Wh": rng.normal(scale=wh, size=(h, h)),
         "b": rng.normal(scale=0.1, size=h), "h0": rng.normal(scale=0.5, size=h),
         "Wy": rng.normal(scale=0.5, size=(h, o))}
    x, target = rng.normal(size=(n, T, d)), rng.normal(size=(n, T, o))
    return rnn_cost, rnn_grad, p, (x, target, {"bug": bug, "k": k})


# -- a softmax layer followed by squared error (its backward needs the full Jacobian) --------
def smx_cost(p, X, t, cfg):
    z = X @ p["W"] + p["b"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return 0.5 * np.sum((e / e.sum(axis=1, keepdims=True) - t) ** 2) / X.shape[0]


def smx_grad(p, X, t, cfg):
    z = X @ p["W"] + p["b"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    q = e / e.sum(axis=1, keepdims=True)
    dq = (q - t) / X.shape[0]
    if cfg.get("bug") == "diagonal":  # only the Jacobian's diagonal q(1 - q)
        dz = q * (1 - q) * dq
    else:
        dz = q * (dq - (q * dq).sum(axis=1, keepdims=True))
    return {"W": X.T @ dz, "b": dz.sum(0)}


def make_smx(seed, bug=None):
    rng = np.random.default_rng(seed)
    p = {"W": rng.normal(size=(4, 5)), "b": rng.normal(scale=0.1, size=5)}
    return smx_cost, smx_grad, p, (rng.normal(size=(6, 4)), rng.random((6, 5)), {"bug": bug})


# -- nearest-neighbour upsampling x2 (a layer) -----------------------------------------------
def upsample_forward(x):
    return x.repeat(2, axis=2).repeat(2, axis=3), x.shape


def upsample_backward(dout, cache, bug=False):
    n, c, h, w = cache
    if bug:  # subsamples dout instead of summing each 2x2 block
        return dout[:, :, ::2, ::2].copy()
    return dout.reshape(n, c, h, 2, w, 2).sum(axis=(3, 5))


# -- a small CNN: conv (stride 2, pad 1) - ReLU - max pool - affine - softmax -----------------
_CONV = {"stride": 2, "pad": 1}
_POOL = {"pool_height": 2, "pool_width": 2, "stride": 1}


def cnn_cost(p, x, y, cfg):
    a, _ = L.conv_forward_naive(x, p["Wc"], p["bc"], _CONV)
    m, _ = L.max_pool_forward_naive(np.maximum(a, 0), _POOL)
    s, _ = L.affine_forward(m, p["Wa"], p["ba"])
    return softmax_ce(s, y)[0]


def cnn_grad(p, x, y, cfg):
    bug = cfg.get("bug")
    a, c1 = L.conv_forward_naive(x, p["Wc"], p["bc"], _CONV)
    m, c3 = L.max_pool_forward_naive(np.maximum(a, 0), _POOL)
    s, c4 = L.affine_forward(m, p["Wa"], p["ba"])
    dm, dwa, dba = L.affine_backward(softmax_ce(s, y)[1], c4)
    da = L.max_pool_backward_naive(dm, c3, bug=bug == "pool") * (a > 0)
    _, dwc, dbc = L.conv_backward_naive(da, c1, bug=bug == "conv")
    return {"Wc": dwc, "bc": dbc, "Wa": dwa, "ba": dba}


def make_cnn(seed, bug=None):
    rng = np.random.default_rng(seed)
    p = {"Wc": rng.normal(scale=0.3, size=(3, 2, 3, 3)), "bc": rng.normal(scale=0.1, size=3),
         "Wa": rng.normal(scale=0.3, size=(12, 3)), "ba": np.zeros(3)}
    return cnn_cost, cnn_grad, p, (rng.normal(size=(2, 2, 5, 5)), rng.integers(0, 3, size=2),
                                   {"bug": bug})


# -- affine - batchnorm - ReLU - affine: b1 before batchnorm has a zero gradient -------------
def bn_cost(p, x, y, cfg):
    a, _ = L.affine_forward(x, p["W1"], p["b1"])
    b, _ = L.batchnorm_forward(a, p["g"], p["be"], {"eps": 1e-5})
    return softmax_ce(np.maximum(b, 0) @ p["W2"] + p["b2"], y)[0]


def bn_grad(p, x, y, cfg):
    a, c1 = L.affine_forward(x, p["W1"], p["b1"])
    b, c2 = L.batchnorm_forward(a, p["g"], p["be"], {"eps": 1e-5})
    r = np.maximum(b, 0)
    _, ds = softmax_ce(r @ p["W2"] + p["b2"], y)
    dout = (ds @ p["W2"].T) * (b > 0)
    da, dg, dbe = L.batchnorm_backward(dout, c2, bug=cfg.get("bug") == "gamma")
    _, dw1, db1 = L.affine_backward(da, c1)
    return {"W1": dw1, "b1": db1, "g": dg, "be": dbe, "W2": r.T @ ds, "b2": ds.sum(0)}


def make_bn(seed, bug=None):
    rng = np.random.default_rng(seed)
    p = {"W1": rng.normal(size=(4, 5)), "b1": rng.normal(scale=0.1, size=5),
         "g": 1 + 0.1 * rng.normal(size=5), "be": 0.1 * rng.normal(size=5),
         "W2": rng.normal(size=(5, 3)), "b2": np.zeros(3)}
    return bn_cost, bn_grad, p, (rng.normal(size=(6, 4)), rng.integers(0, 3, size=6),
                                 {"bug": bug})


# -- inverted dropout with a seeded mask in the cost -----------------------------------------
def drop_cost(p, X, y, cfg):
    h = np.maximum(0, X @ p["W1"] + p["b1"])
    mask = (np.random.default_rng(cfg["seed"]).random(h.shape) < 0.7) / 0.7
    return softmax_ce((h * mask) @ p["W2"] + p["b2"], y)[0]


def drop_grad(p, X, y, cfg):
    """``bug="anew"``: the backward draws its own (unseeded) mask."""
    z = X @ p["W1"] + p["b1"]
    h = np.maximum(0, z)
    rng = np.random.default_rng(None if cfg.get("bug") == "anew" else cfg["seed"])
    mask = (rng.random(h.shape) < 0.7) / 0.7
    _, ds = softmax_ce((h * mask) @ p["W2"] + p["b2"], y)
    dz = (ds @ p["W2"].T) * mask * (z > 0)
    return {"W1": X.T @ dz, "b1": dz.sum(0), "W2": (h * mask).T @ ds, "b2": ds.sum(0)}


def make_drop(seed, bug=None):
    rng = np.random.default_rng(seed)
    p = {"W1": rng.normal(size=(4, 8)), "b1": 0.1 * rng.normal(size=8),
         "W2": rng.normal(size=(8, 3)), "b2": np.zeros(3)}
    return drop_cost, drop_grad, p, (rng.normal(size=(6, 4)), rng.integers(0, 3, size=6),
                                     {"bug": bug, "seed": 5})
