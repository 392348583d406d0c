"""The course network (numpy, dict params): the classic loop against fastcheck's serial,
processes and default (auto) runs, one benchmark group per size.

Groups ``course-S``, ``course-M``, ``course-L-sample4000``. The limit of each case is
``2 n t_fwd / cores``; ``bench/course_bench.py`` prints it beside medians of the same runs.

Run: ``pytest bench/test_bench_course.py --benchmark-only`` (``--bench-size=M`` for one
size; ``L`` here is the course network sampled at 4,000 components).
"""

from __future__ import annotations

import pytest

from fastcheck.models import course

from .course_bench import METHODS, indices_of, run

#: Size -> pedantic rounds (L checks take seconds each).
ROUNDS = {"S": None, "M": None, "L": 3}
_PROBLEMS: dict = {}


def _problem(size):
    if size not in _PROBLEMS:
        problem = course.make_course(size)
        _PROBLEMS[size] = (problem, indices_of(problem))
    return _PROBLEMS[size]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", [
    pytest.param(s, id=s, marks=pytest.mark.benchmark(
        group=f"course-{s}" + ("-sample4000" if s == "L" else "")))
    for s in ("S", "M", "L")])
def test_course(benchmark, case, method):
    """One check of the course network at size ``case`` by ``method``."""
    size = case
    problem, indices = _problem(size)
    if ROUNDS[size]:
        out = benchmark.pedantic(run, args=(method, problem, indices), rounds=ROUNDS[size],
                                 iterations=1, warmup_rounds=0)
    else:
        out = benchmark(run, method, problem, indices)
    if method == "classic-loop":
        assert out.shape[0] == (problem.n_params if indices is None else indices.shape[0])
    else:
        assert out.passed
        if method == "auto" and size == "S":
            assert out.backend == "serial"
