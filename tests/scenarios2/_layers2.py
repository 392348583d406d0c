"""Layers beyond tests/_layers.py, each with one realistic backward bug (``bug=True``).

Forms covered: ``(out, cache)`` + ``backward(dout, cache)``; output only +
``backward(dout, *inputs, *args)``; a mapping of gradients keyed ``d<name>`` or ``<name>``;
a single array; two outputs with a cache.
"""
import numpy as np


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# scaled dot-product attention: (out, cache), backward returns a tuple (dq, dk, dv)
def attention_forward(q, k, v):
    scale = 1.0 / np.sqrt(q.shape[-1])
    p = _softmax(q @ k.swapaxes(-1, -2) * scale)
    return p @ v, (q, k, v, p, scale)


def attention_backward(dout, cache, bug=False):
    q, k, v, p, scale = cache
    dv = p.swapaxes(-1, -2) @ dout
    dp = dout @ v.swapaxes(-1, -2)
    if bug:  # softmax Jacobian's diagonal only
        ds = p * (1 - p) * dp
    else:
        ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    ds = ds * scale
    return ds @ k, ds.swapaxes(-1, -2) @ q, dv


# conv with stride 2, pad 1: output only; backward(dout, x, w, b, conv_param) -> dict
def conv_s2_forward(x, w, b, conv_param):
    s, pad = conv_param["stride"], conv_param["pad"]
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = 1 + (h + 2 * pad - hh) // s, 1 + (wd + 2 * pad - ww) // s
    out = np.empty((n, f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * s:i * s + hh, j * s:j * s + ww]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def conv_s2_backward(dout, x, w, b, conv_param, bug=False):
    s, pad = conv_param["stride"], conv_param["pad"]
    hh, ww = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    step = 1 if bug else s  # bug: backward written for stride 1
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            r, c = i * step, j * step
            patch = xp[:, :, r:r + hh, c:c + ww]
            dw += np.tensordot(dout[:, :, i, j], patch, axes=([0], [0]))
            dxp[:, :, r:r + hh, c:c + ww] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    dx = dxp[:, :, pad:-pad, pad:-pad]
    return {"dx": dx, "dw": dw, "db": dout.sum(axis=(0, 2, 3))}


# transposed conv (stride 2, kernel 2), single-channel-in -> f channels: (out, cache)
def convT_forward(x, w):
    n, c, h, wd = x.shape
    _, f, k, _ = w.shape  # w: (c, f, k, k)
    out = np.zeros((n, f, 2 * (h - 1) + k, 2 * (wd - 1) + k))
    for i in range(h):
        for j in range(wd):
            out[:, :, 2 * i:2 * i + k, 2 * j:2 * j + k] += np.einsum("nc,cfab->nfab",
                                                                     x[:, :, i, j], w)
    return out, (x, w)


def convT_backward(dout, cache, bug=False):
    x, w = cache
    k = w.shape[2]
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            g = dout[:, :, 2 * i:2 * i + k, 2 * j:2 * j + k]
            dx[:, :, i, j] = np.einsum("nfab,cfab->nc", g, w)
            if bug:  # overlapping windows: keeps only the last contribution
                dw = np.einsum("nc,nfab->cfab", x[:, :, i, j], g)
            else:
                dw += np.einsum("nc,nfab->cfab", x[:, :, i, j], g)
    return dx, dw


# nearest-neighbour upsampling x2 then scale by a learned gain: output only, dict {x, g}
def upsample_forward(x, g):
    return g[None, :, None, None] * x.repeat(2, axis=2).repeat(2, axis=3)


def upsample_backward(dout, x, g, bug=False):
    up = x.repeat(2, axis=2).repeat(2, axis=3)
    dup = dout * g[None, :, None, None]
    n, c, h, w = x.shape
    if bug:  # subsample instead of summing each 2x2 window
        dx = dup[:, :, ::2, ::2]
    else:
        dx = dup.reshape(n, c, h, 2, w, 2).sum(axis=(3, 5))
    return {"x": dx, "g": np.sum(dout * up, axis=(0, 2, 3))}


# embedding with repeated indices (integer input first), single-array gradient for W
def embed_forward(idx, W):
    return W[idx], (idx, W.shape)


def embed_backward(dout, cache, bug=False):
    idx, shape = cache
    dW = np.zeros(shape)
    if bug:  # fancy assignment drops repeated indices
        dW[idx] += dout
    else:
        np.add.at(dW, idx, dout)
    return dW


# max over time: (N, T, D) -> (N, D); output only, single array
def maxtime_forward(x):
    return x.max(axis=1)


def maxtime_backward(dout, x, bug=False):
    if bug:  # routes the gradient to the last time step
        dx = np.zeros_like(x)
        dx[:, -1, :] = dout
        return dx
    mask = x == x.max(axis=1, keepdims=True)
    return mask * dout[:, None, :]


# residual block: y = x + relu(x @ w1) @ w2; (out, cache) -> tuple
def residual_forward(x, w1, w2):
    a = x @ w1
    h = np.maximum(a, 0)
    return x + h @ w2, (x, w1, w2, a, h)


def residual_backward(dout, cache, bug=False):
    x, w1, w2, a, h = cache
    dh = dout @ w2.T
    da = dh * (a > 0)
    dx = da @ w1.T
    if not bug:  # bug: forgets the skip connection's identity path
        dx = dx + dout
    return dx, x.T @ da, h.T @ dout


# gated linear unit with two outputs: out = a * sigmoid(b), gate = sigmoid(b)
def glu_forward(a, b):
    s = 1.0 / (1.0 + np.exp(-b))
    return a * s, s, (a, s)


def glu_backward(dout, dgate, cache, bug=False):
    a, s = cache
    ds = dout * a + dgate
    if bug:  # sigmoid derivative written as s * (1 + s)
        return {"da": dout * s, "db": ds * s * (1 + s)}
    return {"da": dout * s, "db": ds * s * (1 - s)}


def cases(rng):
    """name -> (forward, backward, inputs, args, bug input name)."""
    n = rng.standard_normal
    return {
        "attention": (attention_forward, attention_backward,
                      {"q": n((2, 4, 3)), "k": n((2, 5, 3)), "v": n((2, 5, 2))}, (), "q"),
        "conv_stride2_pad1": (conv_s2_forward, conv_s2_backward,
                              {"x": n((2, 2, 5, 5)), "w": n((3, 2, 3, 3)), "b": n(3)},
                              ({"stride": 2, "pad": 1},), "x"),
        "conv_transpose": (convT_forward, convT_backward,
                           {"x": n((2, 2, 3, 3)), "w": n((2, 3, 3, 3))}, (), "w"),
        "upsample": (upsample_forward, upsample_backward,
                     {"x": n((2, 3, 3, 3)), "g": n(3)}, (), "x"),
        "embedding_repeats": (embed_forward, embed_backward,
                              {"idx": np.array([[0, 2, 2], [4, 0, 2]]), "W": n((5, 4))}, (),
                              "W"),
        "max_over_time": (maxtime_forward, maxtime_backward, {"x": n((3, 6, 4))}, (), "x"),
        "residual": (residual_forward, residual_backward,
                     {"x": n((4, 5)), "w1": n((5, 6)) * 0.5, "w2": n((6, 5)) * 0.5}, (),
                     "x"),
        "glu_two_outputs": (glu_forward, glu_backward, {"a": n((3, 4)), "b": n((3, 4))}, (),
                            "b"),
    }
