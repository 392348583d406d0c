"""Layers written the way course code writes them (forward -> (out, cache), backward(dout,
cache)), for the tests of ``fc.check_layer``. Our own implementations.

Every backward takes ``bug=False``; ``bug=True`` injects one realistic mistake that
affects exactly one input's gradient (``CASES[name].bug_input`` names it). Functions are
module-level so that ``functools.partial(backward, bug=True)`` pickles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np


# -- affine, ReLU, dropout ------------------------------------------------------------------
def affine_forward(x, w, b):
    xr = x.reshape(x.shape[0], -1)
    return xr @ w + b, (x, w)


def affine_backward(dout, cache, bug=False):
    x, w = cache
    xr = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = xr.T @ dout
    db = dout.mean(axis=0) if bug else dout.sum(axis=0)  # bug: mean over the batch
    return dx, dw, db


def relu_forward(x):
    return np.maximum(x, 0.0), x


def relu_backward(dout, cache, bug=False):
    x = cache
    slope = np.where(x > 0, 1.0, 0.01 if bug else 0.0)  # bug: a leaky slope left in
    return dout * slope


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]  # probability of keeping a unit
    rng = np.random.default_rng(dropout_param.get("seed"))  # unseeded: a new mask each call
    mask = (rng.random(x.shape) < p) / p
    return x * mask, mask


def dropout_backward(dout, cache, bug=False):
    mask = cache
    return dout * (mask > 0) if bug else dout * mask  # bug: the 1/p scaling forgotten


# -- batch norm and layer norm --------------------------------------------------------------
def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = xc * inv
    # running statistics are updated in place, as course code does
    bn_param["running_mean"] = momentum * bn_param.get("running_mean", 0.0) + (1 - momentum) * mu
    bn_param["running_var"] = momentum * bn_param.get("running_var", 1.0) + (1 - momentum) * var
    return gamma * xhat + beta, (xc, inv, xhat, gamma)


def batchnorm_backward(dout, cache, bug=False):
    """Through the computational graph, node by node."""
    xc, inv, xhat, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = dout.sum(axis=0) if bug else (dout * xhat).sum(axis=0)  # bug: xhat dropped
    dxhat = dout * gamma
    dinv = (dxhat * xc).sum(axis=0)
    dvar = dinv * -0.5 * inv**3
    dxc = dxhat * inv + 2.0 * xc * dvar / n
    dx = dxc - dxc.mean(axis=0)
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache, bug=False):
    """The simplified closed form."""
    xc, inv, xhat, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    proj = 0.0 if bug else xhat * (dxhat * xhat).mean(axis=0)  # bug: projection dropped
    dx = inv * (dxhat - dxhat.mean(axis=0) - proj)
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc**2).mean(axis=1, keepdims=True) + eps)
    xhat = xc * inv
    return gamma * xhat + beta, (inv, xhat, gamma)


def layernorm_backward(dout, cache, bug=False):
    inv, xhat, gamma = cache
    d = xhat.shape[1]
    dxhat = dout * gamma
    mean_dxhat = dxhat.sum(axis=1, keepdims=True) / (1 if bug else d)  # bug: 1/D forgotten
    dx = inv * (dxhat - mean_dxhat - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


# -- convolution and pooling (naive loops) --------------------------------------------------
def conv_forward_naive(x, w, b, conv_param):
    s, p = conv_param["stride"], conv_param["pad"]
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    ho, wo = 1 + (h + 2 * p - hh) // s, 1 + (wd + 2 * p - ww) // s
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.empty((n, f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * s:i * s + hh, j * s:j * s + ww]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, conv_param)


def conv_backward_naive(dout, cache, bug=False, crop="slice"):
    """``bug=True``: dw takes its windows at stride 1. ``crop="negative"`` crops the
    padding with ``[p:-p]``, which is empty at pad 0 (a dx of shape (N, C, 0, 0))."""
    x, w, conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    _, _, h, wd = x.shape
    _, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    ho, wo = dout.shape[2:]
    for i in range(ho):
        for j in range(wo):
            r, c = i * s, j * s
            dxp[:, :, r:r + hh, c:c + ww] += np.tensordot(dout[:, :, i, j], w, axes=(1, 0))
            rw, cw = (i, j) if bug else (r, c)
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, rw:rw + hh, cw:cw + ww],
                               axes=(0, 0))
    dx = dxp[:, :, p:-p, p:-p] if crop == "negative" else dxp[:, :, p:p + h, p:p + wd]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, h, w = x.shape
    ho, wo = 1 + (h - ph) // s, 1 + (w - pw) // s
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache, bug=False):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    n, c = x.shape[:2]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(n, c, -1)
            if bug:  # bug: the gradient goes to the whole window, not to its maximum
                route = np.ones_like(window)
            else:
                route = np.zeros_like(window)
                np.put_along_axis(route, window.argmax(axis=2)[..., None], 1.0, axis=2)
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += (
                route * dout[:, :, i, j][..., None]).reshape(n, c, ph, pw)
    return dx


# -- spatial batch norm and group norm ------------------------------------------------------
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape, flat)


def spatial_batchnorm_backward(dout, cache, bug=False):
    bn_cache, (n, c, h, w), flat = cache
    dflat = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dx, dgamma, dbeta = batchnorm_backward_alt(dflat, bn_cache)
    if bug:  # bug: dgamma from the raw input instead of the normalised one
        dgamma = (dflat * flat).sum(axis=0)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    eps = gn_param.get("eps", 1e-5)
    n, c, h, w = x.shape
    xg = x.reshape(n, G, -1)
    xc = xg - xg.mean(axis=2, keepdims=True)
    inv = 1.0 / np.sqrt((xc**2).mean(axis=2, keepdims=True) + eps)
    xhat = (xc * inv).reshape(x.shape)
    return gamma * xhat + beta, (inv, xhat, gamma, G)


def spatial_groupnorm_backward(dout, cache, bug=False):
    inv, xhat, gamma, G = cache
    n = dout.shape[0]
    dgamma = (dout * xhat).sum(axis=(0, 2, 3), keepdims=True)
    dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)
    dxh = (dout * gamma).reshape(n, G, -1)
    xh = xhat.reshape(n, G, -1)
    centre = 0.0 if bug else dxh.mean(axis=2, keepdims=True)  # bug: mean term dropped
    dx = inv * (dxh - centre - xh * (dxh * xh).mean(axis=2, keepdims=True))
    return dx.reshape(dout.shape), dgamma, dbeta


# -- recurrent layers -----------------------------------------------------------------------
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache, bug=False):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h**2)
    dWh = prev_h.T @ (dnext_h if bug else da)  # bug: tanh' forgotten in dWh
    return da @ Wx.T, da @ Wh.T, x.T @ da, dWh, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    n, t, _ = x.shape
    h = np.empty((n, t, h0.shape[1]))
    prev = h0
    for k in range(t):
        prev, _ = rnn_step_forward(x[:, k], prev, Wx, Wh, b)
        h[:, k] = prev
    return h, (x, h0, Wx, Wh, h)


def rnn_backward(dh, cache, bug=False):
    x, h0, Wx, Wh, h = cache
    n, t, _ = x.shape
    dx = np.empty_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0])
    dprev = np.zeros_like(h0)
    for k in reversed(range(t)):
        # bug: at t = 0 the "previous" hidden state read is h[:, 0] instead of h0
        prev = (h[:, 0] if bug else h0) if k == 0 else h[:, k - 1]
        dx[:, k], dprev, dwx, dwh, dbk = rnn_step_backward(
            dh[:, k] + dprev, (x[:, k], prev, Wx, Wh, h[:, k]))
        dWx += dwx
        dWh += dwh
        db += dbk
    return dx, dprev, dWx, dWh, db


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    hd = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = (_sigmoid(a[:, k * hd:(k + 1) * hd]) for k in range(3))
    g = np.tanh(a[:, 3 * hd:])
    next_c = f * prev_c + i * g
    tc = np.tanh(next_c)
    next_h = o * tc
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc)


def lstm_step_backward(dnext_h, dnext_c, cache, bug=False):
    """Adds into ``dnext_c`` in place, as a lot of course code does."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc = cache
    dnext_c += dnext_h * o * (1.0 - tc**2)  # in place: the caller's dout changes
    do = dnext_h * tc
    di, df, dg = dnext_c * g, dnext_c * prev_c, dnext_c * i
    dprev_c = dnext_c if bug else dnext_c * f  # bug: the forget gate skipped
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)])
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    n, t, _ = x.shape
    h = np.empty((n, t, h0.shape[1]))
    prev_h, prev_c, caches = h0, np.zeros_like(h0), []
    for k in range(t):
        prev_h, prev_c, cache = lstm_step_forward(x[:, k], prev_h, prev_c, Wx, Wh, b)
        h[:, k] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, caches, bug=False):
    n, t, _ = dh.shape
    x0, h0 = caches[0][0], caches[0][1]
    dx = np.empty((n, t, x0.shape[1]))
    dWx, dWh = np.zeros_like(caches[0][3]), np.zeros_like(caches[0][4])
    db = np.zeros(dWx.shape[1])
    dprev_h, dprev_c = np.zeros_like(h0), np.zeros_like(h0)
    for k in reversed(range(t)):
        dx[:, k], dprev_h, dprev_c, dwx, dwh, dbk = lstm_step_backward(
            dh[:, k] + dprev_h, dprev_c, caches[k])
        dWx += dwx
        dWh += dwh
        db += dbk
    dh0 = dh[:, 0] if bug else dprev_h  # bug: the recurrent part of dh0 dropped
    return dx, dh0, dWx, dWh, db


