"""Every way a user reads a report, on every kind of report: summary(), str(), the HTML,
to_dict() through strict JSON, plot(), worst(k), stats, raise_if_failed(). No exception,
the first line never contradicts passed/verdict, and the numbers in the text are the
attributes'."""

import json
import math
import re
import warnings

import numpy as np
import pytest

import fastcheck as fc

RNG = np.random.default_rng(0)
W0, X0 = RNG.normal(size=(8, 6)), RNG.normal(size=6)
BIG = RNG.normal(size=(30, 20))
XB = RNG.normal(size=20)


def _cost(p, x):
    return float(np.sum(np.tanh(p["W"] @ x)))


def _grad(p, x):
    return {"W": np.outer(1 - np.tanh(p["W"] @ x) ** 2, x)}


def _bad(p, x):
    g = _grad(p, x)["W"].copy()
    g[2, 3] += 1e-2
    return {"W": g}


def _relu_cost(th):
    return float(np.sum(np.maximum(th, 0.0)))


def _relu_grad(th):
    return (th > 0).astype(float)


def _cost32(p, x):  # computes in float32 whatever it is given
    return np.float32(np.sum(np.tanh(p["W"].astype(np.float32) @ x.astype(np.float32))))


def _cost32_offset(p, x):  # float32 with a large constant term: noise hides the gradient
    return np.float32(np.float32(1e4) + _cost32(p, x))


def _interrupted(grad):
    calls = [0]

    def cost(p, x):
        calls[0] += 1
        if calls[0] == 600:  # after the first chunk of 256 components
            raise KeyboardInterrupt
        return _cost(p, x)

    try:
        fc.check(cost, grad, {"W": BIG}, (XB,), backend="serial")
    except KeyboardInterrupt as exc:
        return exc.partial_report
    raise AssertionError("not interrupted")


def _bad_big(p, x):
    g = _grad(p, x)["W"].copy()
    g[0, 5] *= 1.05
    return {"W": g}


def _nonfinite_cost(th):
    return float(np.sum(th ** 2)) if th[1] <= 0.5 else math.inf


MAKERS = {
    "pass": lambda: fc.check(_cost, _grad, {"W": W0}, (X0,)),
    "fail": lambda: fc.check(_cost, _bad, {"W": W0}, (X0,)),
    "kink": lambda: fc.check(_relu_cost, _relu_grad, np.array([0.0, 0.0, -1.0, 1.0, 2.0])),
    "sampled": lambda: fc.check(_cost, _grad, {"W": W0}, (X0,), sample=10, seed=3),
    "sampled_fail": lambda: fc.check(_cost, _bad, {"W": W0}, (X0,), sample=0.5, seed=1),
    "directional": lambda: fc.check(_cost, _grad, {"W": W0}, (X0,), mode="directional"),
    "directional_fail": lambda: fc.check(_cost, _bad, {"W": W0}, (X0,), mode="directional"),
    "float32": lambda: fc.check(_cost, _grad, {"W": W0.astype(np.float32)},
                                (X0.astype(np.float32),)),
    "float32_cost": lambda: fc.check(_cost32, _grad, {"W": W0.astype(np.float32)}, (X0,)),
    "float32_warn": lambda: fc.check(_cost32_offset, _grad, {"W": W0.astype(np.float32)},
                                     (X0,)),
    "max_failures": lambda: fc.check(_cost, _bad, {"W": W0}, (X0,), max_failures=1),
    "richardson_fail": lambda: fc.check(_cost, _bad, {"W": W0}, (X0,), method="richardson"),
    "partial": lambda: _interrupted(_grad),
    "partial_fail": lambda: _interrupted(_bad_big),
    "nonfinite": lambda: fc.check(_nonfinite_cost, lambda th: 2 * th, np.array([0.1, 0.5, 0.3])),
}


@pytest.fixture(scope="module")
def reports():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: make() for name, make in MAKERS.items()}


