"""report.stats and report.failure_rate_bound, against independent SciPy computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

import fastcheck as fc
from fastcheck import stats
from fastcheck.layout import Layout
from fastcheck.models import make_mlp, mlp_layout
from fastcheck.stats import (
    LOG10_FLOOR,
    band_counts,
    clopper_pearson_upper,
    error_statistics,
    failure_rate_bound,
    hypergeometric_upper,
)


def quadratic(n_blocks=3, size=40, seed=0):
    """A separable cost with blocks ``w0, w1, ...`` and its exact gradient."""
    rng = np.random.default_rng(seed)
    params = {f"w{i}": rng.normal(size=size) for i in range(n_blocks)}

    def cost(p):
        return float(sum(np.sum(np.sin(v) + 0.5 * v**2) for v in p.values()))

    def grad(p):
        return {k: np.cos(v) + v for k, v in p.items()}

    return cost, grad, params


# -- the error statistics --------------------------------------------------------------------
def test_band_counts_follow_ng_thresholds():
    rel = np.array([0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, np.nan])
    assert band_counts(rel) == {"<1e-7": 2, "1e-7..1e-5": 3, "1e-5..1e-3": 2, ">1e-3": 1,
                                "nonfinite": 1}


def test_error_statistics_match_scipy_describe_with_zeros_floored():
    rng = np.random.default_rng(0)
    layout = Layout({"a": (30,), "b": (5, 4)})
    rel = 10.0 ** rng.uniform(-12, -1, size=50)
    rel[[3, 40]] = 0.0
    kinds = np.array(["ok"] * 50, dtype="<U9")
    kinds[[7, 45]] = "fail"
    kinds[10] = "kink"
    out = error_statistics(rel, kinds, np.arange(50), layout)

    logs = np.log10(np.maximum(rel, LOG10_FLOOR))
    ref = scipy.stats.describe(logs)
    overall = out["overall"]
    assert out["log10_floor"] == LOG10_FLOOR
    assert overall["n"] == 50 and overall["n_floored"] == 2
    d = overall["log10_rel_error"]
    assert d["nobs"] == 50 and d["min"] == np.log10(LOG10_FLOOR)
    assert d["mean"] == pytest.approx(ref.mean) and d["variance"] == pytest.approx(ref.variance)
    assert d["skewness"] == pytest.approx(ref.skewness)
    assert d["kurtosis"] == pytest.approx(ref.kurtosis)
    assert overall["quantiles"]["50"] == pytest.approx(np.median(rel))
    assert overall["quantiles"]["99"] == pytest.approx(np.percentile(rel, 99))
    assert overall["quantiles"]["max"] == rel.max()
    assert overall["kinds"] == {"ok": 47, "kink": 1, "fail": 2, "nonfinite": 0}
    # per block: the blocks partition the components
    a, b = out["blocks"]["a"], out["blocks"]["b"]
    assert a["n"] == 30 and b["n"] == 20
    assert a["kinds"]["fail"] == 1 and b["kinds"]["fail"] == 1
    for key in overall["bands"]:
        assert a["bands"][key] + b["bands"][key] == overall["bands"][key]
    assert b["log10_rel_error"]["mean"] == pytest.approx(np.mean(logs[30:]))


def test_statistics_of_tiny_groups_are_json_safe():
    layout = Layout({"one": (1,), "empty": (0,), "two": (2,)})
    out = error_statistics(np.array([0.0, 1e-9, 1e-9]), np.array(["ok"] * 3),
                           np.array([0, 1, 2]), layout)
    assert out["blocks"]["empty"]["log10_rel_error"] is None
    assert out["blocks"]["one"]["log10_rel_error"]["variance"] is None
    json.dumps(out, allow_nan=False)


def test_report_stats_are_json_serialisable_and_consistent():
    cost, grad, params = quadratic()
    report = fc.check(cost, grad, params, seed=0)
    assert report.failure_rate_bound is None  # a full check
    assert all(b.failure_rate_bound is None for b in report.blocks)
    json.dumps(report.to_dict(), allow_nan=False)
    stats = report.stats
    assert set(stats["blocks"]) == set(params)
    assert sum(stats["overall"]["bands"].values()) == report.n_checked
    assert stats["overall"]["kinds"]["ok"] == report.n_checked


# -- confidence bounds -----------------------------------------------------------------------
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("k", "n"), [(0, 30), (0, 2000), (3, 500), (10, 100), (99, 100)])
def test_clopper_pearson_matches_binomtest(k, n, confidence):
    # The one-sided upper bound at level c is the upper end of the two-sided exact interval
    # at level 2c - 1.
    ci = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=2 * confidence - 1,
                                                   method="exact")
    assert clopper_pearson_upper(k, n, confidence) == pytest.approx(ci.high, rel=1e-9)


def test_rule_of_three():
    for n in (300, 2000, 100_000):
        bound = clopper_pearson_upper(0, n, 0.95)
        assert bound == pytest.approx(3 / n, rel=0.01)
        assert bound == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-9)


def test_all_failed_or_nothing_checked_bounds_at_one():
    assert clopper_pearson_upper(5, 5, 0.95) == 1.0
    assert clopper_pearson_upper(0, 0, 0.95) == 1.0


def test_hypergeometric_bound_by_brute_force():
    population, n, conf = 60, 20, 0.95
    for k in (0, 1, 4):
        plausible = [K for K in range(population + 1)
                     if scipy.stats.hypergeom.cdf(k, population, K, n) > 1 - conf]
        assert hypergeometric_upper(k, n, population, conf) == max(plausible) / population
        assert hypergeometric_upper(k, n, population, conf) <= clopper_pearson_upper(k, n, conf)
    assert hypergeometric_upper(3, 60, 60, conf) == 3 / 60


def test_failure_rate_bound_per_block_and_complete_blocks():
    layout = Layout({"big": (1000,), "small": (4,)})
    out = failure_rate_bound({"big": 2, "small": 1}, {"big": 96, "small": 4}, layout, 0.95)
    assert out["blocks"]["small"] == 0.25  # checked completely: the exact fraction
    assert out["blocks"]["big"] == pytest.approx(scipy.stats.beta.ppf(0.95, 3, 94))
    # stratified: the small block counts exactly, the big one by its own sample
    assert out["overall"] == pytest.approx(1 / 1004 + 1000 / 1004 * scipy.stats.beta.ppf(
        0.95, 3, 94))
    assert (out["n_failed"], out["n_checked"], out["n_params"]) == (3, 100, 1004)
    assert out["confidence"] == 0.95 and out["method"] == "clopper-pearson"
    assert out["finite_population"]["blocks"]["small"] == 0.25
    assert out["finite_population"]["overall"] == pytest.approx(
        1 / 1004 + 1000 / 1004 * stats.hypergeometric_upper(2, 96, 1000, 0.95))
    assert out["finite_population"]["overall"] <= out["overall"]
    json.dumps(out, allow_nan=False)


def test_sampled_check_reports_the_bound_and_says_it_in_words():
    cost, grad, params = quadratic(n_blocks=2, size=500)
    report = fc.check(cost, grad, params, sample=200, seed=1, confidence=0.99)
    assert isinstance(report.failure_rate_bound, float)  # API.md: a float over all N
    assert report.failure_rate_bound == pytest.approx(clopper_pearson_upper(0, 200, 0.99))
    bound = report.stats["failure_rate_bound"]  # the bounds in full
    assert bound["overall"] == report.failure_rate_bound
    assert set(bound["blocks"]) == {"w0", "w1"}
    for b in report.blocks:
        assert b.failure_rate_bound == bound["blocks"][b.name]
    sentence = ("0 of 200 sampled components failed: with 99% confidence at most 2.3% of the "
                "1,000 components are wrong")
    assert sentence in report.summary()
    assert report.summary().splitlines()[1].startswith(sentence)


def test_l_size_sentence_matches_clopper_pearson():
    # The L-size MLP's layout (109,386 components) with a cheap separable cost.
    layout = mlp_layout("L")
    theta = np.random.default_rng(0).normal(size=layout.size)
    report = fc.check(lambda x: 0.5 * float(x @ x), lambda x: x.copy(), theta,
                      layout=layout, sample=2000, seed=1)
    assert report.passed
    # stratified (every block gets a component), nearly proportional: within 0.1 % of the
    # pooled rule-of-three bound
    assert report.failure_rate_bound == pytest.approx(1 - 0.05 ** (1 / 2000), rel=1e-3)
    assert ("0 of 2,000 sampled components failed: with 95% confidence at most 0.15% of the "
            "109,386 components are wrong") in report.summary()


def test_sampled_failures_are_counted_in_the_bound():
    model = make_mlp("M", bug="bias-factor-2", seed=0)
    report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                      sample=400, seed=0, backend="serial")
    bound = report.stats["failure_rate_bound"]
    b1 = next(b for b in report.blocks if b.name == "b1")
    assert bound["n_failed"] == len(report.failed) > 0
    assert bound["blocks"]["b1"] == pytest.approx(
        clopper_pearson_upper(b1.n_failed, b1.n_checked, 0.95))
    assert b1.failure_rate_bound == bound["blocks"]["b1"]
    assert report.failure_rate_bound == pytest.approx(stats.stratified_upper(
        [b.n_failed for b in report.blocks], [b.n_checked for b in report.blocks],
        report.layout.sizes, 0.95))


# -- the summary -----------------------------------------------------------------------------
def test_summary_shows_the_bands_per_block():
    cost, grad, params = quadratic()
    report = fc.check(cost, grad, params, seed=0)
    lines = report.summary().splitlines()
    header = next(line for line in lines if line.startswith("  block"))
    assert "<1e-7|<1e-5|<1e-3|>1e-3" in header
    row = next(line for line in lines if line.strip().startswith("w1 "))
    counts = report.band_counts("w1")
    assert sum(counts) == 40
    assert "|".join(str(c) for c in counts) in row.replace(" ", "")
