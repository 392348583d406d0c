"""Statistical honesty of sampled reports, by simulation on a cheap quadratic cost with
k planted wrong components: coverage of the bounds, stratification, reproducibility,
sample="auto" stopping, and the summary's wording."""
import re

import numpy as np
import pytest

import fastcheck as fc

SHAPES = {"W1": (40, 50), "b1": (8,), "W2": (30, 40), "b2": (30,)}


def _cost(t):
    return 0.5 * float(t @ t)


def _planted(layout, wrong):
    off = np.zeros(layout.size)
    off[wrong] = 1.0
    return lambda t: t + off


def test_bounds_cover_the_true_failing_fraction_over_seeds():
    layout = fc.Layout(SHAPES)
    theta = np.random.default_rng(1).standard_normal(layout.size)
    k = 49  # 1.5 % of N: near the 95 % bound after 0-3 failures in 200
    over_all = over_block = blocks_seen = 0
    for seed in range(80):
        wrong = np.random.default_rng(100 + seed).choice(layout.size, k, replace=False)
        r = fc.check(_cost, _planted(layout, wrong), theta, layout=layout, sample=200,
                     seed=seed)
        assert set(r.failed.tolist()) == set(np.intersect1d(r.indices, wrong).tolist())
        over_all += r.failure_rate_bound < k / layout.size
        for b, lo, size in zip(r.blocks, layout.offsets, layout.sizes):
            assert b.n_checked >= 1  # the 8-entry bias is never skipped
            true = np.count_nonzero((wrong >= lo) & (wrong < lo + size)) / size
            blocks_seen += 1
            over_block += b.failure_rate_bound < true
            assert r.stats["failure_rate_bound"]["blocks"][b.name] == b.failure_rate_bound
    # nominal 5 %: P(more than 11 of 80 | 5 %) < 0.5 %
    assert over_all <= 11
    assert over_block <= 0.05 * blocks_seen + 6


def test_same_seed_same_indices_and_recorded_seed_reproduces():
    layout = fc.Layout(SHAPES)
    theta = np.random.default_rng(2).standard_normal(layout.size)
    a = fc.check(_cost, lambda t: t, theta, layout=layout, sample=0.05, seed=11)
    b = fc.check(_cost, lambda t: t, theta, layout=layout, sample=0.05, seed=11)
    c = fc.check(_cost, lambda t: t, theta, layout=layout, sample=0.05, seed=12)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    free = fc.check(_cost, lambda t: t, theta, layout=layout, sample=0.05)
    again = fc.check(_cost, lambda t: t, theta, layout=layout, sample=0.05, seed=free.seed)
    np.testing.assert_array_equal(free.indices, again.indices)
    assert a.indices.dtype == np.int64 and np.all(np.diff(a.indices) > 0)


def test_full_check_has_no_bound():
    layout = fc.Layout(SHAPES)
    theta = np.random.default_rng(3).standard_normal(layout.size)
    for sample in (None, 1.0, layout.size):
        r = fc.check(_cost, lambda t: t, theta, layout=layout, sample=sample)
        assert r.failure_rate_bound is None and r.n_checked == layout.size
        assert "confidence" not in r.summary()


@pytest.mark.parametrize(("confidence", "target"), [(0.95, 1e-3), (0.9, 1e-2), (0.99, 2e-3)])
def test_auto_sample_on_a_correct_gradient_reaches_the_target(confidence, target):
    layout = fc.Layout(SHAPES)
    theta = np.random.default_rng(4).standard_normal(layout.size)
    r = fc.check(_cost, lambda t: t, theta, layout=layout, sample="auto", seed=0,
                 confidence=confidence, target_rate=target)
    assert r.passed and r.n_checked < layout.size
    assert r.failure_rate_bound <= target
    # and not far more components than the zero-failure bound needs
    assert r.n_checked <= 1.05 * np.log(1 - confidence) / np.log(1 - target) + len(SHAPES)
    assert all(b.n_checked >= 1 for b in r.blocks)


def test_auto_sample_stops_soon_after_a_failure():
    layout = fc.Layout(SHAPES)
    theta = np.random.default_rng(5).standard_normal(layout.size)
    needed = np.log(0.05) / np.log(1 - 1e-3)  # ~2995 for a pass
    for seed in range(5):
        wrong = np.random.default_rng(seed).choice(layout.size, 60, replace=False)
        r = fc.check(_cost, _planted(layout, wrong), theta, layout=layout, sample="auto",
                     seed=seed)
        assert not r.passed and len(r.failed) >= 1
        assert set(r.failed.tolist()) <= set(wrong.tolist())
        assert r.n_checked < needed / 2  # 60 wrong in 3238: the first batches find one
        assert r.failure_rate_bound >= len(r.failed) / layout.size


@pytest.mark.parametrize("confidence", [0.9, 0.975, 0.99])
def test_summary_wording_matches_the_numbers(confidence):
    layout = fc.Layout(SHAPES)
    theta = np.random.default_rng(6).standard_normal(layout.size)
    wrong = np.arange(0, layout.size, 97)
    r = fc.check(_cost, _planted(layout, wrong), theta, layout=layout, sample=300, seed=1,
                 confidence=confidence)
    line = next(s for s in r.summary().splitlines() if "confidence" in s)
    m = re.search(r"(\d+) of (\d+) sampled components failed: with ([\d.]+)% confidence "
                  r"at most ([\d.]+)% of the ([\d,]+) components", line)
    assert m, line
    assert int(m.group(1)) == len(r.failed) and int(m.group(2)) == r.n_checked
    assert float(m.group(3)) == pytest.approx(100 * confidence)
    assert float(m.group(4)) == pytest.approx(100 * r.failure_rate_bound, rel=0.05)
    assert int(m.group(5).replace(",", "")) == layout.size
    assert r.to_dict()["failure_rate_bound"] == r.failure_rate_bound


@pytest.mark.parametrize("options", [{"sample": 300}, {"sample": "auto"}, {"max_failures": 1}])
def test_same_seed_same_components_on_every_backend(options):
    layout = fc.Layout(SHAPES)
    theta = np.random.default_rng(7).standard_normal(layout.size)
    wrong = np.random.default_rng(3).choice(layout.size, 20, replace=False)
    runs = [fc.check(_cost, _planted(layout, wrong), theta, layout=layout, seed=5,
                     backend=backend, threads=2, **options)
            for backend in ("serial", "threads")]
    np.testing.assert_array_equal(runs[0].indices, runs[1].indices)
    np.testing.assert_array_equal(runs[0].failed, runs[1].failed)
    assert runs[0].failure_rate_bound == runs[1].failure_rate_bound


def test_sampled_layer_report_bounds_every_input_and_serialises():
    import json

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((6, 30)), rng.standard_normal((30, 20)), rng.standard_normal(20)

    def forward(x, w, b):
        return x @ w + b

    def backward(dout, x, w, b):
        return dout @ w.T, x.T @ dout, dout.sum(0)

    r = fc.check_layer(forward, backward, {"x": x, "w": w, "b": b}, sample=60, seed=2)
    assert r.passed and r.n_checked == 60 and r.n_params == x.size + w.size + b.size
    assert all(blk.n_checked >= 1 and 0 < blk.failure_rate_bound <= 1 for blk in r.blocks)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["failure_rate_bound"] == pytest.approx(r.failure_rate_bound)
    assert r.stats["failure_rate_bound"]["overall"] == r.failure_rate_bound
