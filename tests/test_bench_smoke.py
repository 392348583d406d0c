"""The benchmark suites run (once, untimed, on the small network) so they cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_suite_runs_on_size_s():
    pytest.importorskip("pytest_benchmark")
    cmd = [sys.executable, "-m", "pytest", os.path.join(ROOT, "bench"), "--bench-size=S",
           "--benchmark-disable", "-q", "-p", "no:cacheprovider"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_fastcheck_bench_command_runs(capsys):
    from fastcheck.cli import main

    assert main(["bench", "--size", "S", "--rounds", "1", "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["n_checked"] == result["n_params"] == 499
    assert 0 < result["fraction_of_limit"] and result["parallel_efficiency"] > 0