# -- embedding and temporal affine ----------------------------------------------------------
def word_embedding_forward(x, W):
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache, bug=False):
    x, shape = cache
    dW = np.zeros(shape)
    if bug:  # bug: assignment loses the words that occur twice
        dW[x] = dout
    else:
        np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    return x @ w + b, (x, w)


def temporal_affine_backward(dout, cache, bug=False):
    x, w = cache
    n, t, d = x.shape
    dw = x.reshape(n * t, d).T @ dout.reshape(n * t, -1)
    db = dout.sum(axis=(0, 1)) / (t if bug else 1)  # bug: averaged over time
    return dout @ w.T, dw, db


# -- the cases ------------------------------------------------------------------------------
@dataclass
class Case:
    """A layer, how to build its inputs, and the input its injected bug corrupts."""

    forward: Callable
    backward: Callable
    make_inputs: Callable[[np.random.Generator], dict]
    args: tuple = ()
    bug_input: str = "x"
    options: dict[str, Any] = field(default_factory=dict)

    def buggy(self) -> Callable:
        return partial(self.backward, bug=True)


def _normal(rng, *shape, scale=1.0):
    return rng.normal(scale=scale, size=shape)


def _xwb(rng):
    return {"x": _normal(rng, 4, 2, 3), "w": _normal(rng, 6, 5), "b": _normal(rng, 5)}


