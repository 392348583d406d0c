"""fc.check_layer on layers outside tests/_layers.py: a softmax whose backward keeps only the
Jacobian's diagonal, an upsampling whose backward subsamples instead of summing, activation
derivatives written from the wrong formula; over several seeds and with float32 inputs."""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest

import fastcheck as fc

from . import _student as S

SEEDS = (0, 1, 2, 3, 4)


def softmax_forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    q = e / e.sum(axis=1, keepdims=True)
    return q, q


def softmax_backward(dout, q, bug=False):
    if bug:  # the diagonal q(1 - q) of the Jacobian only
        return dout * q * (1 - q)
    return q * (dout - (q * dout).sum(axis=1, keepdims=True))


def tanh_forward(x):
    y = np.tanh(x)
    return y, y


def tanh_backward(dout, y, bug=False):
    return dout * (1 - y) ** 2 if bug else dout * (1 - y * y)  # bug: (1 - y)^2


def sigmoid_forward(x):
    s = 1 / (1 + np.exp(-x))
    return s, s


def sigmoid_backward(dout, s, bug=False):
    return dout * s if bug else dout * s * (1 - s)  # bug: the (1 - s) factor dropped


LAYERS = {
    "softmax": (softmax_forward, softmax_backward, (4, 5)),
    "upsample": (S.upsample_forward, S.upsample_backward, (2, 3, 3, 3)),
    "tanh": (tanh_forward, tanh_backward, (4, 5)),
    "sigmoid": (sigmoid_forward, sigmoid_backward, (4, 5)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_correct_passes_and_bug_fails_over_seeds(name, dtype):
    forward, backward, shape = LAYERS[name]
    for seed in SEEDS:
        x = np.random.default_rng(seed).normal(size=shape).astype(dtype)
        before = x.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the float32 warning
            good = fc.check_layer(forward, backward, {"x": x}, seed=seed, backend="serial")
            bad = fc.check_layer(forward, partial(backward, bug=True), {"x": x}, seed=seed,
                                 backend="serial")
        assert good.passed, good.summary()
        assert not bad.passed and [b.name for b in bad.blocks if b.n_failed] == ["x"]
        assert bad.summary().startswith("fastcheck FAIL")
        np.testing.assert_array_equal(x, before)
        assert x.dtype == dtype


def test_upsampling_backward_that_subsamples_is_off_on_every_component():
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 3))
    bad = fc.check_layer(S.upsample_forward, partial(S.upsample_backward, bug=True), {"x": x},
                         seed=0, backend="serial")
    # each input feeds 4 outputs; the subsampled backward keeps 1 of the 4 terms
    assert bad.failed.size == x.size
