"""The command line as API.md states it: demo | check | bench, exit 0 pass, 1 fail, 2 usage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastcheck.cli import main

NET = textwrap.dedent("""
    import numpy as np

    def cost(theta, X):
        return float(np.sum(np.tanh(X @ theta) ** 2))

    def grad(theta, X):
        t = np.tanh(X @ theta)
        return X.T @ (2 * t * (1 - t ** 2))

    def grad_bad(theta, X):
        return 2 * grad(theta, X)

    def dcost(p, X):
        return float(np.sum(np.tanh(X @ p["w"] + p["b"]) ** 2))

    def dgrad(p, X):
        t = np.tanh(X @ p["w"] + p["b"])
        s = 2 * t * (1 - t ** 2)
        return {"dw": X.T @ s, "db": s.sum()[None]}

    def cost_nan(theta, X):
        return float("nan")
""")


@pytest.fixture
def net(tmp_path, monkeypatch):
    (tmp_path / "mynet.py").write_text(NET)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "p.npz", theta=rng.normal(size=4))
    np.savez(tmp_path / "a.npz", X=rng.normal(size=(6, 4)))
    np.savez(tmp_path / "pd.npz", w=rng.normal(size=4), b=np.array([0.1]))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(("argv", "status"), [
    (["demo"], 0),
    (["demo", "--bug", "sign-flip"], 1),
    (["demo", "--bug", "missing-regularization", "--sample", "60", "--seed", "0"], 1),
    (["demo", "--sample", "50", "--seed", "1", "--threads", "1"], 0),
    (["demo", "--sample", "0.2", "--threads", "2"], 0),
    (["demo", "--model", "mlp"], 0),
    (["demo", "--sample", "0"], 2),
    (["demo", "--sample", "1.5"], 2),
    (["demo", "--sample", "lots"], 2),
    (["demo", "--bug", "no-such-bug"], 2),
    (["demo", "--threads", "0"], 2),
    (["demo", "--model", "resnet"], 2),
    (["bench", "--size", "XXL"], 2),
    (["no-such-command"], 2),
    ([], 2),
])
def test_demo_exit_status(argv, status, capsys):
    assert main(argv) == status
    out, err = capsys.readouterr()
    if status == 2:
        assert err.strip()  # a usage error says what was wrong
        assert "Traceback" not in err
    if status in (0, 1) and argv:
        first = out.strip().splitlines()
        assert any(("PASS" if status == 0 else "FAIL") in line for line in first[:3])


@pytest.mark.parametrize(("argv", "status"), [
    (["check", "mynet.py:cost", "mynet.py:grad", "--params", "p.npz", "--args", "a.npz"], 0),
    (["check", "mynet:cost", "mynet:grad", "--params", "p.npz", "--args", "a.npz"], 0),
    (["check", "mynet.py:cost", "mynet.py:grad_bad", "--params", "p.npz", "--args",
      "a.npz"], 1),
    (["check", "mynet.py:dcost", "mynet.py:dgrad", "--params", "pd.npz", "--args",
      "a.npz"], 0),
    (["check", "mynet.py:cost", "mynet.py:grad", "--params", "p.npz", "--args", "a.npz",
      "--sample", "2", "--threads", "2", "--seed", "3"], 0),
    (["check", "mynet.py:cost", "mynet.py:grad", "--params", "p.npz", "--args", "a.npz",
      "--sample", "0.5"], 0),
    (["check", "mynet.py:cost", "mynet.py:nothere", "--params", "p.npz", "--args",
      "a.npz"], 2),
    (["check", "mynet.py:cost", "mynet.py:grad", "--params", "missing.npz"], 2),
    (["check", "mynet.py:cost", "mynet.py:grad", "--params", "p.npz"], 2),
    (["check", "mynet.py:cost_nan", "mynet.py:grad", "--params", "p.npz", "--args",
      "a.npz"], 2),
    (["check", "nosuchmodule:cost", "mynet.py:grad", "--params", "p.npz"], 2),
    (["check", "mynet.py:cost", "--params", "p.npz"], 2),
])
def test_check_exit_status(net, argv, status, capsys):
    assert main(argv) == status
    out, err = capsys.readouterr()
    if status == 2:
        assert err.strip() and "Traceback" not in err


def test_check_json_is_the_report(net, capsys):
    argv = ["check", "mynet.py:cost", "mynet.py:grad_bad", "--params", "p.npz", "--args",
            "a.npz", "--json"]
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False and data["n_params"] == 4 and data["failed"]


def test_python_dash_m_fastcheck_exit_codes(net):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), env.get("PYTHONPATH")) if p)
    base = [sys.executable, "-m", "fastcheck", "check", "mynet.py:cost"]
    tail = ["--params", "p.npz", "--args", "a.npz"]
    ok = subprocess.run(base + ["mynet.py:grad"] + tail, capture_output=True, text=True,
                        env=env, cwd=net, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(base + ["mynet.py:grad_bad"] + tail, capture_output=True, text=True,
                         env=env, cwd=net, timeout=120)
    assert bad.returncode == 1, bad.stderr
    usage = subprocess.run([sys.executable, "-m", "fastcheck", "demo", "--sample", "-3"],
                           capture_output=True, text=True, env=env, cwd=net, timeout=120)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
