"""report.plot() (a matplotlib Figure that Jupyter shows as an image) and _repr_html_()."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastcheck as fc

pytest.importorskip("matplotlib")


ODD = "<odd> & name"  # a block name that needs escaping in HTML


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.normal(size=(4, 3)), "b": rng.normal(size=3), ODD: rng.normal(size=2)}


def _cost(p):
    return float(np.sum(np.tanh(p["W"])) + np.sum(p["b"] ** 2) + np.sum(np.sin(p[ODD])))


def _grad(p, bug=False):
    g = {"W": 1 - np.tanh(p["W"]) ** 2, "b": 2 * p["b"], ODD: np.cos(p[ODD])}
    if bug:
        g["b"] = -g["b"]
    return g


@pytest.fixture(scope="module")
def failing():
    params = _params()
    return fc.check(_cost, _grad(params, bug=True), params, seed=0)


@pytest.fixture(scope="module")
def passing():
    params = _params(1)
    return fc.check(_cost, _grad(params), params, seed=0)


@pytest.mark.parametrize("which", ["failing", "passing"])
def test_plot_returns_a_figure_that_saves_to_png(which, request, tmp_path):
    from matplotlib.figure import Figure

    report = request.getfixturevalue(which)
    fig = report.plot()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * len(report.blocks)  # a histogram and a scatter per block
    path = tmp_path / "report.png"
    fig.savefig(path, dpi=50)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_plot_of_a_sampled_check_with_many_points(tmp_path):
    rng = np.random.default_rng(0)
    theta = rng.normal(size=5000)
    report = fc.check(lambda x: float(np.sum(np.sin(x))), lambda x: np.cos(x) * 1.01, theta,
                      sample=3000, seed=0)
    fig = report.plot(max_points=500)
    scatter = fig.axes[1].collections
    assert sum(len(c.get_offsets()) for c in scatter) <= 500 + len(report.failed)
    fig.savefig(tmp_path / "big.png", dpi=40)


def test_importing_the_plot_module_does_not_import_matplotlib():
    code = "import fastcheck.views.plot, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_missing_matplotlib_names_the_plot_extra(failing, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"fastcheck\[plot\]"):
        failing.plot()


def test_html_has_the_coloured_verdict_the_blocks_and_escapes_names(failing):
    text = failing._repr_html_()
    assert "FAIL" in text and "#c62828" in text
    assert "&lt;odd&gt; &amp; name" in text and "<odd>" not in text
    for name in ("W", "b"):
        assert f"<td>{name}</td>" in text
    assert "sign is flipped" in text  # the hint
    assert "b[0]" in text  # the worst components


def test_html_of_a_passing_and_of_a_sampled_check(passing):
    assert "PASS" in passing._repr_html_() and "#2e7d32" in passing._repr_html_()
    theta = np.random.default_rng(0).normal(size=3000)
    sampled = fc.check(lambda x: float(np.sum(np.sin(x))), lambda x: np.cos(x), theta,
                       sample=300, seed=0)
    text = sampled._repr_html_()
    assert "0 of 300 sampled components failed" in text and "fail ≤ (95%)" in text


# -- pictures people see ---------------------------------------------------------------------
def test_the_figure_renders_as_png_for_jupyter_without_pyplot(failing):
    code = ("import sys, numpy as np, fastcheck as fc\n"
            "r = fc.check(lambda x: float(np.sum(x**2)), lambda x: 3 * x, np.ones(3))\n"
            "fig = r.plot()\n"
            "from IPython.core.formatters import PNGFormatter\n"
            "png = PNGFormatter()(fig)\n"
            "print('matplotlib.pyplot' in sys.modules, png[:8] == b'\\x89PNG\\r\\n\\x1a\\n')")
    pytest.importorskip("IPython")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "True"]  # no pyplot, and still an image
    data = failing.plot()._repr_png_()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_the_one_element_bug_stands_out():
    from fastcheck.models import make_mlp

    m = make_mlp("S", bug="one-element", seed=0)
    report = fc.check(m.cost, m.grad, m.theta, m.args, layout=m.layout, seed=0,
                      backend="serial")
    fig = report.plot()
    w2 = next(i for i, b in enumerate(report.blocks) if b.name == "W2")
    hist, scatter = fig.axes[2 * w2], fig.axes[2 * w2 + 1]
    assert hist.get_yscale() == "log"  # one count among 128 is a visible bar
    labels = [t.get_text() for t in scatter.texts]
    assert labels == ["W2[1, 3]"]  # the failing component is named on the scatter
    fail_points = [c for c in scatter.collections if c.get_label() == "fail"]
    assert len(fail_points) == 1 and len(fail_points[0].get_offsets()) == 1
    ok_points = next(c for c in scatter.collections if c.get_label() == "ok")
    assert fail_points[0].get_sizes()[0] > ok_points.get_sizes()[0]  # its own marker size
    assert not np.allclose(fail_points[0].get_facecolor(), ok_points.get_facecolor())
    for i, _ in enumerate(report.blocks):
        if i != w2:
            assert len(fig.axes[2 * i + 1].texts) == 0  # nothing to label where nothing fails


def test_taylor_plot_renders_as_png():
    result = fc.taylor_test(lambda x: float(np.sum(np.sin(x))), np.cos,
                            np.array([0.1, 0.2, 0.3]), seed=0)
    assert result.plot()._repr_png_()[:4] == b"\x89PNG"
