"""Report as data: the one constructor, the headline, the bound, laziness, the views."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcheck as fc
from fastcheck._verdict import FAIL, KINK, NONFINITE, OK
from fastcheck.report import Report, Run
from fastcheck.views import bands
from fastcheck.views.json import jsonable

from . import _models

PACKAGE = Path(fc.__file__).resolve().parent
LAYOUT = fc.Layout({"w": (4,), "b": (2,)})


def _report(analytic, numeric, kinds, *, sampled=False, indices=None, layout=LAYOUT):
    indices = np.arange(len(kinds)) if indices is None else np.asarray(indices)
    run = Run(seed=0, eps="auto", rtol=1e-5, backend="serial", threads=1, seconds=0.0,
              compile_seconds=0.0, evaluations=2 + 2 * len(kinds), sampled=sampled)
    return Report.from_components(layout, indices, np.asarray(analytic, dtype=float),
                                  np.asarray(numeric, dtype=float), np.array(kinds),
                                  np.full(len(kinds), 1e-6), np.zeros(len(kinds)), run)


# -- the headline never contradicts `passed`, kinks apart -----------------------------------
def test_kinks_do_not_dominate_the_headline_of_a_passing_report():
    a = [1.0, 2.0, 3.0, 1.0, 0.5, -0.5]
    n = [1.0, 2.0, 3.0, 1.0 + 1e-12, 0.0, 0.0]  # the two kinks: subgradient 0.5 vs 0
    report = _report(a, n, [OK, OK, OK, OK, KINK, KINK])
    assert report.passed and report.verdict == "pass"
    assert report.relative_error > 1e-2  # API.md: over every checked component
    assert report.smooth_relative_error < 1e-12
    head = report.headline()
    assert head.startswith("fastcheck PASS: relative error ")
    assert "over 4 smooth components" in head and "2 on ReLU/max kinks" in head
    assert "bug" not in head
    summary = report.summary()
    assert f"{report.relative_error:.2e}" in summary  # both errors explained
    assert "report.smooth_relative_error" in summary and "kinks included" in summary
    assert report.blocks[1].verdict == "pass" and report.blocks[1].n_kinks == 2


def test_a_passing_report_never_calls_its_error_a_bug():
    report = _report([1.0, 2.0, 3.0, 1.0, 1e-3, 0.0], [1.1, 2.0, 3.0, 1.0, 0.0, 1e-3],
                     [OK] * 6)  # no failure, yet a global error beyond 1e-3
    assert report.passed and report.verdict == "warn"
    assert "almost certainly a bug" not in report.summary()
    assert report.headline().startswith("fastcheck WARN:")
    failing = _report([1.1, 2.0, 3.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 1.0, 1.0, 1.0],
                      [FAIL] + [OK] * 5)
    assert not failing.passed and failing.verdict == "fail"
    assert failing.headline().startswith("fastcheck FAIL:")
    assert list(failing.failed) == [0] and failing.failing_blocks() == ["w"]


def test_a_correct_relu_network_with_exact_kinks_passes_with_a_consistent_headline():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 16)), np.eye(3)[:, rng.integers(0, 3, 16)]
    params = {"W1": rng.normal(size=(8, 6)), "b1": rng.normal(size=(8, 1)) * 0.1,
              "W2": rng.normal(size=(3, 8)), "b2": np.zeros((3, 1))}
    params["b1"][:, 0] = -(params["W1"] @ X[:, :1])[:, 0]  # 8 pre-activations at 0
    report = fc.check(_models.cost, _models.backward, params, (X, Y, 0.1, "relu"), seed=0)
    head = report.headline()
    assert report.passed and report.n_kinks >= 1, report.summary()
    assert report.relative_error > 1e-3 > report.smooth_relative_error  # kinks dominate
    assert head.startswith("fastcheck PASS: ") and report.verdict == "pass"
    assert "bug" not in head and f"{report.n_kinks} on ReLU/max kinks" in head


# -- the failure-rate bound ------------------------------------------------------------------
def test_failure_rate_bound_is_a_float_with_per_block_bounds():
    layout = fc.Layout({"w": (1000,), "b": (4,)})
    kinds = [OK] * 50 + [FAIL] + [OK] * 3
    indices = list(range(0, 1000, 1000 // 51))[:51] + [1000, 1001, 1002]
    report = _report(np.ones(54), np.ones(54), kinds, sampled=True, indices=indices,
                     layout=layout)
    assert isinstance(report.failure_rate_bound, float)
    from scipy.stats import beta

    # stratified: w (1000) had 51 of the 54 components; pooled beta(2, 53) would treat the 3
    # of b (4 components, 3 checked) as if they were a share of w's sample
    v_w, v_b = 1000 / 1004, 4 / 1004
    n_eff = 1 / (v_w**2 / 51 + v_b**2 / 3)
    events = v_w / 51 * n_eff
    assert report.failure_rate_bound == pytest.approx(
        beta.ppf(0.95, events + 1, n_eff - events), rel=1e-9)
    assert report.failure_rate_bound > beta.ppf(0.95, 2, 53)
    w, b = report.blocks
    assert w.failure_rate_bound == pytest.approx(beta.ppf(0.95, 2, 50), rel=1e-9)
    assert b.failure_rate_bound == pytest.approx(beta.ppf(0.95, 1, 3), rel=1e-9)
    full = report.stats["failure_rate_bound"]
    assert full["overall"] == report.failure_rate_bound
    assert full["blocks"] == {"w": w.failure_rate_bound, "b": b.failure_rate_bound}
    assert "fail<=95%" in report.summary()
    d = report.to_dict()
    assert d["failure_rate_bound"] == report.failure_rate_bound
    assert [x["failure_rate_bound"] for x in d["blocks"]] == [w.failure_rate_bound,
                                                             b.failure_rate_bound]
    complete = _report(np.ones(6), np.ones(6), [OK] * 6)
    assert complete.failure_rate_bound is None
    assert all(x.failure_rate_bound is None for x in complete.blocks)


# -- computed on first access ----------------------------------------------------------------
def test_import_and_a_small_check_load_neither_scipy_stats_nor_matplotlib():
    code = (
        "import sys, numpy as np\n"
        "import fastcheck as fc\n"
        "heavy = lambda: [m for m in ('scipy.stats', 'matplotlib') if m in sys.modules]\n"
        "print(heavy())\n"
        "f = lambda x: float(np.sum(np.sin(x)))\n"
        "r = fc.check(f, np.cos, np.linspace(0, 1, 50), seed=0)\n"
        "s = fc.check(f, np.cos, np.linspace(0, 1, 500), sample=50, seed=0)\n"
        "text = r.summary() + s.summary() + s._repr_html_()\n"
        "print(heavy(), r.passed, s.failure_rate_bound > 0, 'fail<=95%' in text)\n"
        "r.to_dict()\n"
        "print(heavy())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "[] True True True"  # checks, summaries and HTML do without it
    assert lines[2] == "['scipy.stats']"  # the statistics import it when first read


def test_statistics_and_hints_are_computed_once_and_identical():
    report = _report([1.1, 2.0, 3.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 1.0, 1.0, 1.0],
                     [FAIL] + [OK] * 5)
    assert report.stats is report.stats and report.hints is report.hints
    from fastcheck import stats

    assert report.stats["overall"] == stats.error_statistics(
        report.rel_errors, report.kinds, report.indices, report.layout)["overall"]
    assert report.stats["overall"]["kinds"] == {OK: 5, KINK: 0, FAIL: 1, NONFINITE: 0}


# -- one definition each -----------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            out.update(f"{base}.{a.name}" if not node.module else base for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_views_do_not_import_the_report_at_module_level():
    for path in sorted((PACKAGE / "views").glob("*.py")):
        assert not any("report" in m or "taylor" in m for m in _imports(path)), path.name


def test_no_module_but_report_assembles_a_report():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name) and n.func.id == "Report"]
        if path.name != "report.py":
            assert calls == [], path
    assert not (PACKAGE / "_analysis.py").exists() and not (PACKAGE / "plot.py").exists()


def test_one_log10_floor_and_one_set_of_bands():
    from fastcheck import stats
    from fastcheck.views import plot

    assert stats.LOG10_FLOOR is bands.LOG10_FLOOR == 1e-17
    assert tuple(k for k, _, _ in stats.BANDS) == bands.BAND_KEYS
    assert plot.BAND_SHADES[0][0] == math.log10(bands.LOG10_FLOOR)
    assert [hi for _, hi, _ in plot.BAND_SHADES[:3]] == [-7.0, -5.0, -3.0]
    assert bands.ng_band(2e-3) == "> 1e-3: almost certainly a bug"
    assert "bug" not in bands.ng_band(2e-3, passed=True)


def test_the_json_cleaner():
    value = {1: np.array([1.0, np.nan, np.inf]), "t": (np.int64(3), np.float32(0.5)),
             "b": np.array([True, False]), "s": "x", "n": None, "f": -np.inf}
    assert jsonable(value) == {"1": [1.0, None, None], "t": [3, 0.5], "b": [True, False],
                               "s": "x", "n": None, "f": None}
    report = _report([1.0, np.nan, 3.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 1.0, 1.0, 1.0],
                     [OK, NONFINITE, OK, OK, OK, OK])
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["analytic"][1] is None and d["kinds"][1] == NONFINITE
    assert d["layout"] == {"w": [4], "b": [2]} and d["blocks"][0]["shape"] == [4]


def _block_figures_one_by_one(layout, indices, analytic, numeric, kinds):
    """Every per-block figure of a Report, computed block by block from its definition."""
    out = []
    for name in layout.names:
        lo, hi = layout.offset_of(name), layout.offset_of(name) + layout.size_of(name)
        mine = (indices >= lo) & (indices < hi)
        a, n, k = analytic[mine], numeric[mine], kinds[mine]
        smooth = k != KINK
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(a - n) / (np.abs(a) + np.abs(n))
        rel = np.where((a == 0) & (n == 0), 0.0, rel)
        if rel.size == 0:
            max_rel = 0.0
        elif np.all(np.isnan(rel)):
            max_rel = math.nan
        else:
            max_rel = float(np.nanmax(rel))
        n_failed = int(np.count_nonzero((k == FAIL) | (k == NONFINITE)))
        out.append((int(mine.sum()), n_failed, int(np.count_nonzero(~smooth)), max_rel,
                    fc.report.global_relative_error(a, n),
                    fc.report.global_relative_error(a[smooth], n[smooth])))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_block_figures_equal_their_block_by_block_definition(seed):
    """The vectorised block reports (one pass over all blocks) agree with the definition,
    with empty blocks, NaN and inf values, kinks and failures mixed in."""
    rng = np.random.default_rng(seed)
    layout = fc.Layout({"W1": (4, 3), "b1": (4,), "W2": (2, 4), "b2": (2,), "c": (5,)})
    indices = np.sort(rng.choice(layout.size, size=int(rng.integers(1, layout.size)),
                                 replace=False)).astype(np.int64)
    n = indices.shape[0]
    analytic = rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, size=n)
    numeric = analytic * (1 + rng.normal(size=n) * 10.0 ** rng.integers(-12, 0, size=n))
    numeric[rng.random(n) < 0.1] = np.nan
    numeric[rng.random(n) < 0.05] = np.inf
    analytic[rng.random(n) < 0.1] = 0.0
    kinds = rng.choice([OK, KINK, FAIL], size=n, p=[0.6, 0.2, 0.2]).astype("<U9")
    kinds[~np.isfinite(numeric)] = NONFINITE
    run = Run(seed=seed, eps="auto", rtol=1e-5, backend="serial", threads=1, seconds=0.0,
              compile_seconds=0.0, evaluations=2 * n, sampled=True)
    report = Report.from_components(layout, indices, analytic, numeric, kinds,
                                    np.full(n, 1e-6), np.zeros(n), run)
    expected = _block_figures_one_by_one(layout, indices, analytic, numeric, kinds)
    for block, (count, n_failed, n_kinks, max_rel, rel, rel_smooth) in zip(report.blocks,
                                                                           expected):
        assert (block.n_checked, block.n_failed, block.n_kinks) == (count, n_failed, n_kinks)
        np.testing.assert_allclose(block.max_rel_error, max_rel, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(block.relative_error, rel, rtol=1e-12, equal_nan=True)
        # a block with nothing checked in a sample has no verdict to give: "warn"
        assert block.verdict == ("warn" if count == 0 else
                                 fc.report.verdict_of(n_failed, rel_smooth))


def _full_report(seed: int, sampled: bool = False) -> Report:
    rng = np.random.default_rng(seed)
    layout = fc.Layout({"W1": (3, 4), "b1": (4,)})
    indices = np.arange(layout.size, dtype=np.int64)
    analytic = rng.normal(size=layout.size)
    numeric = analytic.copy()
    numeric[3] *= 2.0
    kinds = np.full(layout.size, OK, dtype="<U9")
    kinds[3] = FAIL
    run = Run(seed=seed, eps="auto", rtol=1e-5, backend="serial", threads=1, seconds=0.0,
              compile_seconds=0.0, evaluations=2 * layout.size, sampled=sampled)
    return Report.from_components(layout, indices, analytic, numeric, kinds,
                                  np.full(layout.size, 1e-6), np.zeros(layout.size), run)


@pytest.mark.parametrize("sampled", [False, True])
def test_blocks_built_on_first_access_equal_and_survive_pickle(sampled):
    """``blocks`` is built on first access (most reports are read for their verdict only),
    once; a pickled report carries them, built."""
    import pickle

    report = _full_report(0, sampled)
    assert (report._blocks is not report.blocks) != sampled  # lazy unless sampled
    first = report.blocks
    assert report.blocks is first
    assert [b.name for b in first] == ["W1", "b1"]
    assert [b.n_failed for b in first] == [1, 0]
    assert [b.verdict for b in first] == ["fail", "pass"]
    assert (first[0].failure_rate_bound is not None) == sampled
    copy = pickle.loads(pickle.dumps(_full_report(0, sampled)))
    assert copy.blocks == first
    assert copy.failing_blocks() == ["W1"] and copy.summary() == report.summary()
