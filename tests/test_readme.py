"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


def test_readme_examples_run_in_order(capsys):
    namespace: dict = {"__name__": "readme"}
    for block in BLOCKS:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "PASS" in out


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_readme_opens_with_the_two_commands(command):
    head = README.read_text().split("##")[0]
    assert command in head


ROOT = README.parent


def test_readme_shows_the_failing_report_picture():
    assert "](docs/img/failing_report.png)" in README.read_text()
    png = ROOT / "docs" / "img" / "failing_report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_picture_is_drawn_by_the_committed_script(tmp_path):
    pytest.importorskip("matplotlib")
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures",
                                                  ROOT / "docs" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.failing_report()
    assert not report.passed and [c.name for c in report.worst(1)] == ["W2"]
    assert module.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "failing_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_script_the_docs_cite_is_committed():
    texts = [README.read_text()] + [p.read_text() for p in (ROOT / "docs").glob("*.md")]
    cited = {m for text in texts for m in re.findall(r"\b((?:bench|docs)/\w+\.py)\b", text)}
    assert {"bench/startup.py", "bench/course_bench.py", "docs/make_figures.py"} <= cited
    missing = sorted(path for path in cited if not (ROOT / path).is_file())
    assert not missing, f"README.md/docs cite scripts that are not in the repository: {missing}"
