"""A block with no checked component of a sample is "warn", not "pass": fuzz2 found it
called "pass" with relative error 0.0 (a sample smaller than the number of blocks), a claim
no evaluation supports."""
import numpy as np

import fastcheck as fc


def test_unchecked_block_is_not_called_pass():
    layout = fc.Layout({f"b{i}": (5,) for i in range(6)})
    theta = np.random.default_rng(0).standard_normal(layout.size)
    off = np.zeros(layout.size)
    off[10:] = 1.0  # b2..b5 entirely wrong
    r = fc.check(lambda t: 0.5 * float(t @ t), lambda t: t + off, theta, layout=layout,
                 sample=3, seed=0)
    for b in r.blocks:
        if b.n_checked == 0:
            assert b.verdict != "pass", b
