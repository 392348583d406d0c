"""`fastcheck check` on a user's own files: what the one-line error says, per cause."""
import json
import textwrap

import numpy as np
import pytest

from fastcheck.cli import main

NET = textwrap.dedent('''
    import numpy as np

    def cost(p, X, y):
        h = np.tanh(X @ p["W1"] + p["b1"])
        return 0.5 * float(np.sum((h @ p["W2"] - y) ** 2))

    def grad(p, X, y):
        h = np.tanh(X @ p["W1"] + p["b1"])
        r = h @ p["W2"] - y
        dh = r @ p["W2"].T * (1 - h ** 2)
        return {"dW1": X.T @ dh, "db1": dh.sum(0), "dW2": h.T @ r}

    def grad_bias_x2(p, X, y):
        g = grad(p, X, y)
        g["db1"] = 2 * g["db1"]
        return g

    def grad_no_w2(p, X, y):
        g = grad(p, X, y)
        del g["dW2"]
        return g

    def grad_transposed(p, X, y):
        g = grad(p, X, y)
        g["dW1"] = g["dW1"].T
        return g

    def both(p, X, y):
        return cost(p, X, y), grad(p, X, y)
''')


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "usernet.py").write_text(NET)
    rng = np.random.default_rng(0)
    w1, b1, w2 = rng.standard_normal((4, 5)), rng.standard_normal(5), rng.standard_normal((5, 2))
    np.savez(tmp_path / "p.npz", W1=w1, b1=b1, W2=w2)
    np.savez(tmp_path / "p_key.npz", W1=w1, bias1=b1, W2=w2)
    np.savez(tmp_path / "p_shape.npz", W1=w1[:3], b1=b1, W2=w2)
    np.savez(tmp_path / "p_int.npz", W1=np.ones((4, 5), dtype=np.int64), b1=b1, W2=w2)
    np.savez(tmp_path / "a.npz", rng.standard_normal((6, 4)), rng.standard_normal((6, 2)))
    np.savez(tmp_path / "a_named.npz", X=rng.standard_normal((6, 4)),
             y=rng.standard_normal((6, 2)))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


BASE = ["--params", "p.npz", "--args", "a.npz"]


@pytest.mark.parametrize(("cost", "grad", "params", "code", "needles"), [
    ("usernet.py:cost", "usernet.py:grad", "p.npz", 0, ["PASS", "W1, b1, W2"]),
    ("usernet:both", "true", "p.npz", 0, ["PASS"]),
    ("usernet.py:cost", "usernet.py:grad_bias_x2", "p.npz", 1, ["FAIL", "failing blocks: b1"]),
    ("usernet.py:cots", "usernet.py:grad", "p.npz", 2, ["'cots'", "cost"]),
    ("usernot.py:cost", "usernet.py:grad", "p.npz", 2, ["usernot"]),
    ("usernet.py:cost", "usernet.py:grad", "p_key.npz", 2, ["KeyError", "b1", "usernet.py"]),
    ("usernet.py:cost", "usernet.py:grad", "p_shape.npz", 2, ["usernet.py"]),
    ("usernet.py:cost", "usernet.py:grad", "p_int.npz", 2, ["W1", "float64", "int64"]),
    ("usernet.py:cost", "usernet.py:grad_no_w2", "p.npz", 2, ["W2", "dW2"]),
    ("usernet.py:cost", "usernet.py:grad_transposed", "p.npz", 2,
     ["(4, 5)", "(5, 4)", "W1"]),
])
def test_check_exit_code_and_message(user_dir, capsys, cost, grad, params, code, needles):
    got, out, err = _run(["check", cost, grad, "--params", params, "--args", "a.npz"], capsys)
    assert got == code, (out, err)
    text = out if code in (0, 1) else err
    if code == 2:
        assert len(err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in text, (needle, text)


def test_named_args_sample_threads_and_json(user_dir, capsys):
    argv = ["check", "usernet.py:cost", "usernet.py:grad_bias_x2", "--params", "p.npz",
            "--args", "a_named.npz", "--sample", "12", "--seed", "4", "--threads", "1",
            "--json"]
    code, out, _ = _run(argv, capsys)
    data = json.loads(out)
    assert code == (1 if data["failed"] else 0)
    assert data["n_checked"] == 12 and data["seed"] == 4 and data["n_params"] == 35
    assert all(b["n_checked"] >= 1 for b in data["blocks"])
    assert 0 < data["failure_rate_bound"] <= 1


@pytest.mark.parametrize(("extra", "needle"), [
    (["--sample", "-3"], "--sample"),
    (["--sample", "1.5"], "sample"),
    (["--threads", "0"], "threads"),
    (["--eps", "-1"], "eps"),
    (["--confidence", "1.5", "--sample", "5"], "confidence"),
])
def test_bad_options_exit_2_naming_the_option(user_dir, capsys, extra, needle):
    code, _, err = _run(["check", "usernet.py:cost", "usernet.py:grad", *BASE, *extra], capsys)
    assert code == 2 and needle in err