def _norm_inputs(rng):
    return {"x": _normal(rng, 6, 5, scale=2.0) + 1.0, "gamma": 1 + _normal(rng, 5, scale=0.1),
            "beta": _normal(rng, 5, scale=0.1)}


def _conv_inputs(rng):
    return {"x": _normal(rng, 2, 3, 5, 5), "w": _normal(rng, 4, 3, 3, 3),
            "b": _normal(rng, 4)}


def _spatial_inputs(rng):
    return {"x": _normal(rng, 2, 4, 3, 3, scale=2.0), "gamma": 1 + _normal(rng, 4, scale=0.1),
            "beta": _normal(rng, 4, scale=0.1)}


def _groupnorm_inputs(rng):
    return {"x": _normal(rng, 2, 4, 3, 3, scale=2.0),
            "gamma": 1 + _normal(rng, 1, 4, 1, 1, scale=0.1),
            "beta": _normal(rng, 1, 4, 1, 1, scale=0.1)}


def _rnn_step_inputs(rng):
    return {"x": _normal(rng, 3, 4), "prev_h": _normal(rng, 3, 5),
            "Wx": _normal(rng, 4, 5, scale=0.4), "Wh": _normal(rng, 5, 5, scale=0.4),
            "b": _normal(rng, 5, scale=0.1)}


