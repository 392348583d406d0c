"""Stratified, reproducible sampling."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastcheck as fc
from fastcheck._plan import choose_components, stratified_counts


def test_exact_count_every_block_and_reproducible(mlp_s):
    m = mlp_s
    a = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, sample=50, seed=7)
    b = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, sample=50, seed=7)
    c = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, sample=50, seed=8)
    assert a.n_checked == 50 and a.sampled and a.seed == 7
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    assert all(block.n_checked >= 1 for block in a.blocks)
    assert len(np.unique(a.indices)) == 50 and np.all(np.diff(a.indices) > 0)


def test_fraction_and_recorded_seed(mlp_s):
    m = mlp_s
    rep = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, sample=0.1)
    assert rep.n_checked == round(0.1 * 499)
    again = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, sample=0.1, seed=rep.seed)
    np.testing.assert_array_equal(rep.indices, again.indices)


def test_small_bias_block_is_never_skipped():
    layout = fc.Layout({"W": (1000, 100), "b": (8,)})
    for seed in range(20):
        plan = choose_components(layout, 500, seed)
        assert np.count_nonzero(plan.indices >= 100_000) >= 1


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6), frac=st.floats(0.01, 1.0),
       seed=st.integers(0, 1000))
def test_stratified_counts_law(sizes, frac, seed):
    sizes = np.array(sizes)
    total = int(sizes.sum())
    nonempty = int(np.count_nonzero(sizes))
    if total == 0:
        return
    count = max(nonempty, min(total, int(frac * total)))
    counts = stratified_counts(sizes, count)
    assert counts.sum() == count
    assert np.all(counts <= sizes)
    assert np.all(counts[sizes > 0] >= 1)


@pytest.mark.parametrize("bad", [0, -3, 500, 0.0, 1.5, -0.1, float("nan"), True, "10"])
def test_sample_out_of_range_is_rejected(mlp_s, bad):
    m = mlp_s
    with pytest.raises((ValueError, TypeError), match="sample"):
        fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, sample=bad)


def test_sample_smaller_than_block_count_draws_distinct_blocks():
    layout = fc.Layout({"a": (10,), "b": (10,), "c": (10,), "empty": (0,)})
    for seed in range(20):
        chosen = choose_components(layout, 2, seed)
        blocks = layout.block_of(chosen.indices)
        assert chosen.indices.shape == (2,) and chosen.sampled
        assert len(set(blocks.tolist())) == 2 and 3 not in blocks  # never the empty block


def test_a_count_below_the_number_of_blocks_checks_that_many():
    """API.md: an int sample checks that many components, even fewer than the blocks."""
    import json

    from fastcheck.models import course

    net = course.make_course("S")
    params, args = net.params, net.args
    report = fc.check(course.cost, course.backward, params, args, sample=3, seed=5)
    assert report.n_checked == 3 and report.passed
    assert len(set(report.layout.block_of(report.indices).tolist())) == 3  # 3 blocks
    assert isinstance(report.failure_rate_bound, float)
    assert sum(b.n_checked for b in report.blocks) == 3
    json.dumps(report.to_dict())
    str(report)
    again = fc.check(course.cost, course.backward, params, args, sample=3, seed=5)
    np.testing.assert_array_equal(again.indices, report.indices)  # reproducible