@pytest.mark.parametrize("name", list(MAKERS))
def test_report_reads_consistently(reports, name, tmp_path):
    r = reports[name]
    text = r.summary()
    first = text.splitlines()[0]
    assert str(r) == text
    assert first.startswith("fastcheck ")
    word = first.split()[1].rstrip(":")
    assert word == {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}[r.verdict], first
    assert r.passed == (r.verdict != "fail")
    if r.passed:
        assert "almost certainly a bug" not in first
    # the counts in the headline are the attributes
    m = re.search(r"([\d,]+) of ([\d,]+) components checked(?:, ([\d,]+) failed)?", first)
    assert m, first
    checked, total = (int(g.replace(",", "")) for g in m.groups()[:2])
    assert (checked, total) == (r.n_checked, r.n_params)
    assert int((m.group(3) or "0").replace(",", "")) == len(r.failed)
    # the headline's error is relative_error, or the smooth components' one when it says so
    m = re.search(r"relative error (inf|nan|[\d.e+-]+)( over)?", first)
    shown, qualified = float(m.group(1)), bool(m.group(2))
    if not qualified:
        expected = r.relative_error
    elif "direction" in first:
        expected = None  # the error over the random directions, not over components
    else:
        expected = r.smooth_relative_error
    if expected is not None:
        assert f"{expected:.2e}" == f"{shown:.2e}", (first, expected)
    # the block table: one row per block, its checked count and verdict
    for b in r.blocks:
        row = next(ln for ln in text.splitlines() if ln.strip().startswith(b.name + " "))
        assert f"{b.n_checked}/{b.n_params}" in row and row.split()[-1] == b.verdict, row
    # HTML and strict JSON
    html = r._repr_html_()
    assert word in html and all(b.name in html for b in r.blocks)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["passed"] == r.passed and d["verdict"] == r.verdict
    assert d["n_checked"] == r.n_checked and d["n_params"] == r.n_params
    # worst(k): failures first, at most n_checked, and each fail is in failed
    failed = set(r.failed.tolist())
    for k in (0, 1, 3, 10**6):
        w = r.worst(k)
        assert len(w) == min(k, r.n_checked)
        kinds = [c.kind for c in w]
        assert kinds == sorted(kinds, key=lambda s: s != "fail")
        assert all((c.flat_index in failed) == (c.kind == "fail") for c in w)
    assert isinstance(r.stats, dict)
    json.dumps(r.stats, default=str)
    # raise_if_failed raises exactly when the report did not pass, with the headline
    if r.passed:
        r.raise_if_failed()
    else:
        with pytest.raises(fc.GradientCheckError) as info:
            r.raise_if_failed()
        assert isinstance(info.value, AssertionError)
        assert str(info.value).splitlines()[0] == first


def test_partial_reports_say_they_stopped(reports):
    for name in ("partial", "partial_fail"):
        r = reports[name]
        assert 0 < r.n_checked < r.n_params
        assert "interrupted" in r.summary()
        assert r.failure_rate_bound is not None
    assert reports["partial"].passed
    assert reports["partial_fail"].failed.tolist() == [5] and not reports["partial_fail"].passed


def test_plots_of_every_kind_save_as_png(reports, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    for name in ("pass", "fail", "kink", "sampled", "directional", "float32_cost", "partial",
                 "nonfinite"):
        fig = reports[name].plot()
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize("name", ["sampled", "sampled_fail", "partial", "partial_fail"])
def test_the_confidence_sentence_states_the_bound_attribute(reports, name):
    r = reports[name]
    m = re.search(r"([\d,]+) of ([\d,]+) sampled components failed: with (\d+)% confidence "
                  r"at most ([\d.]+)% of the ([\d,]+) components", r.summary())
    assert m, r.summary()
    failed, checked, level, bound, total = m.groups()
    assert int(failed) == len(r.failed) and int(checked) == r.n_checked
    assert int(total.replace(",", "")) == r.n_params and int(level) == 95
    assert float(bound) == pytest.approx(100 * r.failure_rate_bound, rel=0.06)
    assert r.to_dict()["failure_rate_bound"] == r.failure_rate_bound


def test_a_warn_report_reads_warn_and_does_not_raise(reports):
    r = reports["float32_warn"]
    assert r.verdict == "warn" and r.passed
    assert r.summary().startswith("fastcheck WARN")
    r.raise_if_failed()
