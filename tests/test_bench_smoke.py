"""The benchmark suites run (once, untimed, on the small network) so they cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
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


def test_fastcheck_bench_baseline_is_the_course_model(monkeypatch):
    """The classic loop of ``fastcheck bench`` is the course's numpy code, not the njit model."""
    from fastcheck.cli import bench
    from fastcheck.models import course

    calls = []
    real_loop = course.classic_loop

    def spy(cost, params, args=(), indices=None, epsilon=1e-7):
        calls.append((cost, params, args))
        return real_loop(cost, params, args, indices, epsilon)

    monkeypatch.setattr(course, "classic_loop", spy)
    result = bench.run_bench("S", rounds=1)
    assert calls, "fastcheck bench did not run fastcheck.models.course.classic_loop"
    cost, params, args = calls[0]
    assert cost is course.cost
    assert isinstance(params, dict) and set(params) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    assert all(isinstance(v, np.ndarray) for v in params.values())
    assert sum(v.size for v in params.values()) == result.n_params == 499
    assert result.baseline == "fastcheck.models.course"
    assert "fastcheck.models.course" in result.summary()
    assert result.speedup_over_classic == pytest.approx(
        float(np.median(np.asarray(result.samples["classic"])
                        / np.asarray(result.samples["numba_all"]))))
