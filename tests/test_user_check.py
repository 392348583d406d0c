"""``fastcheck check``: the user's own functions from the command line.

The examples run the command as a user would (``python -m fastcheck`` in a subprocess,
from the repository root); the many bad inputs go through ``main()`` in-process, which
is the same code without a numba import per case.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcheck.cli import main
from fastcheck.cli.check import load_args, load_params

ROOT = Path(__file__).resolve().parent.parent
TINY = ["examples/tiny_net.py:cost", "examples/tiny_net.py:backward",
        "--params", "examples/tiny_net_params.npz", "--args", "examples/tiny_net_args.npz"]


def fastcheck(*argv, cwd=ROOT):
    """Run ``python -m fastcheck ...`` as a user would."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "fastcheck", *argv], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


# -- as a user runs it ----------------------------------------------------------------------
def test_example_passes():
    proc = fastcheck("check", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout
    for block in ("W1", "b1", "W2", "b2"):
        assert f"\n  {block} " in proc.stdout


def test_example_bug_fails_and_names_the_block():
    argv = [a.replace(":backward", ":backward_buggy") for a in TINY]
    proc = fastcheck("check", *argv)
    assert proc.returncode == 1, proc.stderr
    assert "failing blocks: W2" in proc.stdout
    assert "regularisation" in proc.stdout


def test_example_json():
    proc = fastcheck("check", *TINY, "--json", "--sample", "20", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] is True and data["n_checked"] == 20 and data["seed"] == 3
    assert data["n_params"] == 57


@pytest.mark.parametrize("argv", [
    ["check", "examples/no_such.py:cost", "true", "--params", "examples/tiny_net_params.npz"],
    ["check", *TINY[:2], "--params", "examples/tiny_net.py"],
], ids=["missing-module", "not-an-npz"])
def test_bad_input_as_a_user_sees_it(argv):
    proc = fastcheck(*argv)
    assert proc.returncode == 2
    assert proc.stderr.startswith("fastcheck check: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""


# -- in-process: the same command ------------------------------------------------------------
def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A folder with user files; the current directory during the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "p.npz", w=rng.standard_normal(3), B=rng.standard_normal((2, 2)))
    np.savez(tmp_path / "a.npz", np.array(2.0))
    return tmp_path


def write(folder, name, source):
    (folder / name).write_text(source)
    return name


GOOD = """
import numpy as np
def cost(p, s):
    return s * float(np.sum(p["w"] ** 2) + np.sum(np.sin(p["B"])))
def grad(p, s):
    return {"dw": s * 2 * p["w"], "dB": s * np.cos(p["B"])}
def both(p, s):
    return cost(p, s), grad(p, s)
class Holder:
    def cost(self, p, s):
        return cost(p, s)
holder = Holder()
"""


@pytest.mark.parametrize("cost, grad", [
    ("{m}.py:cost", "{m}.py:grad"),        # a path to a .py file
    ("{m}:cost", "{m}:grad"),              # a dotted module from the current directory
    ("{m}:both", "true"),                  # cost returns (loss, grads)
    ("{m}:holder.cost", "{m}:grad"),       # an attribute path
], ids=["path", "dotted", "true", "attribute"])
def test_ways_to_name_the_functions(user_dir, capsys, cost, grad, request):
    m = f"good_{request.node.callspec.id}"
    write(user_dir, f"{m}.py", GOOD)
    code, out, err = run(["check", cost.format(m=m), grad.format(m=m), "--params", "p.npz",
                          "--args", "a.npz"], capsys)
    assert code == 0, err
    assert "PASS" in out and "\n  w " in out and "\n  B " in out


BAD_MODULES = {
    "syntax.py": "def cost(p:\n",
    "broken_import.py": "import no_such_package_xyz\ndef cost(p):\n    return 0.0\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "raises.py": "def cost(p, s):\n    return 1 / 0\ndef grad(p, s):\n    return p\n",
    "nondet.py": "import random\ndef cost(p, s):\n    return random.random()\n"
                 "def grad(p, s):\n    return p\n",
    "notfn.py": "cost = 3\n",
    "zero.py": "def cost(p):\n    return 0.0\n",
    "good.py": GOOD,
}


@pytest.fixture
def bad_dir(user_dir):
    """``user_dir`` with broken modules and broken archives."""
    for name, source in BAD_MODULES.items():
        write(user_dir, name, source)
    (user_dir / "text.npz").write_text("not an archive")
    good = (ROOT / "examples" / "tiny_net_params.npz").read_bytes()
    (user_dir / "truncated.npz").write_bytes(good[: len(good) // 3])
    np.save(user_dir / "single.npy", np.ones(3))
    np.savez(user_dir / "empty.npz")
    np.savez(user_dir / "f16.npz", W=np.ones(2, dtype=np.float16))  # float32 is accepted
    return user_dir


P, A = ["--params", "p.npz"], ["--args", "a.npz"]


@pytest.mark.parametrize("argv, expected", [
    (["syntax.py:cost", "true", *P], "cannot import syntax.py: SyntaxError"),
    (["broken_import.py:cost", "true", *P], "No module named 'no_such_package_xyz'"),
    (["exits.py:cost", "true", *P], "called sys.exit(3)"),
    (["no_such_module:cost", "true", *P], "cannot import no_such_module"),
    (["no_such_file.py:cost", "true", *P], "no such file: no_such_file.py"),
    (["raises.py:costt", "raises.py:grad", *P], "raises.py has no 'costt'; it has cost, grad"),
    (["notfn.py:cost", "true", *P], "notfn.py:cost is not a function"),
    (["raises.py:cost", "raises", *P], "GRAD must be MODULE:FUNCTION"),
    (["good.py:cost", "good.py:grad", "--params", "missing.npz"],
     "--params: no such file: missing.npz"),
    (["good.py:cost", "good.py:grad", "--params", "text.npz"],
     "text.npz is not an .npz archive"),
    (["good.py:cost", "good.py:grad", "--params", "truncated.npz"],
     "cannot read truncated.npz: BadZipFile"),
    (["good.py:cost", "good.py:grad", "--params", "single.npy"], "holds a single array"),
    (["good.py:cost", "good.py:grad", "--params", "empty.npz"], "holds no arrays"),
    (["good.py:cost", "good.py:grad", *P, "--args", "text.npz"],
     "--args: text.npz is not an .npz archive"),
    (["good.py:cost", "good.py:grad", *P, "--args", "none.npz"], "--args: no such file"),
    (["good.py:cost", "good.py:grad", *P],
     "missing 1 required positional argument: 's' (cost and grad are called as "
     "f(params, *args), with 0 argument(s) from --args)"),
    (["raises.py:cost", "raises.py:grad", *P, *A],
     "ZeroDivisionError: division by zero (in cost, raises.py, line 2)"),
    (["nondet.py:cost", "nondet.py:grad", *P, *A], "cost returned different values"),
    (["zero.py:cost", "true", "--params", "f16.npz"], "got dtype float16"),
    (["good.py:cost", "good.py:grad", *P, *A, "--eps", "-1"], "eps must be"),
    (["good.py:cost", "good.py:grad", *P, *A, "--backend", "gpu"], "backend must be one of"),
], ids=lambda v: None if isinstance(v, list) else v[:40])
def test_bad_input_is_one_line_and_exit_2(bad_dir, capsys, argv, expected):
    code, out, err = run(["check", *argv], capsys)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("fastcheck check: error: ")
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert expected in err


def test_debug_shows_the_traceback(user_dir, capsys):
    write(user_dir, "dbg_raises.py", BAD_MODULES["raises.py"])
    code, _, err = run(["check", "dbg_raises.py:cost", "dbg_raises.py:grad", "--params",
                        "p.npz", "--args", "a.npz", "--debug"], capsys)
    assert code == 2
    assert "Traceback" in err and "ZeroDivisionError" in err
    assert err.strip().splitlines()[-1].startswith("fastcheck check: error: ")


def test_check_options_reach_fc_check(user_dir, capsys):
    write(user_dir, "opts.py", GOOD)
    code, out, err = run(["check", "opts.py:cost", "opts.py:grad", "--params", "p.npz",
                          "--args", "a.npz", "--json", "--eps", "1e-6", "--sample", "0.5",
                          "--seed", "7", "--backend", "threads", "--threads", "2",
                          "--rtol", "1e-4", "--confidence", "0.9", "--max-failures", "3",
                          "--target-rate", "0.01"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["eps"] == 1e-6 and data["seed"] == 7 and data["backend"] == "threads"
    assert data["threads"] == 2 and data["n_checked"] == 4 and data["rtol"] == 1e-4


def test_sample_auto_target_rate_and_max_failures(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = run(["check", *TINY, "--sample", "auto", "--seed", "0",
                          "--target-rate", "0.1", "--max-failures", "1"], capsys)
    assert code == 0, err
    for flag, value, message in [("--target-rate", "2", "target_rate must be in (0, 1)"),
                                 ("--max-failures", "0", "max_failures must be")]:
        code, out, err = run(["check", *TINY, flag, value], capsys)
        assert code == 2 and message in err, err


@pytest.mark.parametrize("argv", [
    ["check"],
    ["check", "a.py:cost"],
    ["check", "a.py:cost", "true"],                     # --params is required
    ["check", "a.py:cost", "true", "--params", "p.npz", "--eps", "abc"],
    ["check", "a.py:cost", "true", "--params", "p.npz", "--sample", "many"],
], ids=["nothing", "no-grad", "no-params", "bad-eps", "bad-sample"])
def test_usage_errors_exit_2(user_dir, capsys, argv):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err


def test_help_documents_the_args_order(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "arr_0, arr_1" in out and "in the order they were saved" in out
    assert "examples/tiny_net.py:cost" in out


# -- the archive readers ----------------------------------------------------------------------
def test_args_order_positional_by_number_then_named(tmp_path):
    arrays = [np.full(2, float(i)) for i in range(12)]
    np.savez(tmp_path / "pos.npz", *arrays)
    got = load_args(str(tmp_path / "pos.npz"))
    assert [float(a[0]) for a in got] == list(range(12))  # arr_10 after arr_9

    np.savez(tmp_path / "mixed.npz", np.zeros(1), zeta=np.ones(1), alpha=np.full(1, 2.0),
             lam=np.array(0.5), name=np.array("relu"))
    first, zeta, alpha, lam, name = load_args(str(tmp_path / "mixed.npz"))
    assert first[0] == 0 and zeta[0] == 1 and alpha[0] == 2  # saved order, not sorted
    assert lam == 0.5 and type(lam) is float and name == "relu"


def test_params_mapping_or_flat_theta(tmp_path):
    np.savez(tmp_path / "named.npz", W2=np.ones((2, 3)), b2=np.zeros(2))
    params = load_params(str(tmp_path / "named.npz"))
    assert list(params) == ["W2", "b2"] and params["W2"].shape == (2, 3)
    np.savez(tmp_path / "flat.npz", theta=np.arange(4.0))
    theta = load_params(str(tmp_path / "flat.npz"))
    assert isinstance(theta, np.ndarray) and theta.shape == (4,)


def test_method_and_mode_reach_fc_check(capsys, monkeypatch):
    """--method and --mode, as `fastcheck demo` has them: richardson and directional on the
    example network; the directional mode names the buggy block too."""
    monkeypatch.chdir(ROOT)
    code, out, err = run(["check", *TINY, "--json", "--method", "richardson"], capsys)
    assert code == 0, err
    assert json.loads(out)["method"] == "richardson"
    code, out, err = run(["check", *TINY, "--json", "--mode", "directional", "--seed", "0"],
                         capsys)
    assert code == 0, err
    assert json.loads(out)["mode"] == "directional"
    buggy = [a.replace(":backward", ":backward_buggy") for a in TINY]
    code, out, err = run(["check", *buggy, "--mode", "directional", "--seed", "0"], capsys)
    assert code == 1, err
    assert "FAIL (directional)" in out and "W2" in out
    code, out, err = run(["check", *TINY, "--mode", "sideways"], capsys)
    assert code == 2 and "--mode" in err
