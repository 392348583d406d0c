"""A correct ReLU MLP with small weights next to a kink passes (it used to fail).

Weights ~1e-3 (CS231n's weight_scale), one pre-activation at -1.3e-6 (z1[1, 5]); the
step 6e-6 crosses it for W1[3, 5] and W1[4, 5]. Central differences there: h 2.15817e-5,
h/4 2.15728e-5, h/16 2.156141e-5 (analytic 2.156118e-5: rel 1e-6 at h/16, once the kink
is left behind). The report fails both, "relative error 1.76e-08 (< 1e-7: great) ... 2
failed" with a hint "an indexing or off-by-one slip?". The one-sided slopes differ by
~h * 0.1, like curvature, so the kink is not recognised; an extrapolation through the
kink-polluted steps is then judged against rtol. Rate (float64, correct gradients): this
3-layer MLP at weight scale 1e-3: 1/100 seeds with a batch of 8, 10/100 with a batch of 64
(0/100 at scales 1, 0.1, 0.01); weights ~5e-3 with a batch of 256: 7/30 (0/30 at 5e-2);
a CS231n two-layer net (std 1e-3, b = 0): 1/30. Same rates with richardson and processes.
In _verdict.reexamine the first shrink level (h/4) already calls it FAIL ('consistent':
the change h -> h/4, 8.8e-9, is far above the h^2 model yet the value is not accepted),
so h/16 (error 2.3e-11) was never tried. Now a failure needs the central difference
settled (its change across the last two steps at most a quarter of its miss) and there is
a third level (h/64); and a miss that a kink inside the stencil can explain (a persistent
jump of the one-sided slopes, or the jump left once the curvature's share, proportional
to h, is extrapolated away) is not settled either. The tests below pass; over 100 seeds of
the 1e-3 net with a batch of 64, false failures went 10 -> 2. Those two (seeds 82, 83) are
biases of the second layer moving many kinks within 1e-7 of theta at once: the central
difference settles only at h/256 and the off-kink confirmation meets kinks too.
"""

import pytest

import fastcheck as fc

from . import _student as S


def test_small_weight_relu_mlp_next_to_a_kink_passes():
    cost, grad, params, args = S.make_mlp(1)
    params = {k: v * 2e-3 for k, v in params.items()}  # weights ~1e-3
    report = fc.check(cost, grad, params, args, backend="serial")
    assert report.passed, report.summary()


def test_small_weight_relu_mlp_batch_256_passes():
    """Seed 8: a pre-activation 3e-7 from the kink, whose slope change hides under the
    curvature's; W1[0, 5] settles only at h/64."""
    cost, grad, params, args = S.make_mlp(8, n=256)
    params = {k: v * 1e-2 for k, v in params.items()}  # weights ~5e-3
    report = fc.check(cost, grad, params, args, backend="serial")
    assert report.passed, report.summary()


def test_builtin_mlp_small_weights_batch_256_passes():
    # the project's own njit MLP (numba backend): 6 of 20 seeds fail at theta * 0.01
    from fastcheck.models import make_mlp

    p = make_mlp("S", seed=1, batch=256)
    report = fc.check(p.cost, p.grad, p.theta * 0.01, p.args, layout=p.layout)
    assert report.passed, report.summary()


def _cs231n_two_layer(seed, std=1e-4, n=64, d=20, h=10, c=5):
    """CS231n's TwoLayerNet initialisation: weights std * N(0, 1), biases 0."""
    import numpy as np

    rng = np.random.default_rng(seed)
    p = {"W1": std * rng.normal(size=(d, h)), "b1": np.zeros(h),
         "W2": std * rng.normal(size=(h, c)), "b2": np.zeros(c)}
    x, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
    return p, (x, y, 0.05, {"svm": False})


@pytest.mark.parametrize("seed", [31, 36])
def test_cs231n_init_next_to_kinks_passes(seed):
    """std 1e-4, a batch of 64: seed 31 put a kink off theta inside the first stencils with
    the analytic value outside its hull there (decided a failure at h/4; at h/16 the
    stencil leaves the kink and the value matches); seed 36 missed the curvature-free jump
    threshold by 1 %."""
    params, args = _cs231n_two_layer(seed)
    report = fc.check(S.tln_cost, S.tln_grad, params, args, backend="serial")
    assert report.passed, report.summary()


@pytest.mark.parametrize("seed", [82, 83])
def test_biases_moving_many_kinks_at_once_pass(seed):
    """Weights ~1e-3, a batch of 64: a bias of the second layer moves many examples' kinks
    within 1e-7 of theta at once (seeds 82, 83 of bench/relu_small_weights.py)."""
    cost, grad, params, args = S.make_mlp(seed, n=64)
    params = {k: v * 2e-3 for k, v in params.items()}
    assert fc.check(cost, grad, params, args, backend="serial").passed


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("svm", [False, True])
def test_a_leaky_backward_next_to_kinks_still_fails(seed, svm):
    """Every hidden unit of example 0 within ~1e-7 of its kink: a kink seen with the
    analytic value outside its hull is never excused by a later, smaller step's hull (seed 1
    passed a leaky ReLU backward while that was allowed)."""
    cost, grad, params, args = S.make_tln(seed, "leaky", svm=svm, kink="near")
    report = fc.check(cost, grad, params, args, backend="serial")
    assert not report.passed, report.summary()
