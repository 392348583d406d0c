"""The detection limit a passing directional report states holds ("an error in one
component above L·|g| is seen with probability >= 0.95 over the random signs, above G·|g|
whatever the signs"). fuzz2 found it computed from each direction's first-pass tolerance,
while the re-examination excuses errors up to the next step's floor: errors of 1-3x the
stated limit passed. The tolerance is now twice that floor (200 of 200 seen at 1x)."""
import numpy as np

import fastcheck as fc

LAYOUT = fc.Layout({"W": (40, 50), "b": (8,)})
THETA = np.random.default_rng(0).standard_normal(LAYOUT.size)


def _cost(t):
    return 0.5 * float(t @ t)


def test_error_three_times_the_guaranteed_limit_is_seen():
    clean = fc.check(_cost, lambda t: t, THETA, layout=LAYOUT, mode="directional", seed=0)
    delta = 3 * clean.directional.guaranteed_limit * np.linalg.norm(THETA)
    off = np.zeros(LAYOUT.size)
    off[334] = delta  # W[6, 34]
    bad = fc.check(_cost, lambda t: t + off, THETA, layout=LAYOUT, mode="directional", seed=0)
    assert not bad.passed, bad.summary()


def test_error_at_the_stated_limit_is_seen_with_the_stated_probability():
    norm = np.linalg.norm(THETA)
    seen = 0
    for seed in range(40):
        clean = fc.check(_cost, lambda t: t, THETA, layout=LAYOUT, mode="directional",
                         seed=seed)
        rng = np.random.default_rng(10_000 + seed)
        off = np.zeros(LAYOUT.size)
        off[rng.integers(LAYOUT.size)] = rng.choice([-1, 1]) * clean.detection_limit * norm
        bad = fc.check(_cost, lambda t, off=off: t + off, THETA, layout=LAYOUT,
                       mode="directional", seed=seed)
        seen += not bad.passed
    assert seen >= 34  # claimed >= 95 %; it was ~8 % (then 75 % at one floor)