def _rnn_inputs(rng):
    return {"x": _normal(rng, 2, 4, 3), "h0": _normal(rng, 2, 4),
            "Wx": _normal(rng, 3, 4, scale=0.4), "Wh": _normal(rng, 4, 4, scale=0.4),
            "b": _normal(rng, 4, scale=0.1)}


def _lstm_step_inputs(rng):
    return {"x": _normal(rng, 3, 4), "prev_h": _normal(rng, 3, 3),
            "prev_c": _normal(rng, 3, 3), "Wx": _normal(rng, 4, 12, scale=0.4),
            "Wh": _normal(rng, 3, 12, scale=0.4), "b": _normal(rng, 12, scale=0.1)}


def _lstm_inputs(rng):
    return {"x": _normal(rng, 2, 3, 3), "h0": _normal(rng, 2, 3),
            "Wx": _normal(rng, 3, 12, scale=0.4), "Wh": _normal(rng, 3, 12, scale=0.4),
            "b": _normal(rng, 12, scale=0.1)}


def _embedding_inputs(rng):
    return {"x": np.array([[0, 3, 1], [3, 2, 3]]), "W": _normal(rng, 5, 4)}


def _temporal_inputs(rng):
    return {"x": _normal(rng, 2, 3, 4), "w": _normal(rng, 4, 5), "b": _normal(rng, 5)}


CASES = {
    "affine": Case(affine_forward, affine_backward, _xwb, bug_input="b"),
    "relu": Case(relu_forward, relu_backward, lambda rng: {"x": _normal(rng, 4, 5)}),
    "dropout": Case(dropout_forward, dropout_backward, lambda rng: {"x": _normal(rng, 5, 6)},
                    args=({"p": 0.7, "seed": 3},)),
    "batchnorm": Case(batchnorm_forward, batchnorm_backward, _norm_inputs,
                      args=({"eps": 1e-5, "momentum": 0.9},), bug_input="gamma"),
    "batchnorm_alt": Case(batchnorm_forward, batchnorm_backward_alt, _norm_inputs,
                          args=({"eps": 1e-5, "momentum": 0.9},)),
    "layernorm": Case(layernorm_forward, layernorm_backward, _norm_inputs,
                      args=({"eps": 1e-5},)),
    "conv_pad1": Case(conv_forward_naive, conv_backward_naive, _conv_inputs,
                      args=({"stride": 2, "pad": 1},), bug_input="w"),
    "conv_pad0": Case(conv_forward_naive, conv_backward_naive, _conv_inputs,
                      args=({"stride": 2, "pad": 0},), bug_input="w"),
    "max_pool": Case(max_pool_forward_naive, max_pool_backward_naive,
                     lambda rng: {"x": _normal(rng, 2, 3, 4, 4)},
                     args=({"pool_height": 2, "pool_width": 2, "stride": 2},)),
    "spatial_batchnorm": Case(spatial_batchnorm_forward, spatial_batchnorm_backward,
                              _spatial_inputs, args=({"eps": 1e-5},), bug_input="gamma"),
    "spatial_groupnorm": Case(spatial_groupnorm_forward, spatial_groupnorm_backward,
                              _groupnorm_inputs, args=(2, {"eps": 1e-5})),
    "rnn_step": Case(rnn_step_forward, rnn_step_backward, _rnn_step_inputs, bug_input="Wh"),
    "rnn": Case(rnn_forward, rnn_backward, _rnn_inputs, bug_input="Wh"),
    "lstm_step": Case(lstm_step_forward, lstm_step_backward, _lstm_step_inputs,
                      bug_input="prev_c"),
    "lstm": Case(lstm_forward, lstm_backward, _lstm_inputs, bug_input="h0"),
    "word_embedding": Case(word_embedding_forward, word_embedding_backward, _embedding_inputs,
                           bug_input="W"),
    "temporal_affine": Case(temporal_affine_forward, temporal_affine_backward,
                            _temporal_inputs, bug_input="b"),
}
