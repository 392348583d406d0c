"""The examples run as their docstrings and the README say, also from another directory
with absolute paths: make_npz.py writes the committed files again, the documented
``fastcheck check`` command passes, and its buggy backward fails naming W2."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"


def _run(args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_make_npz_writes_the_committed_files_again(tmp_path):
    copy = tmp_path / "examples"
    shutil.copytree(EX, copy)
    for f in copy.glob("*.npz"):
        f.unlink()
    out = _run([str(copy / "make_npz.py")], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("tiny_net_params.npz", "tiny_net_args.npz"):
        new, old = np.load(copy / name), np.load(EX / name)
        assert list(new) == list(old), name  # the order is the order of cost's arguments
        for key in old:
            assert np.array_equal(new[key], old[key]), (name, key)


def test_documented_cli_from_another_directory(tmp_path):
    base = ["-m", "fastcheck", "check", f"{EX}/tiny_net.py:cost", f"{EX}/tiny_net.py:backward",
            "--params", f"{EX}/tiny_net_params.npz", "--args", f"{EX}/tiny_net_args.npz"]
    good = _run(base, cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "fastcheck PASS" in good.stdout and "57 of 57 components checked" in good.stdout
    bad = _run([a.replace(":backward", ":backward_buggy") for a in base], cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "fastcheck FAIL" in bad.stdout and "failing blocks: W2" in bad.stdout


def test_object_model_example_from_another_directory(tmp_path):
    out = _run([str(EX / "object_model.py")], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    heads = [ln for ln in out.stdout.splitlines() if ln.startswith("fastcheck ")]
    assert [h.split(":")[0] for h in heads] == ["fastcheck PASS", "fastcheck FAIL"]
    assert "failing blocks: b1" in out.stdout
    assert out.stdout.rstrip().endswith("after the check the model holds its own arrays: True")


def test_the_readme_demo_output_is_what_the_demo_prints(tmp_path):
    readme = (ROOT / "README.md").read_text()
    start = readme.index("`fastcheck demo --bug one-element` (the built-in S network")
    block = readme[readme.index("```\n", start) + 4:]
    block = block[:block.index("```")]
    shown = [ln for ln in block.splitlines()
             if ln.strip() and ln.strip() != "..." and not ln.startswith("ran:")]
    assert len(shown) >= 10
    out = _run(["-m", "fastcheck", "demo", "--bug", "one-element"], cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    printed = out.stdout.splitlines()
    missing = [ln for ln in shown if ln.rstrip() not in (p.rstrip() for p in printed)]
    assert not missing, "\n".join(missing)
